"""Writes of the scheduler's attempt lifecycle: start, end (with peaks and leases), cancel requests.

Every write is one `store.write()` transaction and is fenced by the
scheduler's id: once another process has reclaimed a scheduler (it looked
dead), that scheduler's late writes change nothing and report False, so a job
is never recorded twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mayuri.hashing import canonical_json
from mayuri.store.db import Store


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended."""

    status: str
    exit_code: int | None
    signal: int | None
    cause: str | None
    error: str | None
    peak_rss: int | None = None
    peak_gpu_memory: int | None = None


def _alive(store: Store, scheduler_id: str) -> bool:
    row = store.db.execute_sql("SELECT status FROM scheduler WHERE id = ?", (scheduler_id,)).fetchone()
    return row is not None and row[0] == "running"


def begin_attempt(
    store: Store, run_id: str, number: int, *, scheduler_id: str, pid: int, pid_create_time: float | None,
    host: str, params: Mapping[str, Any], gpus: Sequence[str], lease_tokens: Sequence[str],
) -> bool:
    """Record attempt `number` as launched and bind its leases to the process; False when fenced."""
    now = time.time()
    with store.write():
        if not _alive(store, scheduler_id):
            return False
        store.db.execute_sql(
            "INSERT INTO attempt (run_id, number, status, pid, pid_create_time, host, started_at, gpus, params, "
            "scheduler_id) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (run_id, number, pid, pid_create_time, host, now, json.dumps(list(gpus)), canonical_json(params),
             scheduler_id),
        )
        store.db.execute_sql(
            "UPDATE run SET status = 'running', scheduler_id = ?, started_at = COALESCE(started_at, ?) "
            "WHERE id = ?", (scheduler_id, now, run_id),
        )
        store.db.cursor().executemany(
            "UPDATE gpu_lease SET run_id = ?, attempt = ?, pid = ?, pid_create_time = ? WHERE token = ?",
            [(run_id, number, pid, pid_create_time, token) for token in lease_tokens],
        )
    return True


def end_attempt(
    store: Store, run_id: str, number: int, *, scheduler_id: str, end: AttemptEnd, lease_tokens: Iterable[str],
) -> bool:
    """Close an attempt, keep the run's peaks, and free its leases, at once; False when fenced."""
    now = time.time()
    with store.write():
        if not _alive(store, scheduler_id):
            return False
        store.db.execute_sql(
            "UPDATE attempt SET status = ?, ended_at = ?, exit_code = ?, signal = ?, cause = ?, error = ?, "
            "peak_rss = ?, peak_gpu_memory = ? WHERE run_id = ? AND number = ?",
            (end.status, now, end.exit_code, end.signal, end.cause, end.error, end.peak_rss,
             end.peak_gpu_memory, run_id, number),
        )
        store.db.execute_sql(
            "UPDATE run SET peak_rss = MAX(COALESCE(peak_rss, 0), COALESCE(?, 0)), "
            "peak_gpu_memory = MAX(COALESCE(peak_gpu_memory, 0), COALESCE(?, 0)) WHERE id = ?",
            (end.peak_rss, end.peak_gpu_memory, run_id),
        )
        store.db.cursor().executemany("DELETE FROM gpu_lease WHERE token = ?", [(t,) for t in lease_tokens])
    return True


def request_cancel(store: Store, run_ids: Iterable[str]) -> list[str]:
    """Ask the schedulers of these runs to stop them; returns the runs that were still unfinished."""
    ids = list(run_ids)
    now = time.time()
    with store.write():
        placeholders = ",".join("?" * len(ids))
        active = [r[0] for r in store.db.execute_sql(
            f"SELECT id FROM run WHERE id IN ({placeholders}) AND status IN ('queued', 'running')", ids
        ).fetchall()] if ids else []
        store.db.cursor().executemany(
            "UPDATE run SET cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE id = ?",
            [(now, r) for r in active],
        )
    return active


def settle_abandoned(store: Store, run_id: str, status: str, note: str) -> bool:
    """Close a run no live scheduler owns (cancelled or orphaned); False if it had already ended."""
    now = time.time()
    with store.write():
        cursor = store.db.execute_sql(
            "UPDATE run SET status = ?, error = ?, ended_at = ? WHERE id = ? AND status IN ('queued', 'running')",
            (status, note, now, run_id),
        )
        if cursor.rowcount == 0:
            return False
        store.db.execute_sql(
            "UPDATE attempt SET status = ?, cause = ?, error = ?, ended_at = ? WHERE run_id = ? AND status = 'running'",
            ("cancelled" if status == "cancelled" else "lost", status, note, now, run_id),
        )
        store.db.execute_sql("DELETE FROM gpu_lease WHERE run_id = ?", (run_id,))
    return True
