"""The local scheduler: walks the DAG of job instances, reuses cached runs, runs the rest.

One scheduler per `mayuri run`. Ready instances are checked against the cache
when all their upstreams are settled; misses are launched as subprocesses, as
many as `max_parallel` and the GPUs (leases in the store, shared with other
schedulers) allow. A failed attempt may be retried (`retry.py`); a failed
instance marks its dependents skipped while unrelated branches go on.
Timeouts, `mayuri cancel`, Ctrl-C and SIGTERM stop a job's process tree
without blocking the loop. Launching and recording one attempt is
`attempts.py`'s job; this module decides what happens next, and records
together the attempts that ended in the same turn (one transaction). With
jobs in flight, a store locked past its busy timeout only delays the
records (`patience.py`); it never abandons the jobs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from mayuri.closure.launch import roots_env
from mayuri.collector import long_running
from mayuri.environment import base_environment
from mayuri.experiment.expand import JobInstance, with_params
from mayuri.experiment.shard_expand import is_reduction
from mayuri.experiment.upstream_positions import by_position
from mayuri.run_contract import RESUME_FROM_VAR, log_file
from mayuri.scheduler.claims import claim_key, settled_waits, waiting_note
from mayuri.scheduler.events import JobEvent
from mayuri.scheduler.leases import Fenced, LeaseKeeper
from mayuri.scheduler.patience import patiently
from mayuri.scheduler.plan import SETTLED_OK, Outcome, Planner, Slot
from mayuri.scheduler.resume import Resume, find_resume
from mayuri.store.attempt_records import Claimed, EndRecord, record_ends, record_placements
from mayuri.store.db import StoreLocked
from mayuri.store.hit_log import log_hits
from mayuri.store.metric_records import append_points
from mayuri.store.records import (
    NewRun,
    RunClose,
    ensure_experiment,
    mark_run,
    new_run_id,
)
from mayuri.store.scheduler_queries import cancel_requests, claim_holders

if TYPE_CHECKING:
    from mayuri.executors.base import Executor, Exit
    from mayuri.executors.remote.ingest import Ingester
    from mayuri.scheduler import attempts

__all__ = ["SETTLED_OK", "Outcome", "Scheduler", "Slot"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often the store is asked for cancel requests and for GPUs when none was free.
CANCEL_CHECK_INTERVAL = 0.5
GPU_RETRY_INTERVAL = 0.5
MAX_WAIT = 0.25
# NVML's free memory changes as jobs allocate; read it again at most this often.
DEVICE_REFRESH = 2.0


class Scheduler:
    """Runs one expanded experiment against one store: launches, watches, retries, stops.

    It holds the `Planner` that decided the plan so far (the slots, their
    states, the cache decisions still to come) and goes on from where it
    stopped; what runs where is asked of an `Executor`, and time of `clock`.
    """

    def __init__(self, planner: Planner, ready: Sequence[Slot], *, fresh: bool = False,
                 executor: Executor | None = None, default_executor: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # `ready`: the instances the planner found must run.
        self.planner = planner
        self.slots = planner.slots
        self.store = planner.store
        self.settings = planner.settings
        self.experiment = planner.experiment
        self.reporter = planner.reporter
        # The GPUs jobs are placed on: the planner's inventory, refreshed from the executor as jobs allocate.
        self.devices = planner.devices
        # `executor`: one executor for every job (tests); else each job's `executor:`, else
        # `default_executor` (`mayuri run --executor`), else `[executor] default`, loaded on first use.
        self._executors: dict[str, Executor] = {}
        self._only_executor = executor
        self._default_executor = default_executor or self.settings.executor.default
        self._clock = clock
        self._handed_over = list(ready)
        self._environment: dict[str, Any] | None = None
        self._experiment_id: int | None = None
        self._signals = 0
        self._queue: list[Slot] = []
        self._running: set[str] = set()
        self._gpu_retry_at = 0.0
        self._next_cancel_check = 0.0
        self._stopping = False
        self._devices_at = 0.0
        self._runs_dir = self.store.runs
        self._job_env: dict[str, str] | None = None
        # --fresh: no run resumes an interrupted predecessor's checkpoint.
        self._fresh = fresh
        self._resumes: dict[str, Resume] = {}
        # Slots waiting for a run that claims the same work (see claims.py), by that run's id.
        self._waiting: dict[str, list[Slot]] = {}
        self._next_claim_check = 0.0
        # Reads the spools of jobs on remote nodes into the store (`mayuri.executors.remote.ingest`).
        self._ingester: Ingester | None = None

    # -- launching ----------------------------------------------------------

    def _executor_for(self, slot: Slot) -> Executor:
        """The executor that runs a slot's job, made on first use."""
        if self._only_executor is not None:
            return self._only_executor
        name = slot.instance.job.executor or self._default_executor
        executor = self._executors.get(name)
        if executor is None:
            from mayuri.executors import load

            executor = self._executors[name] = load(name, self.settings.executor.options.get(name))
            if hasattr(executor, "poll_interval"):
                executor.poll_interval = self.settings.scheduler.poll_interval
        return executor

    def _spool_reader(self) -> Ingester:
        """The thread that reads remote jobs' spools into the store (started with the first such job)."""
        if self._ingester is None:
            from mayuri.executors.remote.ingest import Ingester

            store = self.store
            self._ingester = Ingester(lambda: store)
        return self._ingester

    def _base_environment(self) -> dict[str, Any]:
        if self._environment is None:
            self._environment = base_environment(self.settings.root)
        return self._environment

    def _parents(self, inst: JobInstance) -> dict[str, str]:
        parents = {}
        for name, keys in inst.upstream.items():
            for index, key in enumerate(keys):
                run_id = self.slots[key].run_id
                if run_id:
                    parents[name if len(keys) == 1 else f"{name}[{index}]"] = run_id
        return parents

    def _patiently(self, write: Callable[[], T], slots: Sequence[Slot]) -> T:
        """A recording write, tried again while the store is locked; the jobs concerned show why they wait."""
        def warn(waited: float) -> None:
            note = f"store locked for {waited:.0f}s: recording delayed, retrying"
            if not slots:
                log.warning("warning: %s", note)
            for slot in slots:
                gpus = tuple(slot.active.gpus) if slot.active else ()
                self.reporter.event(JobEvent(slot.instance.key, slot.state, note, slot.run_id,
                                             attempt=slot.attempt, gpus=gpus))

        return patiently(write, warn)

    def _new_run(self, slot: Slot, resume: Resume | None) -> NewRun:
        """Give a slot its run (id, folder), to be inserted with its first attempt."""
        inst = slot.instance
        parents = self._parents(inst)
        if resume is not None:
            parents["resumed"] = resume.run_id
        if self._experiment_id is None:
            self._experiment_id = self._patiently(lambda: ensure_experiment(self.store, self.experiment), [slot])
        slot.run_id = new_run_id()
        slot.run_dir = self._runs_dir / slot.run_id
        slot.current = inst
        used_sets = self.planner.known_used(inst.base_hash)
        return NewRun(
            run_id=slot.run_id, experiment_id=self._experiment_id, job=inst.name, kind=inst.job.kind,
            config_hash=inst.config_hash, params=inst.params, config=inst.config,
            upstream=by_position(slot.upstream_fps, inst.positions),
            reason=slot.reason, run_dir=str(slot.run_dir), parents=parents, origin=self.planner.origin,
            base_hash=inst.base_hash, labels=inst.dims,
            claim=None if self.planner.force else claim_key(inst, slot.upstream_fps, used_sets),
        )

    def _take_gpus(self, slot: Slot, keeper: LeaseKeeper, now: float) -> list[Any] | None:
        if now < self._gpu_retry_at:
            return None
        if now >= self._devices_at + DEVICE_REFRESH and not all(d.fake for d in self.devices):
            self._devices_at = now
            self.devices = self._executor_for(slot).capacity(self.settings.scheduler.gpus)
        try:
            taken = self._executor_for(slot).place(slot.request, self.devices, slot.avoid, keeper.take)
        except StoreLocked:
            self._gpu_retry_at = now + GPU_RETRY_INTERVAL
            self.reporter.event(JobEvent(slot.instance.key, slot.state, "store locked: waiting to take a GPU",
                                         slot.run_id, attempt=slot.attempt))
            return None
        if taken is None:
            self._gpu_retry_at = now + GPU_RETRY_INTERVAL
            if slot.reason != "waiting for a GPU":
                self.planner.emit(slot, "ready", "waiting for a GPU")
        return taken

    def _next_attempt(self, slot: Slot, keeper: LeaseKeeper, now: float) -> tuple[bool, attempts.Planned | None]:
        """(whether the slot leaves the queue, its next attempt, with its files made, if that can start now)."""
        if slot.not_before > now:
            return False, None
        if slot.run_id is None and slot.checked != self.planner.succeeded:
            # A run that succeeded since this instance was decided may have done its work: ask again.
            slot.checked = self.planner.succeeded
            # A miss keeps the reason it was given at plan time: it need not be explained again.
            decision = self.planner.decide(slot, explain=False)
            if decision.hit:
                self.planner.settle_cached(slot, decision)
                return True, None
        leases: list[Any] = []
        if slot.request.gpus and not self._executor_for(slot).places_gpus:
            taken = self._take_gpus(slot, keeper, now)
            if taken is None:
                return False, None
            leases = taken
        # Imported on first launch: an all-cached run never needs the launch machinery.
        from mayuri.scheduler.attempts import Planned, plan_attempt
        from mayuri.scheduler.launch import make_files, upstream_values

        inst = slot.instance
        try:
            upstream = upstream_values(inst, {k: self.slots[k].outputs for k in inst.upstream_keys})
        except KeyError as exc:
            self._patiently(lambda: keeper.give_back(leases), [slot])
            self.planner.emit(slot, "skipped", str(exc.args[0]))
            return True, None
        new_run = None
        if slot.run_id is None:
            resume = None if self._fresh else find_resume(self.store, self.experiment, inst.name, inst.config_hash)
            new_run = self._new_run(slot, resume)
            if resume is not None:
                assert slot.run_id is not None
                self._resumes[slot.run_id] = resume
        assert slot.run_id is not None and slot.run_dir is not None and slot.current is not None
        if self._job_env is None:
            self._job_env = dict(os.environ, **roots_env(self.settings.cache_roots))
        slot.attempt += 1
        launch = plan_attempt(slot.current, run_id=slot.run_id, run_dir=slot.run_dir, store_root=self.store.root,
                              project_root=self.settings.root, number=slot.attempt, upstream=upstream,
                              base_env=self._job_env)
        stderr = log_file(slot.run_dir, "stderr")
        stderr_start = stderr.stat().st_size if slot.attempt > 1 and stderr.exists() else 0
        resumed = self._resumes.get(slot.run_id)
        if resumed is not None and RESUME_FROM_VAR not in launch.env:
            # A first attempt, or a retry whose earlier attempts saved nothing: the predecessor's checkpoint.
            launch.env[RESUME_FROM_VAR] = str(resumed.folder)
        else:
            resumed = None
        make_files(launch, self.store.root)
        return True, Planned(slot.run_id, slot.attempt, inst.job.shell, self._executor_for(slot), launch, leases,
                             inst.job.timeout, new_run, stderr_start, resumed, inst.name, inst.job.resources)

    def _launch_ready(self, keeper: LeaseKeeper, now: float) -> None:
        """Start as many queued attempts as there is room for (in queue order), in one transaction."""
        room = self.settings.scheduler.max_parallel - len(self._running)
        batch: list[tuple[Slot, attempts.Planned]] = []
        index = 0
        while index < len(self._queue) and len(batch) < room:
            slot = self._queue[index]
            if is_reduction(slot.instance):
                # Computed here and now: it takes no room and no GPU.
                self._queue.pop(index)
                self._reduce(slot)
                continue
            leaves, planned = self._next_attempt(slot, keeper, now)
            if not leaves:
                index += 1
                continue
            self._queue.pop(index)
            if planned is not None:
                batch.append((slot, planned))
        if batch:
            self._start(batch, keeper)

    def _start(self, batch: list[tuple[Slot, attempts.Planned]], keeper: LeaseKeeper) -> None:
        from mayuri.scheduler.attempts import start_batch

        planned = [p for _, p in batch]
        slots = [slot for slot, _ in batch]
        results = start_batch(
            self.store, keeper, planned, project_root=self.settings.root,
            devices={d.uuid: d for d in self.devices}, clock=self._clock,
            patient=lambda write: self._patiently(write, slots),
        )
        for (slot, item), result in zip(batch, results, strict=True):
            if isinstance(result, Claimed):
                self._wait_for_claim(slot, item, result.run_id, keeper)
                continue
            if isinstance(result, str):
                if item.leases:
                    self._patiently(functools.partial(keeper.give_back, item.leases), [slot])
                self.planner.emit(slot, "failed", result)
                continue
            slot.active = result
            if result.executor.spools:
                assert slot.run_id is not None and slot.run_dir is not None
                self._spool_reader().watch(slot.run_id, slot.run_dir)
            result.sampler.step = slot.sys_step
            self._running.add(slot.instance.key)
            self.planner.emit(slot, "running", f"{slot.reason}; {item.resume.note}" if item.resume else slot.reason)

    def _reduce(self, slot: Slot) -> None:
        """Compute a sharded job's reduction from its settled shards and record it as a run of the job."""
        from mayuri.scheduler.reduction import keep_outputs, reduction_close
        from mayuri.store.reduction_records import record_reduction

        close = reduction_close(self.store, slot, [self.slots[key] for key in slot.instance.upstream_keys])
        new_run = self._new_run(slot, None)
        assert slot.run_dir is not None
        keep_outputs(slot.run_dir, self.store.root, close.outputs or {})
        self._patiently(lambda: record_reduction(self.store, new_run, close), [slot])
        slot.fingerprint = close.fingerprint or f"unreusable:{slot.run_id}"
        slot.results = slot.fingerprint
        slot.outputs = dict(close.outputs or {})
        self.planner.emit(slot, close.status, close.error or slot.reason, duration=0.0)

    def _wait_for_claim(self, slot: Slot, item: attempts.Planned, holder: str, keeper: LeaseKeeper) -> None:
        """Park a slot whose work another run claims; it is decided again once that run settles."""
        if item.leases:
            self._patiently(functools.partial(keeper.give_back, item.leases), [slot])
        if slot.run_dir is not None:
            shutil.rmtree(slot.run_dir, ignore_errors=True)
        slot.run_id = slot.run_dir = slot.current = None
        slot.attempt = 0
        own = next((s.instance.key for s in self.slots.values() if s.run_id == holder), None)
        note = waiting_note(None if own else claim_holders(self.store, [holder]).get(holder), own)
        self._waiting.setdefault(holder, []).append(slot)
        self._next_claim_check = 0.0
        self.planner.emit(slot, "waiting", note)

    def _check_claims(self, keeper: LeaseKeeper, now: float) -> None:
        """Send back to the cache check the slots whose awaited run has settled (or whose scheduler died)."""
        if not self._waiting or now < self._next_claim_check:
            return
        self._next_claim_check = now + CANCEL_CHECK_INTERVAL
        done = self._patiently(lambda: settled_waits(self.store, list(self._waiting), keeper.id), [])
        self.planner.reconsider([slot for run_id in done for slot in self._waiting.pop(run_id, [])])

    # -- finishing ------------------------------------------------------------

    def _record(self, keeper: LeaseKeeper, records: list[EndRecord], slots: list[Slot]) -> None:
        if not self._patiently(lambda: record_ends(self.store, keeper.id, records), slots):
            raise Fenced(f"scheduler {keeper.id[:8]} was reclaimed; the end of {len(records)} attempt(s) "
                         "was not recorded")

    def _finish(self, done: list[tuple[Slot, Exit]], keeper: LeaseKeeper) -> None:
        """Record the attempts that ended in this turn, then retry or close each one's run."""
        from mayuri.scheduler import attempts

        ended: list[tuple[Slot, attempts.Active, attempts.Ended]] = []
        for slot, exit_ in done:
            active = slot.active
            assert active is not None and slot.run_dir is not None
            self._running.discard(slot.instance.key)
            if active.executor.spools and self._ingester is not None:
                # The job's last metrics and its artifacts, before its end is recorded.
                self._ingester.finish(slot.run_id or "", slot.run_dir)
            slot.sys_step = active.sampler.step
            ended.append((slot, active, attempts.conclude(slot.run_dir, active, exit_)))
        # GPUs are given back before any closure is hashed: other jobs may be waiting for them.
        early = [(s, a, e) for s, a, e in ended if a.leases]
        if early:
            self._record(keeper, [EndRecord(s.run_id or "", a.number, e.record, tuple(lease.token for lease in a.leases))
                                  for s, a, e in early], [s for s, _, _ in early])
        self._gpu_retry_at = 0.0
        records = []
        follow: list[Callable[[], None]] = []
        for slot, active, end in ended:
            assert slot.run_id is not None
            record = None if active.leases else end.record
            slot.causes.append(end.cause or "ok")
            retried, error = self._retry_or_error(slot, active, end)
            if retried is not None:
                records.append(EndRecord(slot.run_id, active.number, record))
                follow.append(retried)
            else:
                close, closed = self._close_run(slot, active, end, error)
                records.append(EndRecord(slot.run_id, active.number, record, close=close))
                follow.append(closed)
        self._record(keeper, records, [s for s, _, _ in ended])
        for step in follow:
            step()

    def _retry_or_error(self, slot: Slot, active: attempts.Active,
                        ended: attempts.Ended) -> tuple[Callable[[], None] | None, str | None]:
        """(what to do once the end is recorded, when the attempt is retried; else the run's error)."""
        from mayuri.scheduler.retry import decide

        if ended.status != "failed" or self._stopping:
            return None, ended.error
        assert slot.current is not None
        choice = decide(slot.instance.job.retry, ended.cause or "exit", slot.causes, slot.current.params,
                        active.gpus)
        if not choice.retry:
            return None, f"{ended.error}; {choice.reason}" if choice.reason != "failed" else ended.error

        def requeue() -> None:
            assert slot.current is not None
            if choice.changes:
                slot.current = with_params(slot.current, choice.changes)
            slot.not_before = self._clock() + choice.delay
            slot.avoid = choice.avoid_gpus
            slot.active = None
            self._queue.insert(0, slot)
            self.planner.emit(slot, "ready", choice.reason)

        return requeue, None

    def _close_run(self, slot: Slot, active: attempts.Active, ended: attempts.Ended,
                   error: str | None) -> tuple[RunClose, Callable[[], None]]:
        """How the run closes, and what to do once that is recorded."""
        from mayuri.scheduler.finish import close_run

        assert slot.run_id is not None and slot.run_dir is not None and slot.current is not None
        status = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(ended.status, "failed")
        current, run_dir = slot.current, slot.run_dir
        # Hashing the closure may write (stat cache, code blobs): it waits out a locked store too.
        done = self._patiently(lambda: close_run(
            self.store, self.settings.root, current, run_dir, active.launch.closure_dir,
            active.handle.started, slot.upstream_fps, self.settings.key_env, self._base_environment(),
            self.settings.cache_roots, status=status, code=ended.code, error=error,
            # Hashing a run's result files costs a read of them all: only for runs a downstream job receives.
            results=slot.instance.key in self.planner.consumed, unreusable=ended.unreusable,
        ), [slot])
        close = done.close
        reusable = close.status == "succeeded" and done.fingerprint is not None

        def closed() -> None:
            self.planner.succeeded += reusable
            slot.fingerprint = done.fingerprint or f"unreusable:{slot.run_id}"
            # Without a result key, the run's fingerprint stands for its results (no early cutoff, never wrong).
            slot.results = close.result_key or slot.fingerprint
            if reusable and close.params_used not in self.planner.known_used(current.base_hash):
                self.planner.known_used(current.base_hash).append(close.params_used)
            slot.outputs = done.outputs
            self.planner.emit(slot, close.status, (close.error or "") if close.status != "succeeded" else slot.reason,
                       duration=ended.duration)
            slot.active = None

        return close, closed

    # -- watching -------------------------------------------------------------

    def _stop_slot(self, slot: Slot, reason: str, now: float) -> None:
        active = slot.active
        if active is None or active.stop_reason is not None:
            return
        active.stop_reason = reason
        active.kill_at = now + self.settings.scheduler.kill_grace
        active.executor.stop(active.handle)

    def _watch(self, keeper: LeaseKeeper, now: float) -> None:
        """Timeouts, kill deadlines, cancel requests, samples and the heartbeat."""
        running = [self.slots[k] for k in self._running]
        for slot in running:
            active = slot.active
            assert active is not None
            if active.deadline is not None and now >= active.deadline and active.stop_reason is None:
                self._stop_slot(slot, "timeout", now)
            if active.kill_at is not None and now >= active.kill_at:
                active.executor.stop(active.handle, force=True)
                active.kill_at = now + 1.0
        if now >= self._next_cancel_check:
            self._next_cancel_check = now + CANCEL_CHECK_INTERVAL
            self._check_cancels(keeper, now)
            self._note_waiting(running)
            self._note_placed(running, keeper)
        due: dict[int, list[Slot]] = {}
        for slot in running:
            if slot.active is not None and slot.active.sampler.due(now):
                due.setdefault(id(slot.active.executor), []).append(slot)
        for group in due.values():
            executor = group[0].active.executor if group[0].active else None
            assert executor is not None
            samples = executor.sample([(s.active.handle, s.active.sampler) for s in group if s.active], now)
            for slot, points in zip(group, samples, strict=True):
                assert slot.run_id is not None
                if points:
                    try:
                        append_points(self.store, slot.run_id, points)
                    except StoreLocked:
                        # A lost sample costs nothing that matters: the peaks are kept in memory.
                        log.debug("store locked: system metrics of %s not stored", slot.run_id)
        keeper.beat_if_due(now)

    def _note_waiting(self, running: list[Slot]) -> None:
        """Say so when a started attempt waits in its engine's queue (a Slurm job pending), and why."""
        for slot in running:
            active = slot.active
            assert active is not None
            note = active.executor.waiting(active.handle)
            timeout = slot.instance.job.timeout
            if note is not None and timeout and active.deadline is not None:
                # A job's timeout counts from when it runs, not while it waits in a cluster's queue.
                active.deadline = self._clock() + timeout
            if note != active.waiting:
                active.waiting = note
                self.reporter.event(JobEvent(slot.instance.key, "running", note or "started", slot.run_id,
                                             attempt=slot.attempt, gpus=tuple(active.gpus)))

    def _note_placed(self, running: list[Slot], keeper: LeaseKeeper) -> None:
        """Record where an engine placed attempts (a Ray node, its GPUs) as soon as it says, not at their end."""
        placed = []
        for slot in running:
            active = slot.active
            assert active is not None and slot.run_id is not None
            handle = active.handle
            if active.placed or active.leases or not (handle.node or handle.gpus):
                continue
            placed.append((slot, (slot.run_id, active.number, handle.node, tuple(handle.gpus))))
        if not placed:
            return
        try:
            if not record_placements(self.store, keeper.id, [row for _, row in placed]):
                return  # fenced: the loop learns it from the heartbeat
        except StoreLocked:
            return  # said again at the next check
        for slot, (_, _, node, gpus) in placed:
            assert slot.active is not None
            slot.active.placed = True
            if gpus:
                slot.active.gpus = list(gpus)
                where = f" on {node}" if node else ""
                self.reporter.event(JobEvent(slot.instance.key, "running", f"started{where}", slot.run_id,
                                             attempt=slot.attempt, gpus=gpus))

    def _check_cancels(self, keeper: LeaseKeeper, now: float) -> None:
        try:
            wanted = set(cancel_requests(self.store, keeper.id))
        except StoreLocked:
            return  # a rollback journal keeps readers out too; ask again at the next check
        if not wanted:
            return
        for slot in self.slots.values():
            if slot.run_id in wanted:
                if slot.active is not None:
                    self._stop_slot(slot, "cancelled", now)
                elif slot.state == "ready":
                    self._cancel_waiting(slot, "cancelled (mayuri cancel)")

    def _cancel_waiting(self, slot: Slot, note: str) -> None:
        if slot in self._queue:
            self._queue.remove(slot)
        run_id = slot.run_id
        if run_id:
            self._patiently(lambda: mark_run(self.store, run_id, "cancelled", note), [slot])
        self.planner.emit(slot, "cancelled", note)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1

    def _begin_stopping(self, now: float) -> None:
        if not self._stopping:
            self._stopping = True
            for key in list(self._running):
                self._stop_slot(self.slots[key], "cancelled", now)
            self._waiting.clear()
            for slot in self.slots.values():
                if slot.state in ("pending", "ready", "waiting") and slot.active is None:
                    self._cancel_waiting(slot, "cancelled before it started (interrupted)")
        if self._signals >= 2:
            for key in self._running:
                active = self.slots[key].active
                assert active is not None
                active.executor.stop(active.handle, force=True)

    def _wait(self, now: float) -> None:
        timeout = MAX_WAIT
        for key in self._running:
            active = self.slots[key].active
            assert active is not None
            for moment in (active.deadline, active.kill_at, active.sampler.next_at):
                if moment is not None:
                    timeout = min(timeout, max(0.0, moment - now))
        actives = [a for a in (self.slots[key].active for key in self._running) if a is not None]
        executors = {id(a.executor): a.executor for a in actives}
        if len(executors) == 1:
            executor = next(iter(executors.values()))
            executor.wait([a.handle for a in actives], timeout)
        elif self._only_executor is not None:
            # Nothing runs: the executor's clock may be the one that must move on.
            self._only_executor.wait([], timeout)
        else:
            # Jobs on several executors (or none): none can wake us for all; poll them.
            time.sleep(min(timeout, self.settings.scheduler.poll_interval) if actives else timeout)

    # -- the loop -------------------------------------------------------------

    def run(self) -> Outcome:
        """Run the plan to the end (or until interrupted)."""
        self._preflight()
        long_running()
        keeper = LeaseKeeper(self.store, self.experiment)
        previous = self._install_signals()
        fenced = locked = False
        failure: BaseException | None = None
        try:
            self._queue.extend(self._secured(keeper, self._handed_over))
            self._loop(keeper)
        except Fenced as exc:
            fenced, failure = True, exc
            raise
        except StoreLocked as exc:
            locked, failure = True, exc
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._kill_leftovers(failure)
            if self._ingester is not None:
                self._ingester.close()
            self._restore_signals(previous)
            self._close_books(keeper, fenced, locked)
        return Outcome(list(self.slots.values()), interrupted=self._signals > 0)

    def _preflight(self) -> None:
        """Let each executor that has jobs to run refuse them (exit 2) before anything runs."""
        if self._only_executor is not None:
            return
        jobs: dict[str, list[JobInstance]] = {}
        for slot in self.slots.values():
            if slot.state != "cached":
                jobs.setdefault(slot.instance.job.executor or self._default_executor, []).append(slot.instance)
        for group in jobs.values():
            self._executor_for(self.slots[group[0].key]).preflight(group, self.settings.root, self.store.root)

    def _secured(self, keeper: LeaseKeeper, ready: list[Slot]) -> list[Slot]:
        """Before `ready` is launched: register the scheduler and count the cache hits so far, at once.

        A run reused from the cache may hold what a job about to launch reads
        (its outputs may name files in its folder); counted in the same
        transaction that registers the scheduler, it is safe from gc from then
        on (`LeaseKeeper.secure`). A scheduler that launches nothing registers
        nothing and counts its hits at its end.
        """
        fresh = self.planner.cache_hits - self.planner.hits_counted
        if not ready or (keeper.registered and not fresh):
            return ready
        if keeper.registered:
            lost = self._patiently(lambda: keeper.secure(fresh), ready)
        else:
            from mayuri.scheduler.recovery import recover

            # Nothing is in flight yet: a locked store fails the run now, as it always did.
            recover(self.store)
            lost = keeper.secure(fresh)
        self.planner.hits_counted |= fresh
        return self.planner.drop_lost_hits(lost, ready) if lost else ready

    def _close_books(self, keeper: LeaseKeeper, fenced: bool, locked: bool) -> None:
        """Count the cache hits not counted yet and end the scheduler's registration (its leases go with it)."""
        fresh = self.planner.cache_hits - self.planner.hits_counted
        # Appended to the hit log: an all-cached run then writes nothing to the database.
        writes: list[Callable[[], None]] = [lambda: log_hits(self.store, fresh, time.time())]
        if not fenced:
            writes.append(keeper.close)
        for write in writes:
            if not locked:
                self._patiently(write, [])
                continue
            # The patience is spent already: one more try each, and what is left
            # (a scheduler that looks dead, its runs) is tidied up by the next recovery.
            with contextlib.suppress(StoreLocked):
                write()

    def _loop(self, keeper: LeaseKeeper) -> None:
        limit = self.settings.scheduler.max_parallel
        while True:
            now = self._clock()
            if self._signals:
                self._begin_stopping(now)
            else:
                if self.planner.changed:
                    self._queue.extend(self._secured(keeper, self.planner.advance_pending()))
                self._check_claims(keeper, now)
                if len(self._running) < limit:
                    self._launch_ready(keeper, now)
            done = []
            for key in list(self._running):
                slot = self.slots[key]
                assert slot.active is not None
                ended = slot.active.executor.poll(slot.active.handle)
                if ended is not None:
                    done.append((slot, ended))
            if done:
                self._finish(done, keeper)
            if not self._running:
                if self._stopping or not self._queue and not self._waiting and not self.planner.decidable():
                    return
            self._watch(keeper, self._clock())
            if not done:
                # A job that ended may have freed a slot or a GPU: launch before waiting again.
                self._wait(self._clock())

    def _kill_leftovers(self, failure: BaseException | None) -> None:
        # Whatever happened (a bug, a fenced scheduler), no job outlives its scheduler, and no run of
        # it stays `running` once the scheduler is marked finished: each is recorded orphaned first.
        unsettled = [s.run_id for s in self.slots.values()
                     if s.run_id and (s.active is not None or s in self._queue)]
        for key in list(self._running):
            active = self.slots[key].active
            if active is not None:
                active.executor.stop_and_wait(active.handle, min(self.settings.scheduler.kill_grace, 2.0))
        self._running.clear()
        if failure is None or not unsettled:
            return
        from mayuri.scheduler.finish import one_line
        from mayuri.store.attempt_records import settle_abandoned

        note = f"orphaned: its scheduler stopped on an error it could not handle ({one_line(failure)})"
        for run_id in unsettled:
            # A store that stays locked or broken leaves them to the next recovery, which settles them.
            with contextlib.suppress(Exception):
                settle_abandoned(self.store, run_id, "orphaned", note)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        # A closed terminal (SIGHUP) stops the jobs like Ctrl-C: each is recorded cancelled and resumable.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
