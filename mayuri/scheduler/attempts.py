"""One attempt of a run, from launch to its recorded end: env, pinning, process, cause, peaks.

The loop (`mayuri.scheduler.loop`) decides when and what to launch; this
module starts the process with its GPUs pinned (`CUDA_VISIBLE_DEVICES`, PCI
bus order) inside the transaction that records the attempt (and the run, on
its first attempt), and at the end classifies why it stopped. Recording the
end is the loop's, batched with the other attempts that ended at the same
time. It never decides retries (`retry.py`) and never walks the DAG.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.closure import uncaught_exceptions
from mayuri.experiment.expand import JobInstance
from mayuri.gpu import Gpu
from mayuri.scheduler.causes import classify, oom_kill_count, stderr_tail
from mayuri.scheduler.launch import Launch, prepare
from mayuri.scheduler.leases import Fenced, LeaseKeeper
from mayuri.scheduler.monitor import Sampler
from mayuri.scheduler.process import JobProcess, spawn, stop
from mayuri.store.attempt_records import AttemptEnd, begin_attempt
from mayuri.store.db import Store
from mayuri.store.lease_records import Lease
from mayuri.store.records import NewRun

CHECKPOINTS = "checkpoints"


@dataclass
class Active:
    """A running attempt and what the loop must watch about it."""

    number: int
    process: JobProcess
    launch: Launch
    leases: list[Lease]
    gpus: list[str]
    sampler: Sampler
    stderr_start: int
    oom_kills_before: int | None
    deadline: float | None
    stop_reason: str | None = None
    kill_at: float | None = None


@dataclass(frozen=True)
class Ended:
    """How an attempt ended, and the attempt's end as it is to be recorded."""

    status: str
    cause: str | None
    error: str | None
    code: int
    duration: float
    record: AttemptEnd


def checkpoint_dir(run_dir: Path, number: int) -> Path:
    """Where attempt `number` of a run keeps its checkpoints."""
    return run_dir / CHECKPOINTS / str(number)


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


def start(
    store: Store, keeper: LeaseKeeper, instance: JobInstance, *, run_id: str, run_dir: Path, project_root: Path,
    number: int, upstream: dict[str, Any], leases: list[Lease], devices: dict[str, Gpu], timeout: float | None,
    new_run: NewRun | None = None, base_env: Mapping[str, str] | None = None,
) -> Active:
    """Launch attempt `number` of a run on its leased GPUs and record it (with the run when `new_run` is given).

    The process is started inside the transaction that records it, so that no
    job runs unrecorded and none is recorded without running. Raises
    ExecutorError (the process could not start: nothing was recorded),
    Fenced (this scheduler was reclaimed: nothing was started) or a
    StoreError (nothing was recorded, and a process already started was stopped).
    """
    launch = prepare(instance, run_id=run_id, run_dir=run_dir, store_root=store.root, project_root=project_root,
                     attempt=number, upstream=upstream, base_env=base_env)
    env = launch.env
    for name, value in gpu_env(leases, devices).items():
        if name != "XLA_PYTHON_CLIENT_PREALLOCATE" or name not in env:
            env[name] = value
    # Made on first use (mayuri.checkpoint_dir()), not here: most jobs never checkpoint.
    env["MAYURI_CHECKPOINT_DIR"] = str(checkpoint_dir(run_dir, number))
    stderr = run_dir / "stderr.log"
    stderr_start = 0
    if number > 1:
        source = resume_source(run_dir, number)
        if source is not None:
            env["MAYURI_RESUME_FROM"] = str(source)
        stderr_start = stderr.stat().st_size if stderr.exists() else 0
    before = oom_kill_count()
    started: list[JobProcess] = []

    def launch_process() -> tuple[int, float | None]:
        process = spawn(launch.command, cwd=project_root, env=env, stdout=run_dir / "stdout.log", stderr=stderr,
                        shell=instance.job.shell, append=number > 1)
        started.append(process)
        return process.pid, process.create_time

    gpus = [lease.gpu_uuid for lease in leases]
    try:
        recorded = begin_attempt(
            store, run_id, number, scheduler_id=keeper.id, host=keeper.host, params=launch.params, gpus=gpus,
            lease_tokens=[lease.token for lease in leases], launch=launch_process, new_run=new_run,
        )
    except BaseException:
        # The transaction that would have recorded it was rolled back: the job must not run unrecorded.
        for process in started:
            stop(process, 0.0)
        raise
    if not recorded:
        raise Fenced(f"scheduler {keeper.id[:8]} was reclaimed; attempt {number} of {run_id[:8]} not started")
    process = started[0]
    deadline = time.monotonic() + timeout if timeout else None
    return Active(number, process, launch, leases, gpus, Sampler(process), stderr_start, before, deadline)


def conclude(run_dir: Path, active: Active, code: int) -> Ended:
    """How an attempt ended (status, cause, peaks), from its exit code and its files; writes nothing."""
    process = active.process
    process.close()
    duration = time.time() - process.started
    signal_number = -code if code < 0 else None
    if active.stop_reason == "cancelled":
        status, cause, error = "cancelled", "cancelled", "cancelled"
    elif active.stop_reason == "timeout":
        status, cause, error = "timeout", "timeout", f"timed out after {duration:.1f}s"
    elif process.status_lost:
        status, cause, error = "failed", "status_lost", "exit status lost: something else in this process reaped it"
    elif code == 0:
        status, cause, error = "succeeded", None, None
    else:
        # Exceptions recorded by the job's excepthook come first: they survive
        # a stderr that was redirected, flooded or cut short.
        raised = "\n".join(uncaught_exceptions(active.launch.closure_dir))
        tail = raised + "\n" + stderr_tail(run_dir / "stderr.log", active.stderr_start)
        cause, error = classify(code, tail, oom_kills_before=active.oom_kills_before,
                                oom_kills_after=oom_kill_count())
        status = "failed"
    end = AttemptEnd(
        status=status, exit_code=code if code >= 0 else None, signal=signal_number, cause=cause, error=error,
        peak_rss=max(active.sampler.peak_rss, process.max_rss) or None,
        peak_gpu_memory=active.sampler.peak_gpu or None,
    )
    return Ended(status, cause, error, code, duration, end)
