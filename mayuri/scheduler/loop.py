"""The local scheduler: walks the DAG of job instances, reuses cached runs, runs the rest.

One scheduler per `mayuri run`. Ready instances are checked against the cache
when all their upstreams are settled; misses are launched as subprocesses up
to `max_parallel` at once. A failed instance marks its dependents skipped
while unrelated branches go on. Ctrl-C stops every running job's process
tree and records the runs as cancelled.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.cache import CacheDecision, check, upstream_json
from mayuri.config import Settings
from mayuri.environment import git_info, gpu_info, platform_info, python_info
from mayuri.errors import ExecutorError
from mayuri.experiment.expand import JobInstance
from mayuri.job import read_outputs
from mayuri.scheduler.events import JobEvent, Reporter
from mayuri.scheduler.finish import record_attempt
from mayuri.scheduler.launch import prepare, upstream_values
from mayuri.scheduler.process import JobProcess, spawn, stop
from mayuri.store.db import Store
from mayuri.store.queries import outputs_of
from mayuri.store.records import (
    add_lineage,
    create_run,
    ensure_experiment,
    finish_attempt,
    finish_run,
    mark_run,
    new_run_id,
    record_hits,
    start_attempt,
)

SETTLED_OK = ("cached", "succeeded")


@dataclass
class Slot:
    """The state of one instance as the scheduler works through the plan."""

    instance: JobInstance
    state: str = "pending"
    reason: str = ""
    run_id: str | None = None
    fingerprint: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    process: JobProcess | None = None
    run_dir: Path | None = None
    closure_dir: Path | None = None
    upstream_fps: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Outcome:
    """The result of scheduling a plan: every slot, and whether it was interrupted."""

    slots: list[Slot]
    interrupted: bool = False

    def count(self, state: str) -> int:
        return sum(1 for s in self.slots if s.state == state)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.state in SETTLED_OK for s in self.slots)


class Scheduler:
    """Runs one expanded experiment against one store."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        experiment: str,
        instances: Sequence[JobInstance],
        reporter: Reporter,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings
        self.experiment = experiment
        self.slots = {inst.key: Slot(inst) for inst in instances}
        self.reporter = reporter
        self.force = force
        self.dry_run = dry_run
        self._environment: dict[str, Any] | None = None
        self._experiment_id: int | None = None

    # -- planning ---------------------------------------------------------

    def _emit(self, slot: Slot, state: str, reason: str = "", **extra: Any) -> None:
        slot.state = state
        slot.reason = reason or slot.reason
        self.reporter.event(JobEvent(slot.instance.key, state, slot.reason, slot.run_id, **extra))

    def _upstream_state(self, slot: Slot) -> tuple[bool, str | None]:
        """(all upstreams settled ok, the reason it can never run) for one slot."""
        for key in slot.instance.upstream_keys:
            up = self.slots[key]
            if up.state in ("failed", "skipped", "cancelled", "blocked"):
                return False, f"upstream {up.instance.key} {up.state}"
            if self.dry_run and up.state == "will run":
                return False, None
            if up.state not in SETTLED_OK:
                return False, None
        return True, None

    def _decide(self, slot: Slot) -> CacheDecision:
        inst = slot.instance
        slot.upstream_fps = {
            name: [self.slots[k].fingerprint or "" for k in keys] for name, keys in inst.upstream.items()
        }
        return check(
            self.store, self.settings.root, self.experiment, inst, slot.upstream_fps,
            self.settings.key_env, self.force,
        )

    def _settle_cached(self, slot: Slot, decision: CacheDecision) -> None:
        assert decision.cached is not None
        slot.run_id = decision.cached.id
        slot.fingerprint = decision.cached.fingerprint
        slot.outputs = outputs_of(self.store, decision.cached.id)
        self._emit(slot, "cached", decision.reason)

    def _advance_pending(self) -> list[Slot]:
        """Decide every pending slot whose upstreams are settled; returns the ones to launch."""
        ready = []
        for slot in self.slots.values():
            if slot.state != "pending":
                continue
            ok, blocked = self._upstream_state(slot)
            if blocked:
                self._emit(slot, "blocked" if self.dry_run else "skipped", blocked)
                continue
            if not ok:
                if self.dry_run and any(self.slots[k].state == "will run" for k in slot.instance.upstream_keys):
                    names = sorted({self.slots[k].instance.name for k in slot.instance.upstream_keys
                                    if self.slots[k].state == "will run"})
                    self._emit(slot, "will run", "upstream " + ", ".join(names) + " will run")
                continue
            decision = self._decide(slot)
            if decision.hit:
                self._settle_cached(slot, decision)
            elif self.dry_run:
                self._emit(slot, "will run", decision.reason)
            else:
                slot.state = "ready"
                slot.reason = decision.reason
                ready.append(slot)
        return ready

    def plan(self) -> Outcome:
        """Decide every instance without running anything (`--dry-run`)."""
        while True:
            before = [s.state for s in self.slots.values()]
            self._advance_pending()
            if [s.state for s in self.slots.values()] == before:
                break
        return Outcome(list(self.slots.values()))

    # -- running ------------------------------------------------------------

    def _base_environment(self) -> dict[str, Any]:
        if self._environment is None:
            self._environment = {
                "python": python_info(),
                "platform": platform_info(),
                "host": socket.gethostname(),
                "git": git_info(self.settings.root),
                "gpus": gpu_info(),
            }
        return self._environment

    def _launch(self, slot: Slot) -> None:
        inst = slot.instance
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(self.store, self.experiment)
        slot.run_id = new_run_id()
        slot.run_dir = self.store.runs / slot.run_id
        try:
            upstream = upstream_values(inst, {k: self.slots[k].outputs for k in inst.upstream_keys})
        except KeyError as exc:
            self._emit(slot, "skipped", str(exc.args[0]))
            return
        launch = prepare(
            inst, run_id=slot.run_id, run_dir=slot.run_dir, store_root=self.store.root,
            project_root=self.settings.root, attempt=1, upstream=upstream,
        )
        slot.closure_dir = launch.closure_dir
        create_run(
            self.store, run_id=slot.run_id, experiment_id=self._experiment_id, job=inst.name,
            kind=inst.job.kind, config_hash=inst.config_hash, params=inst.params, config=inst.config,
            upstream=slot.upstream_fps,
            reason=slot.reason, run_dir=slot.run_dir,
        )
        add_lineage(self.store, slot.run_id, self._parents(inst))
        try:
            slot.process = spawn(
                launch.command, cwd=self.settings.root, env=launch.env,
                stdout=slot.run_dir / "stdout.log", stderr=slot.run_dir / "stderr.log",
                shell=inst.job.shell,
            )
        except ExecutorError as exc:
            finish_run(self.store, slot.run_id, status="failed", exit_code=None, error=exc.message)
            self._emit(slot, "failed", exc.message)
            return
        start_attempt(
            self.store, slot.run_id, 1, pid=slot.process.pid,
            pid_create_time=slot.process.create_time, params=launch.params,
        )
        self._emit(slot, "running", slot.reason, attempt=1)

    def _parents(self, inst: JobInstance) -> dict[str, str]:
        parents = {}
        for name, keys in inst.upstream.items():
            for index, key in enumerate(keys):
                run_id = self.slots[key].run_id
                if run_id:
                    parents[name if len(keys) == 1 else f"{name}[{index}]"] = run_id
        return parents

    def _finish(self, slot: Slot, code: int | None, cancelled: bool = False) -> None:
        assert slot.process is not None and slot.run_id is not None and slot.run_dir is not None
        assert slot.closure_dir is not None
        process = slot.process
        process.close()
        signal_number = -code if code is not None and code < 0 else None
        exit_code = code if code is not None and code >= 0 else None
        if cancelled:
            status, cause, error = "cancelled", "cancelled", "cancelled (interrupted)"
        elif code == 0:
            status, cause, error = "succeeded", None, None
        elif signal_number is not None:
            status, cause, error = "failed", "signal", f"killed by signal {signal_number}"
        else:
            status, cause, error = "failed", "exit", f"exited with code {code}"
        finish_attempt(self.store, slot.run_id, 1, status=status, exit_code=exit_code,
                       signal=signal_number, cause=cause)
        outputs = read_outputs(slot.run_dir)
        missing = [name for name in slot.instance.job.outputs if name not in outputs]
        if status == "succeeded" and missing:
            status = "failed"
            error = "exited 0 but did not set declared output " + ", ".join(f"'{m}'" for m in missing) + \
                " (call mayuri.output(name, value) in the job)"
        recorded = record_attempt(
            self.store, self.settings.root, slot.instance, slot.run_dir, slot.closure_dir,
            process.started, slot.upstream_fps, self.settings.key_env, self._base_environment(),
        )
        finish_run(
            self.store, slot.run_id, status=status, exit_code=exit_code if exit_code is not None else code,
            error=error or recorded.note,
            fingerprint=recorded.fingerprint if status == "succeeded" else None,
            closure=recorded.closure, environment=recorded.environment, outputs=outputs,
        )
        slot.fingerprint = recorded.fingerprint or f"unreusable:{slot.run_id}"
        slot.outputs = outputs
        self._emit(slot, status, error or slot.reason, duration=time.time() - process.started)

    def _running(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.state == "running"]

    def _wait(self, timeout: float) -> None:
        fds = [s.process.pidfd for s in self._running() if s.process and s.process.pidfd is not None]
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)

    def run(self) -> Outcome:
        """Run the plan to the end (or until interrupted)."""
        limit = self.settings.scheduler.max_parallel
        queue: list[Slot] = []
        hits: set[str] = set()
        try:
            while True:
                for slot in self._advance_pending():
                    queue.append(slot)
                hits.update(s.run_id for s in self.slots.values() if s.state == "cached" and s.run_id)
                while queue and len(self._running()) < limit:
                    self._launch(queue.pop(0))
                for slot in self._running():
                    assert slot.process is not None
                    code = slot.process.popen.poll()
                    if code is not None:
                        self._finish(slot, code)
                if not queue and not self._running():
                    if not any(s.state in ("pending", "ready") for s in self.slots.values()):
                        break
                    if not any(s.state == "pending" and self._upstream_state(s)[0] for s in self.slots.values()):
                        # Nothing can make progress any more.
                        break
                    continue
                if self._running():
                    self._wait(self.settings.scheduler.poll_interval)
        except KeyboardInterrupt:
            self._cancel_all(queue)
            record_hits(self.store, hits)
            return Outcome(list(self.slots.values()), interrupted=True)
        record_hits(self.store, hits)
        return Outcome(list(self.slots.values()))

    def _cancel_all(self, queue: list[Slot]) -> None:
        for slot in self._running():
            assert slot.process is not None
            code = stop(slot.process, self.settings.scheduler.kill_grace)
            self._finish(slot, code, cancelled=True)
        for slot in self.slots.values():
            if slot.state in ("pending", "ready"):
                if slot.run_id:
                    mark_run(self.store, slot.run_id, "cancelled", "cancelled before it started")
                self._emit(slot, "cancelled", "interrupted before it started")
