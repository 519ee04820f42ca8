"""One attempt of a run, from launch to its recorded end: env, pinning, process, cause, peaks.

The loop (`mayuri.scheduler.loop`) decides when and what to launch; this
module has the executor start one turn's attempts with their GPUs pinned
(`CUDA_VISIBLE_DEVICES`, PCI bus order) between the two transactions that
record them (`starting`, with their runs on a first attempt; then `running`
with the executor's reference), and at the end classifies why
each stopped. Recording the end is the loop's, batched with the other
attempts that ended at the same time. It never decides retries (`retry.py`)
and never walks the DAG.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.closure import uncaught_exceptions
from mayuri.errors import ExecutorError
from mayuri.executors.base import Executor, Exit, Handle, LaunchSpec, Usage
from mayuri.experiment.expand import JobInstance
from mayuri.experiment.spec import Resources
from mayuri.gpu import Gpu
from mayuri.run_contract import CHECKPOINT_DIR_VAR, RESUME_FROM_VAR, checkpoint_dir, log_file
from mayuri.scheduler.causes import GPU_OOM, classify, oom_kill_count, stderr_tail
from mayuri.scheduler.launch import Launch, plan_launch
from mayuri.scheduler.leases import Fenced, LeaseKeeper
from mayuri.scheduler.resume import Resume
from mayuri.store.attempt_records import (
    AttemptEnd,
    AttemptStart,
    Claimed,
    Started,
    begin_attempts,
    confirm_attempts,
)
from mayuri.store.db import Store
from mayuri.store.lease_records import Lease
from mayuri.store.records import NewRun


@dataclass
class Active:
    """A running attempt and what the loop must watch about it."""

    number: int
    executor: Executor
    handle: Handle
    launch: Launch
    leases: list[Lease]
    gpus: list[str]
    sampler: Usage
    stderr_start: int
    oom_kills_before: int | None
    deadline: float | None
    stop_reason: str | None = None
    kill_at: float | None = None
    # Why it does not run yet, as its executor last said (queued on a cluster).
    waiting: str | None = None
    # Whether where its engine placed it (node, GPUs) is in the store (see `record_placements`).
    placed: bool = False


@dataclass(frozen=True)
class Ended:
    """How an attempt ended, and the attempt's end as it is to be recorded."""

    status: str
    cause: str | None
    error: str | None
    code: int
    duration: float
    record: AttemptEnd
    # Why the run may not be reused although it succeeded, as its executor found (see Exit.unreusable).
    unreusable: str | None = None


def resume_source(run_dir: Path, number: int) -> Path | None:
    """The checkpoint folder of the latest earlier attempt that wrote one."""
    for earlier in range(number - 1, 0, -1):
        folder = checkpoint_dir(run_dir, earlier)
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    return None


def gpu_env(leases: list[Lease], devices: dict[str, Gpu]) -> dict[str, str]:
    """The CUDA variables that pin a job to its leased GPUs (none leased: no GPU visible)."""
    ids = [devices[lease.gpu_uuid].visible_id for lease in leases if lease.gpu_uuid in devices]
    env = {"CUDA_VISIBLE_DEVICES": ",".join(ids), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if leases and not any(lease.exclusive for lease in leases):
        # JAX grabs 75% of a GPU by default; a shared GPU needs it to allocate as it goes.
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


@dataclass
class Planned:
    """An attempt about to start (its run folder made): its run, its launch, its GPUs."""

    run_id: str
    number: int
    shell: bool
    executor: Executor
    launch: Launch
    leases: list[Lease]
    timeout: float | None
    new_run: NewRun | None = None
    stderr_start: int = 0
    resume: Resume | None = None
    # The job's name and `resources:`: what an executor that places jobs itself asks its engine for.
    job: str = ""
    resources: Resources = field(default_factory=Resources)


def plan_attempt(
    instance: JobInstance, *, run_id: str, run_dir: Path, store_root: Path, project_root: Path, number: int,
    upstream: dict[str, Any], base_env: Mapping[str, str] | None = None,
) -> Launch:
    """The launch of attempt `number` of a run, with the checkpoint and resume variables set."""
    launch = plan_launch(instance, run_id=run_id, run_dir=run_dir, store_root=store_root,
                         project_root=project_root, attempt=number, upstream=upstream, base_env=base_env)
    # Made on first use (mayuri.checkpoint_dir()), not here: most jobs never checkpoint.
    launch.env[CHECKPOINT_DIR_VAR] = str(checkpoint_dir(run_dir, number))
    if number > 1:
        source = resume_source(run_dir, number)
        if source is not None:
            launch.env[RESUME_FROM_VAR] = str(source)
    return launch


def _spec(item: Planned, devices: dict[str, Gpu], project_root: Path, grace: float) -> LaunchSpec:
    env = item.launch.env
    for name, value in gpu_env(item.leases, devices).items():
        if name != "XLA_PYTHON_CLIENT_PREALLOCATE" or name not in env:
            env[name] = value
    return LaunchSpec(item.launch.command, item.shell, project_root, env, item.run_id, item.launch.run_dir,
                      item.number, grace, tuple(lease.gpu_uuid for lease in item.leases),
                      item.resources.as_request(), item.job, item.timeout)


def _start_all(planned: Sequence[Planned], specs: Sequence[LaunchSpec]) -> list[Handle | ExecutorError]:
    """Start each spec on its attempt's executor, each executor's share at once; results in the given order."""
    outcomes: list[Handle | ExecutorError | None] = [None] * len(specs)
    by_executor: dict[int, list[int]] = {}
    for index, item in enumerate(planned):
        by_executor.setdefault(id(item.executor), []).append(index)
    for indexes in by_executor.values():
        executor = planned[indexes[0]].executor
        for index, outcome in zip(indexes, executor.start_many([specs[i] for i in indexes]), strict=True):
            outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def start_batch(
    store: Store, keeper: LeaseKeeper, planned: Sequence[Planned], *, project_root: Path, devices: dict[str, Gpu],
    grace: float = 10.0, clock: Callable[[], float] = time.monotonic,
    patient: Callable[[Callable[[], Any]], Any] = lambda write: write(),
) -> list[Active | str | Claimed]:
    """Record attempts `starting`, have their executors start them, record them `running`.

    Returns, per attempt, its Active, or why its process could not start
    (recorded as its run's failure), or Claimed (another run does that work;
    nothing was started or recorded). Raises Fenced (this scheduler was
    reclaimed: whatever started was stopped) or a StoreError (the attempts
    started were stopped). `patient` runs each of the two writes (the loop
    retries them while the store is locked).
    """
    before = oom_kill_count()
    started: dict[int, Handle] = {}
    starts = [AttemptStart(item.run_id, item.number, item.launch.params, [lease.gpu_uuid for lease in item.leases],
                           [lease.token for lease in item.leases], item.new_run,
                           item.resume.run_id if item.resume else None, item.resume.step if item.resume else None)
              for item in planned]
    claimed = patient(lambda: begin_attempts(store, keeper.id, keeper.host, starts))
    if claimed is None:
        raise Fenced(f"scheduler {keeper.id[:8]} was reclaimed; {len(planned)} attempt(s) not started")
    try:
        # Outside any transaction: a slow start stalls no other writer of the store.
        todo = [index for index, claim in enumerate(claimed) if claim is None]
        outcomes = _start_all([planned[index] for index in todo], [_spec(planned[index], devices, project_root, grace)
                                                                  for index in todo])
        launched: list[tuple[AttemptStart, Started | str]] = []
        for index, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, ExecutorError):
                launched.append((starts[index], outcome.message))
                continue
            started[index] = outcome
            launched.append((starts[index], Started(planned[index].executor.name, outcome.ref, outcome.pid,
                                                    outcome.pid_create_time)))
        failures = patient(lambda: confirm_attempts(store, keeper.id, launched))
    except BaseException:
        # Not recorded as running: no job may run unrecorded (the `starting` attempts go to recovery).
        for index, handle in started.items():
            planned[index].executor.stop_and_wait(handle, 0.0)
        raise
    if failures is None:
        # Reclaimed between the two transactions: what started may not run unrecorded.
        for index, handle in started.items():
            planned[index].executor.stop_and_wait(handle, 0.0)
        raise Fenced(f"scheduler {keeper.id[:8]} was reclaimed; {len(started)} started attempt(s) stopped")
    recorded = [claim if claim is not None else failures.get(start.run_id)
                for start, claim in zip(starts, claimed, strict=True)]
    results: list[Active | str | Claimed] = []
    now = clock()
    for index, (item, error) in enumerate(zip(planned, recorded, strict=True)):
        if error is not None:
            results.append(error)
            continue
        handle = started[index]
        deadline = now + item.timeout if item.timeout else None
        results.append(Active(item.number, item.executor, handle, item.launch, item.leases, list(starts[index].gpus),
                              item.executor.usage(handle, now), item.stderr_start, before, deadline))
    return results


def conclude(run_dir: Path, active: Active, ended: Exit) -> Ended:
    """How an attempt ended (status, cause, peaks), from its exit and its files; writes nothing."""
    active.handle.close()
    code = ended.code
    duration = time.time() - active.handle.started
    signal_number = -code if code < 0 else None
    if active.stop_reason == "cancelled":
        status, cause, error = "cancelled", "cancelled", "cancelled"
    elif active.stop_reason == "timeout":
        status, cause, error = "timeout", "timeout", f"timed out after {duration:.1f}s"
    elif ended.cause in ("timeout", "cancelled"):
        # Ended by the executor's engine (a cluster's time limit, a scancel from outside).
        status, cause, error = ended.cause, ended.cause, ended.error or ended.cause
    elif ended.cause is not None and not GPU_OOM.search(_tail(run_dir, active)):
        # The engine knows why (a lost node, its OOM kill); a CUDA OOM in stderr still says more.
        status, cause, error = "failed", ended.cause, ended.error or ended.cause
    elif ended.status_lost:
        status, cause, error = "failed", "status_lost", "exit status lost: the jobs' supervisor died before it ended"
    elif code == 0:
        status, cause, error = "succeeded", None, None
    else:
        cause, error = classify(code, _tail(run_dir, active), oom_kills_before=active.oom_kills_before,
                                oom_kills_after=oom_kill_count())
        status = "failed"
    end = AttemptEnd(
        status=status, exit_code=code if code >= 0 else None, signal=signal_number, cause=cause, error=error,
        peak_rss=max(active.sampler.peak_rss, ended.max_rss) or None,
        peak_gpu_memory=active.sampler.peak_gpu or None, leftovers=ended.leftovers or None,
        # An engine that placed the job itself says where, and on which GPUs, once it knows.
        node=ended.node or active.handle.node,
        gpus=active.handle.gpus if active.handle.gpus and not active.leases else None,
    )
    return Ended(status, cause, error, code, duration, end, ended.unreusable)


def _tail(run_dir: Path, active: Active) -> str:
    # Exceptions recorded by the job's excepthook come first: they survive
    # a stderr that was redirected, flooded or cut short.
    raised = "\n".join(uncaught_exceptions(active.launch.closure_dir))
    return raised + "\n" + stderr_tail(log_file(run_dir, "stderr"), active.stderr_start)
