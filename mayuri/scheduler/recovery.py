"""Crash recovery: settle the runs of schedulers that are gone, adopt their live jobs, free their leases.

A scheduler is alive when, on this host, its (boot id, pid, create time)
still names a live process, or, on another host, its heartbeat is fresh
(docs/decisions.md, decision 4). Recovery looks at runs, not at scheduler rows:
a `running` run whose scheduler is not live (dead, or recorded as finished
while the run was not) is recovery's to settle, whatever the row says. On
this host such a run is

- adoptable while its job still runs (jobs are supervised by the shepherd,
  which outlives the scheduler): it is left running, its GPU leases kept,
  and it is settled when it ends;
- settled from the shepherd's record (`exit-N.json`: exit status, end time,
  leftovers stopped) once its job has ended;
- orphaned only when its job is gone with no record of how it ended.

A dead scheduler's row is reclaimed (its leases freed) once none of its jobs
is alive. Runs of a scheduler on another host are orphaned (their processes
cannot be seen from here). Used by every scheduler before its first launch,
by `mayuri run` before planning (`adoption.py`), and by `mayuri doctor`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import MayuriError
from mayuri.executors import DEFAULT, of_attempt
from mayuri.executors.base import AttemptRef
from mayuri.job import read_outputs
from mayuri.liveness import scheduler_alive
from mayuri.process_identity import boot_id, host
from mayuri.run_contract import log_file, spool_dir
from mayuri.scheduler.causes import classify, stderr_tail
from mayuri.store.attempt_records import AttemptEnd, EndRecord, settle_abandoned, settle_ended
from mayuri.store.db import Store
from mayuri.store.lease_records import drop_stray_leases, reclaim
from mayuri.store.records import RunClose
from mayuri.store.scheduler_queries import (
    RunProcess,
    UnownedRun,
    running_schedulers,
    unfinished_runs,
    unfinished_with_schedulers,
)

# How long a job that just ended may take to get its record written (its leftovers being stopped).
RECORD_WAIT = 2.0

# Turns an ended run into its close: (run, status, exit code, error, outputs) -> RunClose.
Closer = Callable[[UnownedRun, str, int, "str | None", dict[str, Any]], RunClose]


@dataclass
class Recovery:
    """What one recovery pass found and did."""

    schedulers: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    adoptable: list[UnownedRun] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    stray_leases: int = 0


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def attempt_ref(run: UnownedRun) -> AttemptRef:
    """A run's latest attempt as its executor is asked about it."""
    boot = run.scheduler.boot_id if run.scheduler is not None else boot_id()
    where = run.scheduler.host if run.scheduler is not None else None
    return AttemptRef(run.executor or DEFAULT, run.executor_ref, run.run_id, Path(run.run_dir), where, boot,
                      run.pid, run.pid_create_time, run.attempt)


def _attempt_alive(process: RunProcess) -> bool:
    """Whether the latest attempt of a run with no scheduler still runs, as its executor says."""
    attempt = AttemptRef(process.executor or DEFAULT, process.executor_ref, process.run_id, None, process.host,
                         boot_id(), process.pid, process.pid_create_time)
    try:
        return of_attempt(process.executor).alive(attempt)
    except MayuriError:
        return True  # its executor is not installed here: nothing can be asked, so nothing is settled


def job_alive(run: UnownedRun) -> bool:
    """Whether the job of a run's latest attempt still runs, as its executor says."""
    try:
        return of_attempt(run.executor).alive(attempt_ref(run))
    except MayuriError:
        return False  # its executor is not installed here: nothing can be asked, nothing adopted


def ended_record(run: UnownedRun, wait: float = RECORD_WAIT) -> dict[str, Any] | None:
    """Its executor's record of how a run's ended job ended, waiting a moment while its leftovers are stopped."""
    if run.attempt is None:
        return None
    try:
        return of_attempt(run.executor).ended(attempt_ref(run), wait)
    except MayuriError:
        return None  # its executor is not installed here: no record can be read


def plain_close(run: UnownedRun, status: str, code: int, error: str | None, outputs: dict[str, Any]) -> RunClose:
    """The close of an adopted run whose job is not known here: no closure hashed, so not reusable."""
    note = error or "recorded after its scheduler died; its closure was not hashed, so it is not reusable"
    return RunClose(status, code if code >= 0 else None, note, outputs=outputs)


def settle_from_record(store: Store, run: UnownedRun, record: dict[str, Any], closer: Closer | None = None) -> bool:
    """Record the end the shepherd wrote down for a run whose scheduler is gone; False if already settled."""
    code = int(record["exit_code"])
    run_dir = Path(run.run_dir)
    if code == 0:
        status, cause, error = "succeeded", None, None
    else:
        cause, error = classify(code, stderr_tail(log_file(run_dir, "stderr")), oom_kills_before=None,
                                oom_kills_after=None)
        status = "failed"
    leftovers = int(record.get("leftovers") or 0)
    if spool_dir(run_dir).is_dir():
        from mayuri.executors.remote.ingest import SpoolReader

        # A remote job's metrics and artifacts its dead head had not read yet (from where it stopped).
        SpoolReader(store, run.run_id, run_dir).pump()
    try:
        outputs = read_outputs(run_dir)
    except (OSError, ValueError) as exc:
        outputs, status, error = {}, "failed", f"could not read outputs.json: {exc}"
    try:
        close = (closer or plain_close)(run, status, code, error, outputs)
    except Exception as exc:  # noqa: BLE001 - one run's bad files must not stop the recovery of the others
        close = RunClose("failed", code if code >= 0 else None, f"recording failed: {_one_line(exc)}",
                         outputs=outputs)
    end = AttemptEnd(status=close.status,
                     exit_code=code if code >= 0 else None, signal=-code if code < 0 else None, cause=cause,
                     error=close.error, peak_rss=int(record.get("max_rss") or 0) or None,
                     leftovers=leftovers or None, node=record.get("node"))
    ended_at = float(record.get("ended_at") or time.time())
    return settle_ended(store, EndRecord(run.run_id, run.attempt or 1, end, close=close), ended_at)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _stop_marked(run: UnownedRun, result: Recovery) -> None:
    # A job that is gone may have left processes (its shepherd died with it): none may hold a GPU on.
    with contextlib.suppress(MayuriError):
        result.killed.extend(of_attempt(run.executor).settle_orphan(attempt_ref(run), 0.0))


def _owner_live(run: UnownedRun, skip: str | None) -> bool:
    row = run.scheduler
    assert row is not None
    return row.id == skip or (row.status == "running" and scheduler_alive(row))


def recover(store: Store, *, skip: str | None = None, closer: Closer | None = None) -> Recovery:
    """Settle or adopt the runs of schedulers that are not live (except `skip`, the caller's own id)."""
    result = Recovery()
    here = host()
    keep: set[str] = set()
    for run in unfinished_with_schedulers(store):
        if run.scheduler is None or _owner_live(run, skip):
            continue
        if run.scheduler.host != here:
            note = f"orphaned: its scheduler (pid {run.scheduler.pid} on {run.scheduler.host}) died"
            if settle_abandoned(store, run.run_id, "orphaned", note):
                result.orphaned.append(run.run_id)
            continue
        if (run.pid is not None or run.executor_ref is not None) and job_alive(run):
            result.adoptable.append(run)
            keep.add(run.scheduler.id)
            continue
        record = ended_record(run)
        if record is not None:
            if settle_from_record(store, run, record, closer):
                result.settled.append(run.run_id)
            continue
        _stop_marked(run, result)
        note = f"orphaned: its scheduler (pid {run.scheduler.pid}) died and its job ended with no record"
        if settle_abandoned(store, run.run_id, "orphaned", note):
            result.orphaned.append(run.run_id)
    # A dead scheduler whose jobs are all settled holds nothing any more; one with live jobs keeps their leases.
    for row in running_schedulers(store):
        if row.id == skip or row.id in keep or scheduler_alive(row):
            continue
        result.orphaned.extend(reclaim(store, row.id, note=f"orphaned: its scheduler (pid {row.pid} on {row.host}) "
                                                           "died"))
        result.schedulers.append(row.id)
    # Runs without a scheduler record (ad-hoc `mayuri.init` runs, or a scheduler that died before
    # its first attempt was recorded): judged by their attempt's executor, else by the creator's pid.
    for process in unfinished_runs(store):
        if process.scheduler_id is not None or process.host != socket.gethostname():
            continue
        if process.pid is not None or process.executor_ref is not None:
            gone = not _attempt_alive(process)
        else:
            gone = not _pid_alive(process.scheduler_pid)
        if gone:
            if settle_abandoned(store, process.run_id, "orphaned", "orphaned: the process that ran it is gone"):
                result.orphaned.append(process.run_id)
    result.stray_leases = drop_stray_leases(store)
    return result
