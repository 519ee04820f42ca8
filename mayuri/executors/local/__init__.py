"""The `local` executor: jobs as processes of this machine, supervised by the shepherd.

What runs today, behind the executor seam: each attempt is started by the
scheduler's shepherd (`shepherd.py`, a supervisor process that outlives the
scheduler and writes `exit-N.json`), stopped as a whole process tree
(`process.py`), sampled with psutil and NVML (`usage.py`), and placed on this
machine's GPUs (`mayuri.gpu`) by lease (`Executor.place`: the best fit against
the leases every scheduler of the host holds; the scheduler writes the lease
rows, fenced by its id, and asks recovery, `cancel` and `doctor` of the
attempts through this executor). An attempt's reference is `PID@START`, the
pid and its start time: with the host and boot id recorded beside it, pid
reuse can never make another process look like the job.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mayuri.errors import ExecutorError
from mayuri.executors.base import AttemptRef, Executor, Exit, Handle, LaunchSpec, Point, Usage
from mayuri.executors.local.process import (
    JobProcess,
    Launch,
    kill,
    kill_recorded,
    marked_processes,
    read_exit_record,
    reap,
    spawn_many,
    stop,
    terminate,
)
from mayuri.executors.local.usage import Sampler
from mayuri.process_identity import host, same_process

# How often a wait for a recorded attempt's end looks again, when its process cannot be watched.
POLL = 0.2


def local_ref(pid: int, create_time: float | None) -> str:
    """The reference recorded for a local attempt."""
    return f"{pid}@{create_time!r}" if create_time is not None else str(pid)


@dataclass(kw_only=True)
class LocalHandle(Handle):
    """A local attempt: its process, watched through the shepherd."""

    process: JobProcess


def _exit(process: JobProcess, code: int) -> Exit:
    return Exit(code, max_rss=process.max_rss, leftovers=process.leftovers, status_lost=process.status_lost)


class LocalExecutor(Executor):
    """Processes on this host (see the module's docstring)."""

    name = "local"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        # How long a wait with no pipe to watch sleeps at most ([scheduler] poll_interval, set by the scheduler).
        self.poll_interval = 0.05

    def start(self, spec: LaunchSpec) -> Handle:
        started = self.start_many([spec])[0]
        if isinstance(started, ExecutorError):
            raise started
        return started

    def start_many(self, specs: Sequence[LaunchSpec]) -> list[Handle | ExecutorError]:
        processes = spawn_many([Launch(spec.command, spec.cwd, spec.env, spec.run_dir, spec.attempt, spec.grace,
                                       spec.shell) for spec in specs])
        return [process if isinstance(process, ExecutorError) else
                LocalHandle(local_ref(process.pid, process.create_time), process.started, tuple(spec.gpus),
                            process.pid, process.create_time, process=process)
                for spec, process in zip(specs, processes, strict=True)]

    def poll(self, handle: Handle) -> Exit | None:
        assert isinstance(handle, LocalHandle)
        code = reap(handle.process)
        return None if code is None else _exit(handle.process, code)

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        for handle in handles:
            assert isinstance(handle, LocalHandle)
            shepherd = handle.process.shepherd
            if shepherd is not None and not shepherd.gone:
                # One pipe carries every job's end: readable as soon as any of them ended.
                select.select([shepherd.fileno()], [], [], timeout)
                return
        time.sleep(min(timeout, self.poll_interval) if handles else timeout)

    def stop(self, handle: Handle, *, force: bool = False) -> None:
        assert isinstance(handle, LocalHandle)
        (kill if force else terminate)(handle.process)

    def stop_and_wait(self, handle: Handle, grace: float) -> Exit:
        assert isinstance(handle, LocalHandle)
        return _exit(handle.process, stop(handle.process, grace))

    def usage(self, handle: Handle, now: float) -> Usage:
        assert isinstance(handle, LocalHandle)
        return Sampler(handle.process)

    def sample(self, due: Sequence[tuple[Handle, Usage]], now: float) -> list[list[Point]]:
        from mayuri.gpu import process_gpu_memory

        gpu_memory = process_gpu_memory() if any(handle.gpus for handle, _ in due) else {}
        points = []
        for _, usage in due:
            assert isinstance(usage, Sampler)
            points.append(usage.sample(gpu_memory, now))
        return points

    def alive(self, attempt: AttemptRef) -> bool:
        if attempt.host is not None and attempt.host != host():
            return False
        return same_process(attempt.pid, attempt.pid_create_time, attempt.boot_id)

    def settle_orphan(self, attempt: AttemptRef, grace: float) -> list[int]:
        if attempt.pid is not None and self.alive(attempt):
            kill_recorded(attempt.pid, attempt.run_id, grace)
            return [attempt.pid]
        # The job is gone; what it left behind (its shepherd died with it) may not hold a GPU on.
        killed = []
        for pid in marked_processes(attempt.run_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return killed

    def wait_ended(self, attempt: AttemptRef, timeout: float) -> None:
        # Woken by the process's end through a pidfd (no polling), else a short sleep.
        try:
            fd: int | None = os.pidfd_open(attempt.pid) if attempt.pid is not None else None
        except OSError:
            fd = None
        if fd is None:
            time.sleep(min(timeout, POLL))
            return
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)

    def ended(self, attempt: AttemptRef, wait: float) -> dict[str, Any] | None:
        # The shepherd writes `exit-N.json` once the job's leftover processes are stopped.
        if attempt.run_dir is None or attempt.number is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            record = read_exit_record(attempt.run_dir, attempt.number)
            if record is not None or time.monotonic() >= deadline:
                return record
            if not marked_processes(attempt.run_id):
                # Nothing of the job is left to stop: one short look more, for a record being renamed into place.
                time.sleep(0.05)
                return read_exit_record(attempt.run_dir, attempt.number)
            time.sleep(0.05)

    def capacity(self, wanted: str | list[int]) -> list[Any]:
        from mayuri.gpu import inventory
        from mayuri.scheduler.placement import usable

        return usable(inventory(), wanted)
