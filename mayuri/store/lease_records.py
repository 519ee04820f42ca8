"""Writes of scheduler state: scheduler rows, heartbeats, GPU leases, reclaiming dead schedulers.

Each function is one `store.write()` transaction (BEGIN IMMEDIATE). Taking a
lease reads the host's live leases and inserts the new ones in the same
transaction, so two schedulers can never both see a GPU as free. Deciding
which GPUs to take is the caller's (`choose`); deciding who is dead is too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mayuri.store.db import Store


@dataclass(frozen=True)
class Lease:
    """A claim on (part of) one GPU by one attempt of a run."""

    token: str
    host: str
    gpu_uuid: str
    scheduler_id: str
    run_id: str | None
    memory: int
    exclusive: bool


@dataclass(frozen=True)
class Claim:
    """What a scheduler wants to hold on one GPU."""

    gpu_uuid: str
    memory: int
    exclusive: bool


_LEASE_COLUMNS = "token, host, gpu_uuid, scheduler_id, run_id, memory, exclusive"


def _lease(row: Sequence[object]) -> Lease:
    token, host, gpu, sid, run_id, memory, exclusive = row
    return Lease(str(token), str(host), str(gpu), str(sid), run_id if run_id is None else str(run_id),
                 int(memory), bool(exclusive))  # type: ignore[call-overload]


def register_scheduler(
    store: Store, *, host: str, boot_id: str, pid: int, pid_create_time: float | None, user: str,
    experiment: str | None,
) -> str:
    """Record a starting scheduler; returns its id (also the token that fences its writes)."""
    sid = uuid.uuid4().hex
    now = time.time()
    with store.write():
        store.db.execute_sql(
            "INSERT INTO scheduler (id, host, boot_id, pid, pid_create_time, user, experiment, status, "
            "started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            (sid, host, boot_id, pid, pid_create_time, user, experiment, now, now),
        )
    return sid


def heartbeat(store: Store, scheduler_id: str) -> bool:
    """Refresh a scheduler's heartbeat and its leases'; False when it has been reclaimed (fenced)."""
    now = time.time()
    with store.write():
        cursor = store.db.execute_sql(
            "UPDATE scheduler SET heartbeat_at = ? WHERE id = ? AND status = 'running'", (now, scheduler_id)
        )
        if cursor.rowcount == 0:
            return False
        store.db.execute_sql("UPDATE gpu_lease SET heartbeat_at = ? WHERE scheduler_id = ?", (now, scheduler_id))
    return True


def end_scheduler(store: Store, scheduler_id: str) -> None:
    """A scheduler that exits cleanly: it holds nothing any more."""
    with store.write():
        store.db.execute_sql("DELETE FROM gpu_lease WHERE scheduler_id = ?", (scheduler_id,))
        store.db.execute_sql(
            "UPDATE scheduler SET status = 'finished', ended_at = ? WHERE id = ? AND status = 'running'",
            (time.time(), scheduler_id),
        )


def acquire(
    store: Store, *, scheduler_id: str, host: str, boot_id: str,
    choose: Callable[[list[Lease]], list[Claim] | None],
) -> list[Lease] | None:
    """Take the leases `choose` picks given the host's current leases; None when it picks nothing."""
    now = time.time()
    with store.write():
        rows = store.db.execute_sql(
            f"SELECT {_LEASE_COLUMNS} FROM gpu_lease WHERE host = ?", (host,)
        ).fetchall()
        claims = choose([_lease(r) for r in rows])
        if not claims:
            return None
        taken = [Lease(uuid.uuid4().hex, host, c.gpu_uuid, scheduler_id, None, c.memory, c.exclusive)
                 for c in claims]
        store.db.cursor().executemany(
            "INSERT INTO gpu_lease (token, host, gpu_uuid, scheduler_id, memory, exclusive, boot_id, "
            "created_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.token, host, t.gpu_uuid, scheduler_id, t.memory, int(t.exclusive), boot_id, now, now)
             for t in taken],
        )
    return taken


def release(store: Store, tokens: Iterable[str]) -> None:
    """Give leases back."""
    batch = [(t,) for t in tokens]
    if not batch:
        return
    with store.write():
        store.db.cursor().executemany("DELETE FROM gpu_lease WHERE token = ?", batch)


def reclaim(store: Store, scheduler_id: str, *, note: str) -> list[str]:
    """Mark a dead scheduler reclaimed: its leases freed, its unfinished runs orphaned; returns those runs.

    Does nothing (returns []) if another process reclaimed it first or it came back.
    """
    now = time.time()
    with store.write():
        cursor = store.db.execute_sql(
            "UPDATE scheduler SET status = 'dead', ended_at = ? WHERE id = ? AND status = 'running'",
            (now, scheduler_id),
        )
        if cursor.rowcount == 0:
            return []
        runs = [r[0] for r in store.db.execute_sql(
            "SELECT id FROM run WHERE scheduler_id = ? AND status IN ('queued', 'running')", (scheduler_id,)
        ).fetchall()]
        store.db.cursor().executemany(
            "UPDATE run SET status = 'orphaned', error = ?, ended_at = ? WHERE id = ?",
            [(note, now, r) for r in runs],
        )
        store.db.cursor().executemany(
            "UPDATE attempt SET status = 'lost', cause = 'scheduler_lost', error = ?, ended_at = ? "
            "WHERE run_id = ? AND status = 'running'",
            [(note, now, r) for r in runs],
        )
        store.db.execute_sql("DELETE FROM gpu_lease WHERE scheduler_id = ?", (scheduler_id,))
    return runs


def drop_stray_leases(store: Store) -> int:
    """Delete leases whose scheduler row is gone or no longer running; returns how many."""
    with store.write():
        cursor = store.db.execute_sql(
            "DELETE FROM gpu_lease WHERE scheduler_id NOT IN (SELECT id FROM scheduler WHERE status = 'running')"
        )
        return int(cursor.rowcount)
