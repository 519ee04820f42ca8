"""The store writers' check of run and attempt state changes against `mayuri.states`' tables.

A writer that changes a run's or an attempt's `status` calls these first,
inside its transaction. While `mayuri.states.STRICT` is set (the test suite
sets it for every test that runs Mayuri in-process), the rows' current
states are read and a change outside the table raises `IllegalTransition`,
rolling the write back. Otherwise nothing is read: a user's run never pays
for the check or is stopped by it. Writes that are guarded in SQL (`WHERE
status IN ('queued', 'running')`) need no check: the guard is the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from mayuri import states


def check_runs(conn: sqlite3.Connection, run_ids: Iterable[str], new: str) -> None:
    """Check that each run in `run_ids` may become `new` (no-op unless STRICT)."""
    if not states.STRICT:
        return
    for run_id in run_ids:
        row = conn.execute("SELECT status FROM run WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            _check(states.RUN_TRANSITIONS, row[0], new, f"run {run_id}")


def check_attempt(conn: sqlite3.Connection, run_id: str, number: int, new: str) -> None:
    """Check that attempt `number` of a run may become `new` (no-op unless STRICT)."""
    if not states.STRICT:
        return
    row = conn.execute("SELECT status FROM attempt WHERE run_id = ? AND number = ?", (run_id, number)).fetchone()
    if row is not None:
        _check(states.ATTEMPT_TRANSITIONS, row[0], new, f"attempt {number} of run {run_id}")


def check_new_run(run_id: str, status: str) -> None:
    """Check that a run is inserted in a state the table knows (no-op unless STRICT)."""
    if states.STRICT and status not in states.RUN_TRANSITIONS:
        raise states.IllegalTransition(f"run {run_id} may not be written as {status!r}: not a run state")


def _check(table: dict[states.RunState, set[states.RunState]] | dict[states.AttemptState,
           set[states.AttemptState]], old: str, new: str, what: str) -> None:
    try:
        states.check(table, old, new)
    except states.IllegalTransition as exc:
        raise states.IllegalTransition(f"{what}: {exc}") from None
