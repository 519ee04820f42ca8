"""The jobs' supervisor: a small process that starts a scheduler's jobs and outlives the scheduler.

Run as `python -I -S shepherd.py` (no site, no PYTHONPATH: it imports only
the standard library, costs one interpreter start per scheduler, and is
never audited into a closure). The scheduler writes one JSON line per job
to start on its stdin; the shepherd forks and execs the job in a session of
its own, and answers on its stdout with the job's pid (or why it could not
start). When a job's main process ends, the shepherd stops every process
the job left behind (its session, and any process whose environment carries
the job's MAYURI_RUN_ID: a double fork with setsid escapes the session but
not its environment), SIGTERM, a grace period, SIGKILL; then writes the
job's exit status, end time, peak RSS and the number of leftovers stopped to
`exit-N.json` in its run folder, and only then tells the scheduler.

If the scheduler dies (terminal closed, kill -9, SSH dropped), its stdin
ends; the shepherd goes on supervising the jobs it holds and exits after the
last one. The next `mayuri run` or `mayuri doctor` adopts those runs: it
waits for the job, then records what `exit-N.json` says
(`mayuri.scheduler.adoption`). One shepherd serves every job of a scheduler,
so a launch costs a fork and a pipe message, not an interpreter start.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import sys
import time

RUN_ID_ENV = "MAYURI_RUN_ID"
# Set ("1") in the shepherd's environment where its jobs must not outlive the process that asked for them
# (a Ray worker killed with its node, or by a forced cancel): once that process is gone, they are killed.
KILL_ORPHANS_ENV = "MAYURI_SHEPHERD_KILL_ORPHANS"
# The job's metrics writer (mayuri.tracking.sink) carries this: it is waited for, never signalled.
SINK_MARK = b"MAYURI_SINK=1"
_STATE_SKIP = (b"Z", b"X")


class Job:
    """A running job as the shepherd knows it."""

    def __init__(self, request: dict, process: subprocess.Popen, start_ticks: int = 0) -> None:
        self.id = request["id"]
        # Kept until the job is reaped (by `reap`, with its rusage), so that Popen never reaps it itself.
        self.process = process
        self.pid = process.pid
        self.start_ticks = start_ticks
        self.run_id = request.get("run_id", "")
        self.record = request["record"]
        self.grace = float(request.get("grace", 10.0))
        self.code: int | None = None
        self.max_rss = 0
        self.ended_at = 0.0
        self.leftovers: set[int] = set()
        self.sinks: set[int] = set()
        self.kill_at: float | None = None
        # More for exit-N.json (the remote runner's: the cause it knows, the node).
        self.extra: dict = {}


def _stat_fields(pid: int) -> list[bytes] | None:
    # os.open and os.read, not open(): half the cost, and a scan for leftovers reads every process's.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    if b")" not in data:
        return None  # gone between the open and the read
    # Fields after the command name (which may hold spaces and parentheses): state, ppid, pgrp, session...
    return data[data.rindex(b")") + 2:].split()


def leftovers(jobs: list[Job]) -> dict[int, tuple[set[int], set[int]]]:
    """Per job (by pid): live processes of its session, or marked with its run id (never this process),
    and its sinks. One pass over /proc serves every job that ended at once."""
    me = os.getpid()
    found: dict[int, tuple[set[int], set[int]]] = {job.pid: (set(), set()) for job in jobs}
    by_session = {job.pid: job for job in jobs}
    markers = {f"{RUN_ID_ENV}={job.run_id}".encode(): job for job in jobs if job.run_id}
    oldest = min(job.start_ticks for job in jobs)
    try:
        names = os.listdir("/proc")
    except OSError:
        return found  # no /proc (not Linux): the scheduler's own stop still reaches the job's group
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        fields = _stat_fields(pid)
        # A process older than every job cannot be one they started: its environment need not be read.
        if fields is None or fields[0] in _STATE_SKIP or int(fields[19]) < oldest:
            continue
        ticks = int(fields[19])
        session = by_session.get(int(fields[3]))
        if session is not None and ticks >= session.start_ticks:
            found[session.pid][0].add(pid)
            continue
        if not markers:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue  # another user's process, or gone
        variables = environ.split(b"\0")
        for marker, job in markers.items():
            if marker in variables and ticks >= job.start_ticks:
                found[job.pid][1 if SINK_MARK in variables else 0].add(pid)
    return found


def _signal_all(pids: set[int], sig: int) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, sig)
            alive.add(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return alive


def _write_record(job: Job) -> None:
    record = {"pid": job.pid, "exit_code": job.code, "ended_at": job.ended_at, "max_rss": job.max_rss,
              "leftovers": len(job.leftovers), **job.extra}
    tmp = f"{job.record}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(tmp, job.record)
    except OSError:
        pass  # the run folder is gone: the scheduler (if alive) still hears of the end


class Shepherd:
    """The shepherd's state: its jobs, by pid, and the scheduler's pipe."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.scheduler_gone = False
        self.pending = b""

    def tell(self, message: dict) -> None:
        if self.scheduler_gone:
            return
        try:
            os.write(1, (json.dumps(message) + "\n").encode())
        except OSError:
            self.scheduler_gone = True

    def start(self, request: dict) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if request.get("append") else os.O_TRUNC)
        try:
            out = os.open(request["stdout"], flags, 0o666)
            err = os.open(request["stderr"], flags, 0o666)
        except OSError as exc:
            self.tell({"id": request["id"], "errno": exc.errno, "error": str(exc)})
            return
        try:
            # Popen forks with vfork and execs from C: several times faster than a fork running Python.
            # It resets SIGPIPE and SIGXFSZ (restore_signals); the shepherd's other signals have handlers,
            # which exec resets, so the job starts with every signal at its default.
            process = subprocess.Popen(
                request["argv"], cwd=request["cwd"], env=request["env"], stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True, close_fds=True, restore_signals=True,
            )
        except OSError as exc:
            self.tell({"id": request["id"], "errno": exc.errno or 0, "error": exc.strerror or str(exc)})
            return
        finally:
            os.close(out)
            os.close(err)
        fields = _stat_fields(process.pid)
        ticks = int(fields[19]) if fields else None
        self.jobs[process.pid] = Job(request, process, ticks or 0)
        self.tell({"id": request["id"], "pid": process.pid, "start_ticks": ticks})

    def reap(self) -> None:
        ended = []
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job = self.jobs.get(pid)
            if job is None or job.code is not None:
                continue
            job.code = job.process.returncode = os.waitstatus_to_exitcode(status)
            job.ended_at = time.time()
            job.max_rss = usage.ru_maxrss * 1024
            ended.append(job)
        if not ended:
            return
        found = leftovers(ended)
        for job in ended:
            job.leftovers, job.sinks = found[job.pid]
            # The metrics writer commits what the job logged and exits when the job's end closes its
            # input: waited for (the grace period at most), so that the metrics are whole when the end is told.
            if _signal_all(job.leftovers, signal.SIGTERM) | {pid for pid in job.sinks if _alive(pid)}:
                job.kill_at = time.monotonic() + job.grace
            else:
                self.finish(job)

    def finish(self, job: Job) -> None:
        _write_record(job)
        del self.jobs[job.pid]
        self.tell({"id": job.id, "ended": True, "pid": job.pid, "exit_code": job.code, "ended_at": job.ended_at,
                   "max_rss": job.max_rss, "leftovers": len(job.leftovers)})

    def settle_leftovers(self, now: float) -> float | None:
        """Finish the jobs whose leftovers are gone or due a SIGKILL; when to look again."""
        wake = None
        for job in [j for j in self.jobs.values() if j.kill_at is not None]:
            still = {pid for pid in job.leftovers | job.sinks if _alive(pid)}
            assert job.kill_at is not None
            if still and now < job.kill_at:
                wake = min(wake or 1.0, 0.05)
                continue
            others, sinks = leftovers([job])[job.pid]
            _signal_all(still | others | sinks, signal.SIGKILL)
            self.finish(job)
        return wake

    def read_requests(self) -> None:
        try:
            chunk = os.read(0, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.scheduler_gone = True
            return
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            request = json.loads(line)
            try:
                self.start(request)
            except Exception as exc:  # noqa: BLE001 - a launch that fails (fork: EAGAIN) must not end the others
                self.tell({"id": request.get("id"), "errno": getattr(exc, "errno", 0) or 0, "error": str(exc)})


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in _STATE_SKIP


def _outlive_the_asker() -> None:
    """Go on in a child, so that whatever kills the asker's direct children on its way out misses the shepherd.

    A Ray worker that exits kills its direct children (Ray's
    `kill_child_processes_on_worker_exit`, on by default) before its pipes
    close: a shepherd killed there could no longer kill its jobs, which run in
    sessions of their own. This process stays as the asker's child, holding
    nothing, and ends with the shepherd's exit status.
    """
    child = os.fork()
    if child == 0:
        return
    os.close(0)
    os.close(1)
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def main() -> None:
    kill_orphans = os.environ.get(KILL_ORPHANS_ENV) == "1"
    if kill_orphans:
        _outlive_the_asker()
    shepherd = Shepherd()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    # In a session of its own no terminal reaches it; SIGHUP and SIGINT would come from a careless `kill`.
    # Handlers, not SIG_IGN: an ignored signal would stay ignored in the jobs it execs.
    for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    while not (shepherd.scheduler_gone and not shepherd.jobs):
        if kill_orphans and shepherd.scheduler_gone:
            kill_orphans = False
            for job in shepherd.jobs.values():
                try:
                    os.killpg(job.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    continue
        timeout = shepherd.settle_leftovers(time.monotonic())
        watched = [wake_r] if shepherd.scheduler_gone else [0, wake_r]
        try:
            ready, _, _ = select.select(watched, [], [], timeout if timeout is not None else 1.0)
        except InterruptedError:
            ready = []
        if wake_r in ready:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
        if 0 in ready:
            shepherd.read_requests()
        shepherd.reap()


if __name__ == "__main__":
    try:
        main()
    except OSError as exc:  # pragma: no cover - nothing to report to once the pipes are gone
        if exc.errno != errno.EPIPE:
            raise
    sys.exit(0)
