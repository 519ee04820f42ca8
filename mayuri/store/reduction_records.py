"""Writing the run of a sharded job's reduction: inserted already ended, in one transaction."""

from __future__ import annotations

import time

from mayuri.store.db import Store
from mayuri.store.records import NewRun, RunClose, close_run_rows, insert_run_rows


def record_reduction(store: Store, run: NewRun, close: RunClose) -> None:
    """Insert a reduction run (with its shards as lineage parents) and its end at once: it has no process."""
    now = time.time()
    with store.write():
        conn = store.db.connection()
        insert_run_rows(conn, run, status=close.status, now=now, started=True, error=close.error)
        close_run_rows(conn, run.run_id, close, now)
