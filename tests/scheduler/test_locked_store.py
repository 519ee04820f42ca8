"""A store locked past its busy timeout while a job runs only delays the job's records.

Through the real CLI with `[store] busy_timeout = 1`: another process holds
`BEGIN EXCLUSIVE` for 3.5 s (longer than a blocked heartbeat and a blocked
sample together), and the job ends while it does. The scheduler must retry
its records (showing why it waits), and the run must end `succeeded`,
recorded exactly once, with nothing left running.
"""

from __future__ import annotations

import subprocess
import sys
import time

from sched_helpers import attempts, query, start_mayuri, store_is_sound, wait_for

HOLD = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
print("released", flush=True)
"""

# The job ends only once the lock is held, so that its end must be recorded through the lock.
JOB = """
import pathlib, time
pathlib.Path("started").touch()
deadline = time.monotonic() + 60
while not pathlib.Path("locked").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
with open("launches.txt", "a") as marker:
    marker.write("ran\\n")
"""


def test_a_lock_longer_than_the_busy_timeout_only_delays_the_records(project, sigkill_later) -> None:
    config = project.root / "mayuri.toml"
    text = config.read_text()
    assert "busy_timeout = 30" in text
    config.write_text(text.replace("busy_timeout = 30", "busy_timeout = 1"))
    project.write("job.py", JOB)
    project.write("exp.yaml", """
        name: locked
        jobs:
          work:
            run: python job.py
        """)
    run = start_mayuri(project.root, "run", "exp.yaml")
    sigkill_later.append(run.pid)
    wait_for(lambda: (project.root / "started").exists() or run.poll() is not None, message="the job to start")
    assert run.poll() is None, run.communicate()

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(project.db), "3.5"], stdout=subprocess.PIPE, text=True)
    sigkill_later.append(holder.pid)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    locked_at = time.monotonic()
    (project.root / "locked").touch()

    out, err = run.communicate(timeout=120)
    assert holder.wait(timeout=30) == 0
    assert run.returncode == 0, out + err
    # It waited for the lock rather than giving up after the busy timeout.
    assert time.monotonic() - locked_at >= 2.5
    assert "store locked" in out + err, out + err

    runs = project.runs()
    assert [(r["job"], r["status"]) for r in runs] == [("work", "succeeded")]
    assert [(a["number"], a["status"]) for a in attempts(project.db)] == [(1, "succeeded")]
    assert (project.root / "launches.txt").read_text().splitlines() == ["ran"]
    assert query(project.db, "SELECT status FROM scheduler") == [("finished",)]
    store_is_sound(project.db)
