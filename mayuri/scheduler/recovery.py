"""Crash recovery: find schedulers that died without cleaning up, stop their jobs, free their leases.

A scheduler is alive when, on this host, its (boot id, pid, create time)
still names a live process, or, on another host, its heartbeat is fresh
(RELIABILITY.md decision 4). A dead scheduler's jobs are killed (so they hold
no GPU after it), its unfinished runs marked `orphaned` (the next `mayuri
run` runs them again, since they are not cached) and its leases freed. Used
by every scheduler before its first launch, and by `mayuri doctor`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from mayuri.liveness import scheduler_alive
from mayuri.process_identity import boot_id, host, same_process
from mayuri.scheduler.process import kill_recorded
from mayuri.store.attempt_records import settle_abandoned
from mayuri.store.db import Store
from mayuri.store.lease_records import drop_stray_leases, reclaim
from mayuri.store.scheduler_queries import running_schedulers, unfinished_runs

KILL_GRACE = 3.0


@dataclass
class Recovery:
    """What one recovery pass found and did."""

    schedulers: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
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


def recover(store: Store, *, skip: str | None = None) -> Recovery:
    """Reclaim every dead scheduler (except `skip`, the caller's own id)."""
    result = Recovery()
    dead = [row for row in running_schedulers(store) if row.id != skip and not scheduler_alive(row)]
    if dead:
        unfinished = unfinished_runs(store)
        for row in dead:
            if row.host == host():
                for run in unfinished:
                    if run.scheduler_id == row.id and same_process(run.pid, run.pid_create_time, run.boot_id):
                        assert run.pid is not None
                        kill_recorded(run.pid, run.run_id, KILL_GRACE)
                        result.killed.append(run.pid)
            note = f"orphaned: its scheduler (pid {row.pid} on {row.host}) died"
            runs = reclaim(store, row.id, note=note)
            result.schedulers.append(row.id)
            result.orphaned.extend(runs)
    # Runs without a scheduler record (ad-hoc `mayuri.init` runs, or a scheduler that died before
    # its first attempt was recorded): judged by their attempt's process, else by the creator's pid.
    for run in unfinished_runs(store):
        if run.scheduler_id is not None or run.host != socket.gethostname():
            continue
        if run.pid is not None:
            gone = not same_process(run.pid, run.pid_create_time, boot_id())
        else:
            gone = not _pid_alive(run.scheduler_pid)
        if gone:
            if settle_abandoned(store, run.run_id, "orphaned", "orphaned: the process that ran it is gone"):
                result.orphaned.append(run.run_id)
    result.stray_leases = drop_stray_leases(store)
    return result
