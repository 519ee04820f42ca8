"""Writes closure snapshots (migration 0006), the warm cache check's compact copy of a verified closure.

A snapshot is derived data that the check may always rebuild, so writing one
never waits for a busy store and never fails the command. It must not be
written for a closure that was not just verified against the files.
"""

from __future__ import annotations

from mayuri.store.db import Store, StoreError


def save_closure_snapshot(store: Store, run_id: str, prefix: str, paths: bytes, stats: bytes, rest: str) -> bool:
    """Replace the snapshot of `run_id`; False when the store could not take it at once (locked, read-only)."""
    try:
        with store.write(wait=0.0):
            # Only while the run is still reusable: gc may have collected it since the check read it.
            store.db.execute_sql(
                "INSERT OR REPLACE INTO closure_snapshot (run_id, prefix, paths, stats, rest) "
                "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM run WHERE id = ? AND status = 'succeeded')",
                (run_id, prefix, paths, stats, rest, run_id),
            )
    except StoreError:
        return False
    return True
