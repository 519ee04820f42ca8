"""The store: one SQLite database, a content-addressed blob folder and run folders.

The names below are loaded on first use: a job that only writes a file of
its run folder (`mayuri.output()` uses `mayuri.store.perms`) must not pay
for importing peewee and the database layer, about 25 ms of every job's start.
"""

from __future__ import annotations

# Set by type checkers only: importing `typing` would cost every job's start (~2 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mayuri.store.db import (
        Store,
        StoreLocked,
        open_project_store,
        open_store,
        schema_version,
        store_errors,
    )

__all__ = ["Store", "StoreLocked", "open_project_store", "open_store", "schema_version", "store_errors"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'mayuri.store' has no attribute {name!r}")
    from mayuri.store import db

    return getattr(db, name)
