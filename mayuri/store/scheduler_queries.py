"""Reads of scheduler state: schedulers, leases, cancel requests, the processes of runs, peak history.

Read-only; the scheduler, `mayuri cancel`, `mayuri doctor` and the dashboard
use these instead of SQL of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mayuri.store.db import Store
from mayuri.store.lease_records import Lease


@dataclass(frozen=True)
class SchedulerRow:
    """One `mayuri run` process as recorded."""

    id: str
    host: str
    boot_id: str
    pid: int
    pid_create_time: float | None
    user: str
    experiment: str | None
    status: str
    started_at: float
    heartbeat_at: float


@dataclass(frozen=True)
class RunProcess:
    """An unfinished run and the process of its current attempt (pid None when none started)."""

    run_id: str
    status: str
    host: str
    scheduler_id: str | None
    scheduler_pid: int | None
    pid: int | None
    pid_create_time: float | None
    boot_id: str | None
    # The attempt's executor (None: recorded before executors were, so local) and its id there.
    executor: str | None = None
    executor_ref: str | None = None


@dataclass(frozen=True)
class LeaseRow(Lease):
    """A lease as `doctor` and the dashboard list it: with its scheduler's pid and heartbeat."""

    pid: int | None
    heartbeat_at: float


def running_schedulers(store: Store) -> list[SchedulerRow]:
    """Schedulers recorded as running (some may be dead and not yet reclaimed)."""
    rows = store.db.execute_sql(
        "SELECT id, host, boot_id, pid, pid_create_time, user, experiment, status, started_at, heartbeat_at "
        "FROM scheduler WHERE status = 'running'"
    ).fetchall()
    return [SchedulerRow(*r) for r in rows]


def leases(store: Store) -> list[LeaseRow]:
    """Every GPU lease in the store."""
    rows = store.db.execute_sql(
        "SELECT token, host, gpu_uuid, scheduler_id, run_id, memory, exclusive, pid, heartbeat_at FROM gpu_lease"
    ).fetchall()
    return [LeaseRow(t, h, g, s, r, m, bool(e), p, hb) for t, h, g, s, r, m, e, p, hb in rows]


def cancel_requests(store: Store, scheduler_id: str) -> list[str]:
    """Unfinished runs of this scheduler that someone asked to cancel."""
    rows = store.db.execute_sql(
        "SELECT id FROM run WHERE scheduler_id = ? AND cancel_requested_at IS NOT NULL "
        "AND status IN ('queued', 'running')", (scheduler_id,)
    ).fetchall()
    return [r[0] for r in rows]


def unfinished_runs(store: Store, run_ids: Iterable[str] | None = None) -> list[RunProcess]:
    """Queued or running runs (all, or these), each with its latest attempt's process."""
    ids = list(run_ids) if run_ids is not None else None
    where = "run.status IN ('queued', 'running')"
    args: list[str] = []
    if ids is not None:
        if not ids:
            return []
        where += f" AND run.id IN ({','.join('?' * len(ids))})"
        args = ids
    rows = store.db.execute_sql(
        "SELECT run.id, run.status, run.host, run.scheduler_id, run.scheduler_pid, a.pid, a.pid_create_time, "
        "scheduler.boot_id, a.executor, a.executor_ref FROM run "
        "LEFT JOIN attempt a ON a.run_id = run.id AND a.number = "
        "(SELECT MAX(number) FROM attempt WHERE run_id = run.id) "
        f"LEFT JOIN scheduler ON scheduler.id = run.scheduler_id WHERE {where}", args
    ).fetchall()
    return [RunProcess(*r) for r in rows]


def run_status(store: Store, run_ids: Iterable[str]) -> dict[str, str]:
    """The current status of each of these runs."""
    ids = list(run_ids)
    if not ids:
        return {}
    rows = store.db.execute_sql(
        f"SELECT id, status FROM run WHERE id IN ({','.join('?' * len(ids))})", ids
    ).fetchall()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class PeakHistory:
    """The largest peaks of earlier runs of a job, and the run they came from."""

    run_id: str
    gpu_memory: int | None
    rss: int | None
    same_config: bool


def peak_history(store: Store, experiment: str, job: str, config_hash: str, limit: int = 20) -> PeakHistory | None:
    """Peaks of the nearest earlier runs of a job: same config first, else its most recent runs."""
    base = (
        "SELECT run.id, run.peak_gpu_memory, run.peak_rss FROM run JOIN experiment ON experiment.id = "
        "run.experiment_id WHERE experiment.name = ? AND run.job = ? AND run.peak_gpu_memory IS NOT NULL "
        "AND run.peak_gpu_memory > 0"
    )
    for same, extra, args in (
        (True, " AND run.config_hash = ?", (experiment, job, config_hash)),
        (False, "", (experiment, job)),
    ):
        rows = store.db.execute_sql(f"{base}{extra} ORDER BY run.created_at DESC LIMIT {int(limit)}", args).fetchall()
        if rows:
            top = max(rows, key=lambda r: r[1])
            return PeakHistory(top[0], int(top[1]), max((r[2] or 0) for r in rows) or None, same)
    return None


@dataclass(frozen=True)
class UnownedRun:
    """An unfinished run with what recovery needs to judge it: its scheduler, its latest attempt, its identity."""

    run_id: str
    status: str
    host: str
    experiment: str
    job: str
    config_hash: str
    upstream: str
    run_dir: str
    scheduler: SchedulerRow | None
    attempt: int | None
    pid: int | None
    pid_create_time: float | None
    started_at: float | None
    # The attempt's executor (None: recorded before executors were, so local) and its id there.
    executor: str | None = None
    executor_ref: str | None = None


def unfinished_with_schedulers(store: Store) -> list[UnownedRun]:
    """Every queued or running run, with its scheduler row (if any) and its latest attempt."""
    rows = store.db.execute_sql(
        "SELECT run.id, run.status, run.host, experiment.name, run.job, run.config_hash, run.upstream, "
        "run.run_dir, a.number, a.pid, a.pid_create_time, a.started_at, s.id, s.host, s.boot_id, s.pid, s.pid_create_time, "
        "s.user, s.experiment, s.status, s.started_at, s.heartbeat_at, a.executor, a.executor_ref FROM run "
        "JOIN experiment ON experiment.id = run.experiment_id "
        "LEFT JOIN attempt a ON a.run_id = run.id AND a.number = "
        "(SELECT MAX(number) FROM attempt WHERE run_id = run.id) "
        "LEFT JOIN scheduler s ON s.id = run.scheduler_id WHERE run.status IN ('queued', 'running')"
    ).fetchall()
    found = []
    for row in rows:
        scheduler = SchedulerRow(*row[12:22]) if row[12] is not None else None
        run_id, status, run_host, experiment, job, config_hash, upstream, run_dir = row[:8]
        found.append(UnownedRun(run_id, status, run_host, experiment, job, config_hash, upstream, run_dir, scheduler,
                                row[8], row[9], row[10], row[11], row[22], row[23]))
    return found


def any_unfinished(store: Store) -> bool:
    """Whether any run is queued or running (one indexed lookup: the common answer is no)."""
    return store.db.execute_sql(
        "SELECT 1 FROM run WHERE status IN ('queued', 'running') LIMIT 1"
    ).fetchone() is not None


def earlier_runs(store: Store, experiment: str, job: str, config_hash: str, limit: int) -> list[tuple[str, str, str]]:
    """(id, status, run folder) of the ended runs of a job with this config, newest first."""
    rows = store.db.execute_sql(
        "SELECT run.id, run.status, run.run_dir FROM run JOIN experiment ON experiment.id = run.experiment_id "
        "WHERE experiment.name = ? AND run.job = ? AND run.config_hash = ? AND run.status NOT IN ('queued', 'running') "
        f"ORDER BY run.created_at DESC LIMIT {int(limit)}", (experiment, job, config_hash)
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def last_logged_step(store: Store, run_id: str) -> int | None:
    """The last step a run logged a metric at (system metrics aside), or None."""
    row = store.db.execute_sql(
        "SELECT MAX(s.last_step) FROM metric_summary s JOIN metric_key k ON k.id = s.key_id "
        "WHERE s.run_id = ? AND k.name NOT LIKE 'sys/%'", (run_id,)
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


@dataclass(frozen=True)
class ClaimHolder:
    """The run that claims some work, as a scheduler waiting for it sees it."""

    run_id: str
    status: str
    user: str
    scheduler_id: str | None
    claimed: bool


def claim_holders(store: Store, run_ids: Iterable[str]) -> dict[str, ClaimHolder]:
    """Each of these runs' status, user, scheduler and whether it still holds a claim."""
    rows = store.select_in(
        "SELECT run.id, run.status, run.user, run.scheduler_id, "
        "EXISTS (SELECT 1 FROM run_claim WHERE run_claim.run_id = run.id) FROM run WHERE run.id IN ({marks})",
        list(run_ids),
    )
    return {r[0]: ClaimHolder(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows}


def scheduler_row(store: Store, scheduler_id: str) -> SchedulerRow | None:
    """One scheduler as recorded (None when there is no such row)."""
    row = store.db.execute_sql(
        "SELECT id, host, boot_id, pid, pid_create_time, user, experiment, status, started_at, heartbeat_at "
        "FROM scheduler WHERE id = ?", (scheduler_id,)
    ).fetchone()
    return SchedulerRow(*row) if row else None
