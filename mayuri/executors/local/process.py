"""Launching a job's process (through the shepherd), learning of its end, and stopping its whole tree.

Jobs are started by the scheduler's shepherd (`shepherd.py`), a small
supervisor process that outlives the scheduler: each job in its own session
(so its process group can be signalled as a whole, and Ctrl-C at the
terminal reaches only the scheduler), with stdout and stderr going straight
to files, never to pipes that could fill and deadlock. The shepherd reports
each job's end once the job's leftover processes are stopped, and writes it
to `exit-N.json` in the run folder for whoever adopts the run if the
scheduler dies first. Stopping is SIGTERM to the group, a grace period, then
SIGKILL to the group, to every descendant seen, and to any process that
still carries the run's id in its environment (a double fork with setsid
escapes both the group and the parent chain): docs/decisions.md, decision 5.
Nothing here touches the store.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import ExecutorError
from mayuri.process_identity import create_time, ticks_to_time
from mayuri.run_contract import RUN_ID_VAR, exit_record, log_file

RUN_ID_ENV = RUN_ID_VAR
# The exit code recorded when the job's end could not be learned (its supervisor died first).
STATUS_LOST = 255
SHEPHERD = Path(__file__).with_name("shepherd.py")
# How long a launch waits for the shepherd's answer before calling it dead.
START_TIMEOUT = 60.0


def read_exit_record(run_dir: Path, attempt: int) -> dict[str, Any] | None:
    """What the shepherd recorded about an attempt's end, or None (not ended, or no record)."""
    try:
        with open(exit_record(run_dir, attempt), encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) and isinstance(loaded.get("exit_code"), int) else None


@dataclass
class JobProcess:
    """A launched job: its pid, its shepherd, and, once it ended, its exit code and leftovers."""

    pid: int
    create_time: float | None
    started: float
    run_id: str = ""
    shepherd: Shepherd | None = None
    returncode: int | None = None
    descendants: set[int] = field(default_factory=set)
    max_rss: int = 0
    leftovers: int = 0
    status_lost: bool = False

    def close(self) -> None:
        """Nothing to release: kept so that callers need not know how the job is watched."""


class Shepherd:
    """The scheduler's end of the pipes to its shepherd process."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SHEPHERD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, env=env,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self._out = self.process.stdout.fileno()
        self._in = self.process.stdin.fileno()
        os.set_blocking(self._out, False)
        self._buffer = b""
        self._jobs: dict[int, JobProcess] = {}
        self._answers: dict[int, dict[str, Any]] = {}
        # Ends heard before the launch that started the job returned (a job that ends at once).
        self._early: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self.gone = False

    def fileno(self) -> int:
        """Readable when the shepherd has something to say (a job ended)."""
        return self._out

    def send(self, request: dict[str, Any]) -> int:
        """Ask for a job to be started, without waiting; the request's id, to wait for its `answer`."""
        self._next_id += 1
        request["id"] = self._next_id
        data = memoryview((json.dumps(request) + "\n").encode())
        try:
            while data:  # a large environment may take more than one write (a signal may cut one short)
                data = data[os.write(self._in, data):]
        except OSError:
            self.gone = True
        return self._next_id

    def answer(self, request_id: int) -> dict[str, Any]:
        """The shepherd's answer to a request sent (pid, or errno and error)."""
        deadline = time.monotonic() + START_TIMEOUT
        while request_id not in self._answers:
            if self.gone or time.monotonic() > deadline:
                raise ExecutorError("cannot start the job: the jobs' supervisor process is gone.",
                                    hint="See `mayuri doctor`; then run again.")
            select.select([self._out], [], [], 1.0)
            self.pump()
        return self._answers.pop(request_id)

    def watch(self, job: JobProcess) -> None:
        self._jobs[job.pid] = job
        early = self._early.pop(job.pid, None)
        if early is not None:
            self._hear(early)

    def pump(self) -> None:
        """Read what the shepherd said: the ends of jobs (and the answers to launches)."""
        while True:
            try:
                chunk = os.read(self._out, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._lost()
                return
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self._hear(json.loads(line))

    def _hear(self, message: dict[str, Any]) -> None:
        if not message.get("ended"):
            self._answers[int(message["id"])] = message
            return
        job = self._jobs.pop(int(message["pid"]), None)
        if job is None:
            self._early[int(message["pid"])] = message
            return
        job.max_rss = max(job.max_rss, int(message.get("max_rss") or 0))
        job.leftovers = int(message.get("leftovers") or 0)
        job.returncode = int(message["exit_code"])

    def _lost(self) -> None:
        # The shepherd died: jobs that ended since cannot say how; those still running are watched by pid.
        self.gone = True
        for pid, job in list(self._jobs.items()):
            if create_time(pid) != job.create_time or _zombie(pid):
                job.status_lost = True
                job.returncode = STATUS_LOST
                del self._jobs[pid]

    def check(self) -> None:
        if self.gone:
            self._lost()
        else:
            self.pump()


_shepherd: Shepherd | None = None


def shepherd() -> Shepherd:
    """This process's shepherd, started on first use (again if it died)."""
    global _shepherd
    if _shepherd is None or _shepherd.gone or _shepherd.process.poll() is not None:
        _shepherd = Shepherd()
    return _shepherd


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return True
    return data[data.rindex(b")") + 2:][:1] in (b"Z", b"X")


@dataclass(frozen=True)
class Launch:
    """What to start for one attempt: its command and where its output and end go."""

    command: Sequence[str] | str
    cwd: Path
    env: Mapping[str, str]
    run_dir: Path
    attempt: int
    grace: float
    shell: bool = False


def spawn_many(launches: Sequence[Launch]) -> list[JobProcess | ExecutorError]:
    """Start jobs, each in a new session, output appended to stdout.log and stderr.log of its run folder.

    Every request goes to the shepherd before any answer is awaited, so that
    the forks of one scheduler turn overlap the scheduler's own work instead
    of costing a round trip each. Per launch: its process, or why it could not start.
    """
    keeper = shepherd()
    sent = []
    for launch in launches:
        argv = ["/bin/sh", "-c", launch.command] if launch.shell and isinstance(launch.command, str) \
            else list(launch.command)
        sent.append((argv, keeper.send({
            "argv": argv, "cwd": str(launch.cwd), "env": dict(launch.env), "run_id": launch.env.get(RUN_ID_ENV, ""),
            "stdout": str(log_file(launch.run_dir, "stdout")), "stderr": str(log_file(launch.run_dir, "stderr")),
            "append": launch.attempt > 1, "record": str(exit_record(launch.run_dir, launch.attempt)), "grace": launch.grace,
        })))
    jobs: list[JobProcess | ExecutorError] = []
    for (argv, request_id), launch in zip(sent, launches, strict=True):
        answer = keeper.answer(request_id)
        if "pid" not in answer:
            jobs.append(_start_error(argv[0], answer))
            continue
        pid = int(answer["pid"])
        ticks = answer.get("start_ticks")
        job = JobProcess(pid=pid, create_time=ticks_to_time(ticks) if ticks is not None else create_time(pid),
                         started=time.time(), run_id=launch.env.get(RUN_ID_ENV, ""), shepherd=keeper)
        keeper.watch(job)
        jobs.append(job)
    return jobs


def _start_error(program: str, answer: dict[str, Any]) -> ExecutorError:
    number = int(answer.get("errno") or 0)
    if number == errno.ENOENT:
        return ExecutorError(f"cannot start '{program}': no such program.",
                             hint="Check the `run:` command (is it installed, and on PATH?).")
    if number == errno.EACCES:
        return ExecutorError(f"cannot start '{program}': permission denied.",
                             hint="Make it executable (chmod +x) or run it through its interpreter.")
    return ExecutorError(f"cannot start '{program}': {answer.get('error')}.")


def reap(job: JobProcess) -> int | None:
    """The exit code (negative: killed by that signal) once the job has ended and its leftovers are stopped."""
    if job.returncode is None and job.shepherd is not None:
        job.shepherd.check()
    return job.returncode


def remember_descendants(job: JobProcess) -> None:
    """Note the job's current descendants, so that they can be killed even after leaving its group."""
    import psutil  # here: loading it costs every `mayuri run` start-up, and one that launches nothing needs none

    # The job may have ended meanwhile: nothing left to remember.
    with contextlib.suppress(psutil.Error):
        job.descendants.update(p.pid for p in psutil.Process(job.pid).children(recursive=True))
    job.descendants.discard(os.getpid())


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
            environ = proc.environ()
            # The job's metrics writer is left to commit and exit; the shepherd waits for it.
            if environ.get(RUN_ID_ENV) == run_id and not environ.get("MAYURI_SINK"):
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
