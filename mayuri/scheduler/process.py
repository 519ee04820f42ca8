"""Launching a job's process, reaping it, and stopping its whole tree.

Each job runs in its own session (so its process group can be signalled as a
whole, and Ctrl-C at the terminal reaches only the scheduler), with stdout and
stderr going straight to files, never to pipes that could fill and deadlock.
Stopping is SIGTERM to the group, a grace period, then SIGKILL to the group,
to every descendant seen, and to any process that still carries the run's
id in its environment (a double fork with setsid escapes both the group and
the parent chain): RELIABILITY.md decision 5. Nothing here touches the store.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mayuri.errors import ExecutorError
from mayuri.process_identity import create_time

RUN_ID_ENV = "MAYURI_RUN_ID"
# The exit code recorded when another part of the process reaped the job first.
STATUS_LOST = 255


@dataclass
class JobProcess:
    """A launched job: its Popen, the pidfd that wakes the scheduler, and its known descendants."""

    popen: subprocess.Popen[bytes]
    create_time: float | None
    started: float
    run_id: str = ""
    pidfd: int | None = None
    descendants: set[int] = field(default_factory=set)
    max_rss: int = 0
    status_lost: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


@functools.cache
def _devnull() -> int:
    # Every job's stdin; opened once rather than at each launch (close-on-exec, dup'ed into each child).
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def spawn(
    command: Sequence[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: int,
    stderr: int,
    shell: bool = False,
) -> JobProcess:
    """Start a job in a new session with its output going to the two open files (the caller closes them)."""
    argv: Sequence[str] | str = ["/bin/sh", "-c", command] if shell and isinstance(command, str) else command
    try:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=_devnull(),
            stdout=stdout,
            stderr=stderr,
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
    created = create_time(popen.pid)
    try:
        pidfd: int | None = os.pidfd_open(popen.pid)
    except (OSError, AttributeError):
        pidfd = None
    return JobProcess(popen=popen, create_time=created, started=time.time(),
                      run_id=env.get(RUN_ID_ENV, ""), pidfd=pidfd)


def reap(job: JobProcess) -> int | None:
    """The exit code (negative: killed by that signal) once the job's process has ended, else None.

    Uses wait4 so that the kernel's figure for the process's peak RSS comes along.
    """
    if job.popen.returncode is not None:
        return job.popen.returncode
    try:
        pid, status, usage = os.wait4(job.pid, os.WNOHANG)
    except ChildProcessError:
        # Someone else reaped it (a SIGCHLD handler in embedding code). Popen would call that
        # success (ECHILD -> 0); the truth is that the status is unknown.
        job.status_lost = True
        job.popen.returncode = STATUS_LOST
        return STATUS_LOST
    if pid == 0:
        return None
    job.max_rss = max(job.max_rss, usage.ru_maxrss * 1024)
    job.popen.returncode = os.waitstatus_to_exitcode(status)
    return job.popen.returncode


def remember_descendants(job: JobProcess) -> None:
    """Note the job's current descendants, so that they can be killed even after leaving its group."""
    import psutil  # here: loading it costs every `mayuri run` start-up, and one that launches nothing needs none

    # The job may have ended meanwhile: nothing left to remember.
    with contextlib.suppress(psutil.Error):
        job.descendants.update(p.pid for p in psutil.Process(job.pid).children(recursive=True))


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already, or not ours
        os.killpg(pgid, sig)


def terminate(job: JobProcess) -> None:
    """Ask the job's whole process group to stop (SIGTERM)."""
    remember_descendants(job)
    _signal_group(job.pid, signal.SIGTERM)


def marked_processes(run_id: str) -> list[int]:
    """Processes of this user whose environment carries this run's id."""
    if not run_id:
        return []
    import psutil

    found = []
    me = os.getpid()
    uid = os.getuid()
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.pid == me or proc.info["uids"] is None or proc.info["uids"].real != uid:
                continue
            if proc.environ().get(RUN_ID_ENV) == run_id:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def kill(job: JobProcess) -> None:
    """SIGKILL the job's group, every descendant seen, and every process marked with its run id."""
    remember_descendants(job)
    _signal_group(job.pid, signal.SIGKILL)
    for pid in job.descendants | set(marked_processes(job.run_id)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop(job: JobProcess, grace: float) -> int:
    """SIGTERM the job's tree, wait up to `grace` seconds, then SIGKILL what is left; returns the exit code."""
    terminate(job)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and reap(job) is None:
        time.sleep(0.02)
    kill(job)
    while (code := reap(job)) is None:
        time.sleep(0.01)
    job.close()
    return code


def kill_recorded(pid: int, run_id: str, grace: float) -> None:
    """Stop the process group of a job whose scheduler is gone (the caller has checked its identity)."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    for other in marked_processes(run_id):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(other, signal.SIGKILL)
