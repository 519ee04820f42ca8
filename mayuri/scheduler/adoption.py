"""Adopting jobs whose scheduler died: `mayuri run` waits for the ones it would start again.

Before planning, `mayuri run` recovers the store (`recovery.py`). A job of
this experiment, with the same job and config as an instance of the plan,
still running under the shepherd of a dead scheduler is the very job this
run would start: it is adopted, not started twice. The run waits for it
(shown as `running`, "adopted"), then records its end from the shepherd's
record as its own scheduler would have (closure, code blobs, fingerprint),
so that the plan that follows reuses it like any cached run. Live jobs of
other experiments or other configs are left running; whoever recovers
after they end records them.

`mayuri doctor` adopts every live job of a dead scheduler (`adopt_all`): it
waits for them, saying which it still waits for, and records each from the
shepherd's record when it ends (not reusable: doctor has no experiment file,
so no closure is hashed). Ctrl-C stops the wait and leaves them running.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mayuri.config import Settings
from mayuri.environment import base_environment
from mayuri.executors import of_attempt
from mayuri.experiment.expand import JobInstance
from mayuri.experiment.upstream_positions import by_name
from mayuri.run_contract import closure_dir
from mayuri.scheduler.events import JobEvent, Reporter
from mayuri.scheduler.finish import close_run
from mayuri.scheduler.recovery import (
    Recovery,
    attempt_ref,
    ended_record,
    job_alive,
    plain_close,
    recover,
    settle_from_record,
)
from mayuri.store.attempt_records import settle_abandoned
from mayuri.store.db import Store
from mayuri.store.records import RunClose
from mayuri.store.scheduler_queries import UnownedRun

POLL = 0.5


class _Closer:
    """Closes adopted runs of known instances the way the scheduler closes its own."""

    def __init__(self, store: Store, settings: Settings, instances: dict[tuple[str, str], JobInstance]) -> None:
        self.store, self.settings, self.instances = store, settings, instances
        self._environment: dict[str, Any] | None = None

    def __call__(self, run: UnownedRun, status: str, code: int, error: str | None,
                 outputs: dict[str, Any]) -> RunClose:
        instance = self.instances.get((run.job, run.config_hash))
        if instance is None:
            return plain_close(run, status, code, error, outputs)
        if self._environment is None:
            self._environment = base_environment(self.settings.root)
        closed = close_run(self.store, self.settings.root, instance, Path(run.run_dir), _closure_dir(run),
                           run.started_at or 0.0, by_name(_upstream_of(run), instance.positions),
                           self.settings.key_env, self._environment,
                           status=status, code=code, error=error)
        return closed.close


def _wait_until_gone(run: UnownedRun) -> None:
    while job_alive(run):
        of_attempt(run.executor).wait_ended(attempt_ref(run), POLL)


def adopt(store: Store, settings: Settings, experiment: str, instances: Sequence[JobInstance],
          reporter: Reporter) -> Recovery:
    """Recover the store; wait for and record the live jobs of dead schedulers that this plan would start."""
    by_config = {(inst.name, inst.config_hash): inst for inst in instances}
    closer = _Closer(store, settings, by_config)
    found = recover(store, closer=closer)
    for run in found.adoptable:
        instance = by_config.get((run.job, run.config_hash))
        if run.experiment != experiment or instance is None:
            continue
        reporter.event(JobEvent(instance.key, "running", "adopted: its scheduler died; waiting for it to end",
                                run.run_id, attempt=run.attempt or 1))
        _wait_until_gone(run)
        record = ended_record(run, wait=settings.scheduler.kill_grace + 2.0)
        if record is not None:
            settle_from_record(store, run, record, closer)
            found.settled.append(run.run_id)
        elif settle_abandoned(store, run.run_id, "orphaned", "orphaned: its job ended with no record"):
            found.orphaned.append(run.run_id)
    return found


def adopt_all(store: Store, runs: Sequence[UnownedRun], progress: Callable[[str], None],
              wait: float = 2.0) -> Recovery:
    """Wait for each live job of a dead scheduler and record how it ended (Ctrl-C leaves the rest running).

    `progress` is told, whenever one ends, which are still waited for; `wait`
    is how long a record may take to appear after the job is gone.
    """
    found = Recovery()
    waiting = list(runs)
    while waiting:
        names = ", ".join(f"{r.run_id[:8]} ({r.experiment}/{r.job})" for r in waiting[:5])
        more = f" (+{len(waiting) - 5} more)" if len(waiting) > 5 else ""
        progress(f"waiting for {len(waiting)} job(s) of a dead scheduler to end: {names}{more} "
                 "(Ctrl-C leaves them running)")
        run = waiting.pop(0)
        _wait_until_gone(run)
        record = ended_record(run, wait=wait)
        if record is not None:
            if settle_from_record(store, run, record):
                found.settled.append(run.run_id)
        elif settle_abandoned(store, run.run_id, "orphaned", "orphaned: its job ended with no record"):
            found.orphaned.append(run.run_id)
    return found


def _upstream_of(run: UnownedRun) -> dict[str, list[str]]:
    """The upstream results a run was launched with (by position; by name if recorded before that)."""
    loaded = json.loads(run.upstream or "{}")
    return loaded if isinstance(loaded, dict) else {}


def _closure_dir(run: UnownedRun) -> Path:
    return closure_dir(Path(run.run_dir), run.attempt or 1)
