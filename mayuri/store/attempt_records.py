"""Writes of the scheduler's attempt lifecycle: start, end (with peaks and leases), cancel requests.

Every write is one `store.write()` transaction and is fenced by the
scheduler's id: once another process has reclaimed a scheduler (it looked
dead), that scheduler's late writes change nothing and report so, so a job
is never recorded twice. The launches of one scheduler turn are two short
transactions (each run when new, its lineage, the attempt `starting`, its
leases; then the attempts `running` with their executors' references), the
executor starting the jobs between them, outside any transaction; the ends of the attempts that finished
together are one transaction too, with their runs' closes. Nothing here starts or watches a process itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mayuri.hashing import canonical_json
from mayuri.store.db import Store
from mayuri.store.records import NewRun, RunClose, close_run_rows, insert_run_rows
from mayuri.store.run_manifest import write_manifests
from mayuri.store.state_checks import check_attempt, check_runs


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
    leftovers: int | None = None
    # Where a remote executor ran it, and the GPUs (by UUID) its engine gave it (None: as recorded at start).
    node: str | None = None
    gpus: Sequence[str] | None = None


@dataclass(frozen=True)
class EndRecord:
    """What to record when an attempt's process has ended: its end, its leases to free, its run's close.

    `end` is None when the attempt's end was recorded already (its leases were
    freed early) and only the run's close remains; `close` is None when the
    run goes on (a retry follows).
    """

    run_id: str
    number: int
    end: AttemptEnd | None
    lease_tokens: tuple[str, ...] = ()
    close: RunClose | None = None


def _alive(conn: sqlite3.Connection, scheduler_id: str) -> bool:
    row = conn.execute("SELECT status FROM scheduler WHERE id = ?", (scheduler_id,)).fetchone()
    return row is not None and row[0] == "running"


@dataclass(frozen=True)
class Started:
    """What an executor said about an attempt it started: its name, its id for it, the local process if any."""

    executor: str
    ref: str
    pid: int | None = None
    pid_create_time: float | None = None


@dataclass(frozen=True)
class AttemptStart:
    """One attempt to record as it is launched; `new_run` is the run to insert, on its first attempt."""

    run_id: str
    number: int
    params: Mapping[str, Any]
    gpus: Sequence[str]
    lease_tokens: Sequence[str]
    new_run: NewRun | None = None
    resumed_from: str | None = None
    resumed_step: int | None = None


@dataclass(frozen=True)
class Claimed:
    """A start not made: another live run (`run_id`) already claims the same work."""

    run_id: str


def begin_attempts(
    store: Store, scheduler_id: str, host: str, starts: Sequence[AttemptStart]
) -> list[Claimed | None] | None:
    """Record attempts as `starting`, in one short transaction, before anything is launched.

    Launches are recorded in two short transactions, the launches between
    them (`confirm_attempts` is the second).

    First, in one write transaction: each new run whose work another run
    already claims (`run_claim`) is left out (Claimed); every other run is
    inserted (or marked running again) with its lineage, and its attempt
    written `starting`, its leases bound to it. No write lock is held while
    the executor starts the jobs: a slow start, or a remote executor's
    network call, stalls no other writer, and a job that writes to the store
    from its first instant finds its run already there. Then, in a second
    transaction, each started attempt becomes `running` with its executor's
    reference; one that could not start is removed and its run closed as
    failed, with why. A `starting` attempt whose scheduler died between the
    two is settled by recovery (it never got a reference: nothing of it can
    run). Returns, per start, None (to launch) or Claimed; None when fenced.
    """
    results: list[Claimed | None] = []
    with store.write():
        conn = store.db.connection()
        if not _alive(conn, scheduler_id):
            return None
        now = time.time()
        for start in starts:
            claim = start.new_run.claim if start.new_run is not None else None
            if claim is not None:
                holder = conn.execute("SELECT run_id FROM run_claim WHERE key = ?", (claim,)).fetchone()
                if holder is not None:
                    results.append(Claimed(holder[0]))
                    continue
            results.append(None)
            if start.new_run is not None:
                insert_run_rows(conn, start.new_run, status="running", now=now, scheduler_id=scheduler_id,
                                started=True)
            else:
                check_runs(conn, [start.run_id], "running")
                conn.execute(
                    "UPDATE run SET status = 'running', scheduler_id = ?, started_at = COALESCE(started_at, ?) "
                    "WHERE id = ?", (scheduler_id, now, start.run_id),
                )
            conn.execute(
                "INSERT INTO attempt (run_id, number, status, host, started_at, gpus, params, scheduler_id, "
                "resumed_from, resumed_step) VALUES (?, ?, 'starting', ?, ?, ?, ?, ?, ?, ?)",
                (start.run_id, start.number, host, now, json.dumps(list(start.gpus)), canonical_json(start.params),
                 scheduler_id, start.resumed_from, start.resumed_step),
            )
            if start.lease_tokens:
                conn.executemany("UPDATE gpu_lease SET run_id = ?, attempt = ? WHERE token = ?",
                                 [(start.run_id, start.number, token) for token in start.lease_tokens])
    return results


def confirm_attempts(store: Store, scheduler_id: str,
                     launched: Sequence[tuple[AttemptStart, Started | str]]) -> dict[str, str] | None:
    """The second step of `begin_attempts`: started attempts become `running`, the others are undone.

    Returns why each attempt that could not start did not (by run id; its
    run is closed as failed), or None when fenced (nothing recorded: the
    caller stops what it started).
    """
    with store.write():
        conn = store.db.connection()
        if not _alive(conn, scheduler_id):
            return None
        now = time.time()
        failures = {}
        for start, result in launched:
            if isinstance(result, str):
                failures[start.run_id] = result
                conn.execute("DELETE FROM attempt WHERE run_id = ? AND number = ?", (start.run_id, start.number))
                close_run_rows(conn, start.run_id, RunClose("failed", None, result), now)
                continue
            check_attempt(conn, start.run_id, start.number, "running")
            conn.execute(
                "UPDATE attempt SET status = 'running', pid = ?, pid_create_time = ?, executor = ?, executor_ref = ? "
                "WHERE run_id = ? AND number = ?",
                (result.pid, result.pid_create_time, result.executor, result.ref, start.run_id, start.number),
            )
            if start.lease_tokens:
                conn.executemany(
                    "UPDATE gpu_lease SET pid = ?, pid_create_time = ? WHERE token = ?",
                    [(result.pid, result.pid_create_time, token) for token in start.lease_tokens],
                )
    return failures


def record_placements(store: Store, scheduler_id: str,
                      placements: Sequence[tuple[str, int, str | None, Sequence[str]]]) -> bool:
    """Where running attempts run, once their engine placed them: (run id, attempt, node, GPU UUIDs) each.

    For executors whose engine places jobs itself (a Ray node's GPUs): without
    this, the node and the GPUs would be known only at the attempt's end, and
    the GPU screen would miss them while they run. False when fenced.
    """
    with store.write():
        conn = store.db.connection()
        if not _alive(conn, scheduler_id):
            return False
        conn.executemany(
            "UPDATE attempt SET node = COALESCE(?, node), gpus = ? WHERE run_id = ? AND number = ? "
            "AND status = 'running'",
            [(node, json.dumps(list(gpus)), run_id, number) for run_id, number, node, gpus in placements],
        )
    return True


def _end_rows(conn: sqlite3.Connection, record: EndRecord, now: float) -> None:
    end = record.end
    if end is not None:
        check_attempt(conn, record.run_id, record.number, end.status)
        conn.execute(
            "UPDATE attempt SET status = ?, ended_at = ?, exit_code = ?, signal = ?, cause = ?, error = ?, "
            "peak_rss = ?, peak_gpu_memory = ?, leftovers = ?, node = COALESCE(?, node), gpus = COALESCE(?, gpus) "
            "WHERE run_id = ? AND number = ?",
            (end.status, now, end.exit_code, end.signal, end.cause, end.error, end.peak_rss,
             end.peak_gpu_memory, end.leftovers, end.node, None if end.gpus is None else json.dumps(list(end.gpus)),
             record.run_id, record.number),
        )
        if end.peak_rss or end.peak_gpu_memory:
            conn.execute(
                "UPDATE run SET peak_rss = MAX(COALESCE(peak_rss, 0), COALESCE(?, 0)), "
                "peak_gpu_memory = MAX(COALESCE(peak_gpu_memory, 0), COALESCE(?, 0)) WHERE id = ?",
                (end.peak_rss, end.peak_gpu_memory, record.run_id),
            )
    if record.lease_tokens:
        conn.executemany("DELETE FROM gpu_lease WHERE token = ?", [(t,) for t in record.lease_tokens])
    if record.close is not None:
        close_run_rows(conn, record.run_id, record.close, now)


def record_ends(store: Store, scheduler_id: str, records: Sequence[EndRecord]) -> bool:
    """Record the ends of attempts (their leases freed, their runs closed), all at once; False when fenced."""
    if not records:
        return True
    with store.write():
        conn = store.db.connection()
        if not _alive(conn, scheduler_id):
            return False
        now = time.time()
        for record in records:
            _end_rows(conn, record, now)
    # After the commit: each closed run's folder gets its records, for `doctor --rebuild`.
    write_manifests(store, [r.run_id for r in records if r.close is not None])
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
            "UPDATE attempt SET status = ?, cause = ?, error = ?, ended_at = ? WHERE run_id = ? "
            "AND status IN ('running', 'starting')",
            ("cancelled" if status == "cancelled" else "lost", status, note, now, run_id),
        )
        store.db.execute_sql("DELETE FROM gpu_lease WHERE run_id = ?", (run_id,))
    return True


def settle_ended(store: Store, record: EndRecord, ended_at: float) -> bool:
    """Record the end of an attempt that no live scheduler watched (an adopted job); False if already settled."""
    with store.write():
        conn = store.db.connection()
        row = conn.execute("SELECT status FROM run WHERE id = ?", (record.run_id,)).fetchone()
        if row is None or row[0] not in ("queued", "running"):
            return False
        _end_rows(conn, record, ended_at)
        conn.execute("DELETE FROM gpu_lease WHERE run_id = ?", (record.run_id,))
    return True
