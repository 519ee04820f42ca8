"""A shepherd told to kill orphans (MAYURI_SHEPHERD_KILL_ORPHANS, as on a Ray node) kills its jobs once the
process that asked for them is gone, even when that process's exit first killed its direct children.

Ray does exactly that: a worker that exits kills its direct child processes
(RAY_kill_child_processes_on_worker_exit, on by default), which is where the
shepherd would be; the job, in a session of its own, would then run on with
nobody to stop it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

# The "Ray worker": starts a shepherd as the node does, asks it for a job, prints the pids, then waits.
WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from mayuri.executors.local.shepherd import KILL_ORPHANS_ENV
    os.environ[KILL_ORPHANS_ENV] = "1"
    from mayuri.executors.local import process
    keeper = process.shepherd()
    folder = Path(sys.argv[1])
    request = {"argv": [sys.executable, "-c", "import time; time.sleep(300)"], "cwd": str(folder),
               "env": {"PATH": os.environ["PATH"], "MAYURI_RUN_ID": "orphan-test"},
               "stdout": str(folder / "out.log"), "stderr": str(folder / "err.log"),
               "record": str(folder / "exit-1.json"), "run_id": "orphan-test"}
    answer = keeper.answer(keeper.send(request))
    print(keeper.process.pid, answer["pid"], flush=True)
    time.sleep(300)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def _worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """The worker, its shepherd's pid and its job's pid; whatever still runs at the end is killed, by pid."""
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    job_pid = 0
    try:
        assert worker.stdout is not None
        shepherd_pid, job_pid = (int(word) for word in worker.stdout.readline().split())
        yield worker, shepherd_pid, job_pid
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if job_pid and _alive(job_pid):
            os.kill(job_pid, signal.SIGKILL)


def test_the_job_dies_when_its_worker_exits_after_killing_its_direct_children(tmp_path: Path) -> None:
    with _worker(tmp_path) as (worker, shepherd_pid, job_pid):
        assert _alive(job_pid)
        # What the Ray worker does on its way out: SIGKILL to its direct children, then it exits.
        os.kill(shepherd_pid, signal.SIGKILL)
        worker.kill()
        worker.wait()
        assert _wait_gone(job_pid, 20), "the job outlived its worker"


def test_the_job_dies_when_its_worker_is_killed_outright(tmp_path: Path) -> None:
    with _worker(tmp_path) as (worker, _, job_pid):
        worker.kill()
        worker.wait()
        assert _wait_gone(job_pid, 20), "the job outlived its worker"
