"""The local scheduler: walks the DAG of job instances, reuses cached runs, runs the rest.

One scheduler per `mayuri run`. Ready instances are checked against the cache
when all their upstreams are settled; misses are launched as subprocesses, as
many as `max_parallel` and the GPUs (leases in the store, shared with other
schedulers) allow. A failed attempt may be retried (`retry.py`); a failed
instance marks its dependents skipped while unrelated branches go on.
Timeouts, `mayuri cancel`, Ctrl-C and SIGTERM stop a job's process tree
without blocking the loop. Launching and recording one attempt is
`attempts.py`'s job; this module only decides what happens next.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from mayuri.environment import git_info, gpu_info, platform_info, python_info
from mayuri.errors import ExecutorError
from mayuri.experiment.expand import JobInstance, with_params
from mayuri.gpu import inventory, process_gpu_memory
from mayuri.job import read_outputs
from mayuri.scheduler.leases import Fenced, LeaseKeeper
from mayuri.scheduler.placement import usable
from mayuri.scheduler.plan import SETTLED_OK, Outcome, Planner, Slot
from mayuri.scheduler.process import kill, reap, stop, terminate
from mayuri.scheduler.recovery import recover
from mayuri.store.metric_records import append_points
from mayuri.store.records import add_lineage, create_run, ensure_experiment, finish_run, mark_run, new_run_id, record_hits
from mayuri.store.scheduler_queries import cancel_requests

if TYPE_CHECKING:
    from mayuri.scheduler import attempts

__all__ = ["SETTLED_OK", "Outcome", "Scheduler", "Slot"]

# How often the store is asked for cancel requests and for GPUs when none was free.
CANCEL_CHECK_INTERVAL = 0.5
GPU_RETRY_INTERVAL = 0.5
MAX_WAIT = 0.25
# NVML's free memory changes as jobs allocate; read it again at most this often.
DEVICE_REFRESH = 2.0


class Scheduler(Planner):
    """Runs one expanded experiment against one store: launches, watches, retries, stops."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environment: dict[str, Any] | None = None
        self._experiment_id: int | None = None
        self._signals = 0
        self._queue: list[Slot] = []
        self._running: set[str] = set()
        self._gpu_retry_at = 0.0
        self._next_cancel_check = 0.0
        self._stopping = False
        self._devices_at = 0.0

    # -- launching ----------------------------------------------------------

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

    def _parents(self, inst: JobInstance) -> dict[str, str]:
        parents = {}
        for name, keys in inst.upstream.items():
            for index, key in enumerate(keys):
                run_id = self.slots[key].run_id
                if run_id:
                    parents[name if len(keys) == 1 else f"{name}[{index}]"] = run_id
        return parents

    def _create_run(self, slot: Slot) -> None:
        inst = slot.instance
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(self.store, self.experiment)
        slot.run_id = new_run_id()
        slot.run_dir = self.store.runs / slot.run_id
        slot.current = inst
        create_run(
            self.store, run_id=slot.run_id, experiment_id=self._experiment_id, job=inst.name,
            kind=inst.job.kind, config_hash=inst.config_hash, params=inst.params, config=inst.config,
            upstream=slot.upstream_fps, reason=slot.reason, run_dir=slot.run_dir,
        )
        add_lineage(self.store, slot.run_id, self._parents(inst))

    def _try_launch(self, slot: Slot, keeper: LeaseKeeper, now: float) -> bool:
        """Start the next attempt of a ready slot if its time has come and its GPUs are free."""
        if slot.not_before > now:
            return False
        leases: list[Any] = []
        if slot.request.gpus:
            if now < self._gpu_retry_at:
                return False
            if now >= self._devices_at + DEVICE_REFRESH and not all(d.fake for d in self.devices):
                self._devices_at = now
                self.devices = usable(inventory(), self.settings.scheduler.gpus)
            taken = keeper.take(slot.request, self.devices, slot.avoid)
            if taken is None and slot.avoid:
                # Nowhere else to move to right now: any GPU will do rather than none.
                taken = keeper.take(slot.request, self.devices)
            if taken is None:
                self._gpu_retry_at = now + GPU_RETRY_INTERVAL
                if slot.reason != "waiting for a GPU":
                    self._emit(slot, "ready", "waiting for a GPU")
                return False
            leases = taken
        # Imported on first launch: an all-cached run never needs the launch machinery.
        from mayuri.scheduler import attempts
        from mayuri.scheduler.launch import upstream_values

        inst = slot.instance
        try:
            upstream = upstream_values(inst, {k: self.slots[k].outputs for k in inst.upstream_keys})
        except KeyError as exc:
            keeper.give_back(leases)
            self._emit(slot, "skipped", str(exc.args[0]))
            return True
        if slot.run_id is None:
            self._create_run(slot)
        assert slot.run_id is not None and slot.run_dir is not None and slot.current is not None
        slot.attempt += 1
        try:
            slot.active = attempts.start(
                self.store, keeper, slot.current, run_id=slot.run_id, run_dir=slot.run_dir,
                project_root=self.settings.root, number=slot.attempt, upstream=upstream, leases=leases,
                devices={d.uuid: d for d in self.devices}, timeout=inst.job.timeout,
            )
        except ExecutorError as exc:
            keeper.give_back(leases)
            finish_run(self.store, slot.run_id, status="failed", exit_code=None, error=exc.message)
            self._emit(slot, "failed", exc.message)
            return True
        slot.active.sampler.step = slot.sys_step
        self._running.add(slot.instance.key)
        self._emit(slot, "running", slot.reason)
        return True

    # -- finishing ------------------------------------------------------------

    def _finish(self, slot: Slot, code: int, keeper: LeaseKeeper) -> None:
        from mayuri.scheduler import attempts
        from mayuri.scheduler.retry import decide

        active = slot.active
        assert active is not None and slot.run_id is not None and slot.run_dir is not None
        assert slot.current is not None
        self._running.discard(slot.instance.key)
        slot.sys_step = active.sampler.step
        ended = attempts.finish(self.store, keeper, slot.run_id, slot.run_dir, active, code)
        self._gpu_retry_at = 0.0
        slot.causes.append(ended.cause or "ok")
        if ended.status == "failed" and not self._stopping:
            choice = decide(slot.instance.job.retry, ended.cause or "exit", slot.causes, slot.current.params,
                            active.gpus)
            if choice.retry:
                if choice.changes:
                    slot.current = with_params(slot.current, choice.changes)
                slot.not_before = time.monotonic() + choice.delay
                slot.avoid = choice.avoid_gpus
                slot.active = None
                self._queue.insert(0, slot)
                self._emit(slot, "ready", choice.reason)
                return
            error = f"{ended.error}; {choice.reason}" if choice.reason != "failed" else ended.error
        else:
            error = ended.error
        self._close_run(slot, active, ended, error)

    def _close_run(self, slot: Slot, active: attempts.Active, ended: attempts.Ended, error: str | None) -> None:
        from mayuri.scheduler.finish import record_attempt

        assert slot.run_id is not None and slot.run_dir is not None and slot.current is not None
        status = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(ended.status, "failed")
        outputs = read_outputs(slot.run_dir)
        missing = [name for name in slot.instance.job.outputs if name not in outputs]
        if status == "succeeded" and missing:
            status = "failed"
            error = "exited 0 but did not set declared output " + ", ".join(f"'{m}'" for m in missing) + \
                " (call mayuri.output(name, value) in the job)"
        recorded = record_attempt(
            self.store, self.settings.root, slot.current, slot.run_dir, active.launch.closure_dir,
            active.process.started, slot.upstream_fps, self.settings.key_env, self._base_environment(),
        )
        finish_run(
            self.store, slot.run_id, status=status, exit_code=ended.code,
            error=error or recorded.note,
            fingerprint=recorded.fingerprint if status == "succeeded" else None,
            closure=recorded.closure, environment=recorded.environment, outputs=outputs,
        )
        slot.fingerprint = recorded.fingerprint or f"unreusable:{slot.run_id}"
        slot.outputs = outputs
        self._emit(slot, status, error or slot.reason, duration=ended.duration)
        slot.active = None

    # -- watching -------------------------------------------------------------

    def _stop_slot(self, slot: Slot, reason: str, now: float) -> None:
        active = slot.active
        if active is None or active.stop_reason is not None:
            return
        active.stop_reason = reason
        active.kill_at = now + self.settings.scheduler.kill_grace
        terminate(active.process)

    def _watch(self, keeper: LeaseKeeper, now: float) -> None:
        """Timeouts, kill deadlines, cancel requests, samples and the heartbeat."""
        running = [self.slots[k] for k in self._running]
        for slot in running:
            active = slot.active
            assert active is not None
            if active.deadline is not None and now >= active.deadline and active.stop_reason is None:
                self._stop_slot(slot, "timeout", now)
            if active.kill_at is not None and now >= active.kill_at:
                kill(active.process)
                active.kill_at = now + 1.0
        if now >= self._next_cancel_check:
            self._next_cancel_check = now + CANCEL_CHECK_INTERVAL
            wanted = set(cancel_requests(self.store, keeper.id))
            for slot in self.slots.values():
                if slot.run_id in wanted:
                    if slot.active is not None:
                        self._stop_slot(slot, "cancelled", now)
                    elif slot.state == "ready":
                        self._cancel_waiting(slot, "cancelled (mayuri cancel)")
        due = [s for s in running if s.active is not None and s.active.sampler.due(now)]
        if due:
            gpu_memory = process_gpu_memory() if any(s.active and s.active.gpus for s in due) else {}
            for slot in due:
                assert slot.active is not None and slot.run_id is not None
                points = slot.active.sampler.sample(gpu_memory, now)
                if points:
                    append_points(self.store, slot.run_id, points)
        keeper.beat_if_due(now)

    def _cancel_waiting(self, slot: Slot, note: str) -> None:
        if slot in self._queue:
            self._queue.remove(slot)
        if slot.run_id:
            mark_run(self.store, slot.run_id, "cancelled", note)
        self._emit(slot, "cancelled", note)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1

    def _begin_stopping(self, now: float) -> None:
        if not self._stopping:
            self._stopping = True
            for key in list(self._running):
                self._stop_slot(self.slots[key], "cancelled", now)
            for slot in self.slots.values():
                if slot.state in ("pending", "ready") and slot.active is None:
                    self._cancel_waiting(slot, "cancelled before it started (interrupted)")
        if self._signals >= 2:
            for key in self._running:
                active = self.slots[key].active
                assert active is not None
                kill(active.process)

    def _wait(self, now: float) -> None:
        timeout = MAX_WAIT
        for key in self._running:
            active = self.slots[key].active
            assert active is not None
            for moment in (active.deadline, active.kill_at, active.sampler.next_at):
                if moment is not None:
                    timeout = min(timeout, max(0.0, moment - now))
        fds = [self.slots[k].active.process.pidfd for k in self._running  # type: ignore[union-attr]
               if self.slots[k].active.process.pidfd is not None]  # type: ignore[union-attr]
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(min(timeout, self.settings.scheduler.poll_interval) if self._running else timeout)

    # -- the loop -------------------------------------------------------------

    def run(self) -> Outcome:
        """Run the plan to the end (or until interrupted)."""
        self._check_resources()
        keeper = LeaseKeeper(self.store, self.experiment)
        recover(self.store, skip=keeper.id)
        previous = self._install_signals()
        hits: set[str] = set()
        fenced = False
        try:
            self._loop(keeper, hits)
        except Fenced:
            fenced = True
            raise
        finally:
            self._kill_leftovers()
            self._restore_signals(previous)
            record_hits(self.store, hits)
            if not fenced:
                keeper.close()
        return Outcome(list(self.slots.values()), interrupted=self._signals > 0)

    def _loop(self, keeper: LeaseKeeper, hits: set[str]) -> None:
        limit = self.settings.scheduler.max_parallel
        while True:
            now = time.monotonic()
            if self._signals:
                self._begin_stopping(now)
            else:
                self._queue.extend(self._advance_pending())
                hits.update(s.run_id for s in self.slots.values() if s.state == "cached" and s.run_id)
                index = 0
                while index < len(self._queue) and len(self._running) < limit:
                    slot = self._queue[index]
                    if self._try_launch(slot, keeper, now):
                        self._queue.pop(index)
                    else:
                        index += 1
            finished = 0
            for key in list(self._running):
                slot = self.slots[key]
                assert slot.active is not None
                code = reap(slot.active.process)
                if code is not None:
                    self._finish(slot, code, keeper)
                    finished += 1
            if not self._running:
                if self._stopping or not self._queue and not self._can_progress():
                    return
            self._watch(keeper, time.monotonic())
            if not finished:
                # A job that ended may have freed a slot or a GPU: launch before waiting again.
                self._wait(time.monotonic())

    def _can_progress(self) -> bool:
        return any(s.state == "pending" and self._upstream_state(s)[0] for s in self.slots.values()) or any(
            s.state == "pending" and self._upstream_state(s)[1] for s in self.slots.values())

    def _kill_leftovers(self) -> None:
        # Whatever happened (a bug, a fenced scheduler), no job outlives its scheduler.
        for key in list(self._running):
            active = self.slots[key].active
            if active is not None:
                stop(active.process, min(self.settings.scheduler.kill_grace, 2.0))
        self._running.clear()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
