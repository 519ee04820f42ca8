"""Writes of claims (migration 0009): freeing the claim of a run whose scheduler died.

A claim is taken with its run (`records.insert_run_rows`) and freed with it
(a trigger, when the run leaves queued/running). The one write left is for a
scheduler that waits on a claim whose holder died before its run was settled:
it frees the claim and takes the work over.
"""

from __future__ import annotations

from mayuri.store.db import Store


def drop_claims_of(store: Store, run_id: str) -> None:
    """Free whatever `run_id` claims (its scheduler is dead: the work is taken over)."""
    with store.write():
        store.db.execute_sql("DELETE FROM run_claim WHERE run_id = ?", (run_id,))
