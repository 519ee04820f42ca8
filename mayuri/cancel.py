"""`mayuri cancel`: stop running or queued runs, whichever scheduler owns them.

A live scheduler is asked through the store (it stops the job's process tree
within its kill grace and records the run cancelled); a run whose scheduler
is gone is stopped here (its process identity checked first, so that an
unrelated process that reused the pid is never signalled) and closed as
cancelled. Never prints: the CLI renders the result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mayuri.executors import DEFAULT, of_attempt
from mayuri.executors.base import AttemptRef
from mayuri.liveness import scheduler_alive
from mayuri.store.attempt_records import request_cancel, settle_abandoned
from mayuri.store.db import Store
from mayuri.store.queries import get_run
from mayuri.store.scheduler_queries import run_status, running_schedulers, unfinished_runs

KILL_GRACE = 5.0


@dataclass
class CancelResult:
    """What happened to each run asked for."""

    cancelled: list[str] = field(default_factory=list)
    already_finished: list[str] = field(default_factory=list)
    still_stopping: list[str] = field(default_factory=list)


def cancel_runs(store: Store, refs: Sequence[str], *, every: bool = False, wait: float = 30.0) -> CancelResult:
    """Cancel the runs `refs` (id prefixes), or every unfinished run; waits up to `wait` seconds for them."""
    result = CancelResult()
    if every:
        ids = [r.run_id for r in unfinished_runs(store)]
    else:
        ids = list(dict.fromkeys(get_run(store, ref).id for ref in refs))
    active = request_cancel(store, ids)
    result.already_finished = [i for i in ids if i not in active]
    live = {row.id for row in running_schedulers(store) if scheduler_alive(row)}
    owned = []
    for run in unfinished_runs(store, active):
        if run.scheduler_id in live:
            owned.append(run.run_id)
            continue
        executor = of_attempt(run.executor)
        attempt = AttemptRef(run.executor or DEFAULT, run.executor_ref, run.run_id, None, run.host, run.boot_id,
                             run.pid, run.pid_create_time)
        if executor.alive(attempt):
            executor.settle_orphan(attempt, KILL_GRACE)
        settle_abandoned(store, run.run_id, "cancelled", "cancelled (mayuri cancel; its scheduler was gone)")
        result.cancelled.append(run.run_id)
    deadline = time.monotonic() + wait
    waiting = set(owned)
    while waiting and time.monotonic() < deadline:
        for run_id, status in run_status(store, waiting).items():
            if status not in ("queued", "running"):
                waiting.discard(run_id)
                result.cancelled.append(run_id)
        if waiting:
            time.sleep(0.1)
    result.still_stopping = sorted(waiting)
    # A run that was between attempts when asked is closed by its scheduler too; keep the caller's order.
    result.cancelled = [i for i in ids if i in result.cancelled]
    return result
