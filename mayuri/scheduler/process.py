"""Launching a job's process and stopping its whole tree.

Each job runs in its own session (so its process group can be signalled as a
whole, and Ctrl-C at the terminal reaches only the scheduler), with stdout and
stderr going straight to files, never to pipes that could fill and deadlock.
Stopping is SIGTERM to the group, a grace period, then SIGKILL to the group
and to any descendant that escaped it (RELIABILITY.md decision 5).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from mayuri.errors import ExecutorError


@dataclass
class JobProcess:
    """A launched job: its Popen, the pidfd that wakes the scheduler, and its known descendants."""

    popen: subprocess.Popen[bytes]
    create_time: float | None
    started: float
    pidfd: int | None = None
    descendants: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def spawn(
    command: Sequence[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    shell: bool = False,
) -> JobProcess:
    """Start a job in a new session with its output going to the two files."""
    argv: Sequence[str] | str = ["/bin/sh", "-c", command] if shell and isinstance(command, str) else command
    try:
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
    except FileNotFoundError:
        program = argv[0] if not isinstance(argv, str) else argv
        raise ExecutorError(
            f"cannot start '{program}': no such program.",
            hint="Check the `run:` command (is it installed, and on PATH?).",
        ) from None
    except PermissionError:
        program = argv[0] if not isinstance(argv, str) else argv
        raise ExecutorError(f"cannot start '{program}': permission denied.",
                            hint="Make it executable (chmod +x) or run it through its interpreter.") from None
    try:
        create_time: float | None = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = None
    try:
        pidfd: int | None = os.pidfd_open(popen.pid)
    except (OSError, AttributeError):
        pidfd = None
    return JobProcess(popen=popen, create_time=create_time, started=time.time(), pidfd=pidfd)


def _remember_descendants(job: JobProcess) -> None:
    try:
        job.descendants.update(p.pid for p in psutil.Process(job.pid).children(recursive=True))
    except psutil.Error:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(job: JobProcess, grace: float) -> int | None:
    """SIGTERM the job's group, wait up to `grace` seconds, then SIGKILL what is left; returns the exit code."""
    _remember_descendants(job)
    _signal_group(job.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if job.popen.poll() is not None and not _alive(job.pid):
            break
        time.sleep(0.02)
    _remember_descendants(job)
    _signal_group(job.pid, signal.SIGKILL)
    for pid in job.descendants:
        # Escaped the group (setsid or a double fork): kill it on its own.
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    code = job.popen.wait()
    job.close()
    return code


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
