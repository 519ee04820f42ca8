"""The store: one SQLite database, a content-addressed blob folder and run folders."""

from __future__ import annotations

from mayuri.store.db import (
    Store,
    StoreLocked,
    open_project_store,
    open_store,
    schema_version,
    store_errors,
)

__all__ = ["Store", "StoreLocked", "open_project_store", "open_store", "schema_version", "store_errors"]
