"""`mayuri.log` from real jobs under `mayuri run`: crashes, concurrency, odd values, latency."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Project

LOGGER = """
import os, sys, time
import mayuri
open(sys.argv[1], "w").write(str(os.getpid()))
step = 0
while True:
    mayuri.log(step=step, tick=time.time())
    step += 1
    time.sleep(0.001)
"""


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _ticks(db: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT step, value FROM metric JOIN metric_key k ON k.id = key_id WHERE k.name = 'tick' ORDER BY step"
        ).fetchall()


def test_running_points_are_visible_soon_and_sigkill_loses_at_most_a_second(project: Project) -> None:
    project.write("logger.py", LOGGER)
    project.write("exp.yaml", "name: crash\njobs:\n  log:\n    run: python logger.py pid.txt\n")
    scheduler = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "exp.yaml"], cwd=project.root,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(project.root / "pid.txt")
        time.sleep(3)
        # While it runs: a point logged 2 s ago is already in the store.
        checked = time.time()
        assert _ticks(project.db) and _ticks(project.db)[-1][1] >= checked - 2.0
        time.sleep(1)
        killed_at = time.time()
        os.kill(int((project.root / "pid.txt").read_text()), signal.SIGKILL)
        scheduler.wait(60)
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
        # The job outlives a killed scheduler (its shepherd keeps it): a failure above must not leave it logging.
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((project.root / "pid.txt").read_text()), signal.SIGKILL)
    # The writer process drains what it was sent: the last second before the kill is in the store within
    # a moment of the scheduler's end (1.5 s at most).
    deadline = time.monotonic() + 1.5
    while not _ticks(project.db) or _ticks(project.db)[-1][1] < killed_at - 1.0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ticks = _ticks(project.db)
    steps = [s for s, _ in ticks]
    assert steps == list(range(len(steps))), "points are missing in the middle"
    assert ticks[-1][1] >= killed_at - 1.0, f"lost {killed_at - ticks[-1][1]:.2f}s of points"
    (run,) = project.runs()
    assert run["status"] == "failed"


def test_two_jobs_log_at_once_into_one_store(project: Project) -> None:
    project.write("many.py", """
        import sys
        import mayuri
        for step in range(20000):
            mayuri.log(step=step, loss=1.0 / (step + 1), run_index=float(sys.argv[1]))
    """)
    project.write("exp.yaml", """
        name: both
        jobs:
          many:
            run: python many.py ${index}
            params: {index: 0}
            sweep: {index: [1, 2]}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    runs = project.runs()
    assert len(runs) == 2
    with sqlite3.connect(project.db) as con:
        for run in runs:
            count, low, high = con.execute(
                "SELECT count, min, max FROM metric_summary s JOIN metric_key k ON k.id = s.key_id "
                "WHERE run_id = ? AND k.name = 'loss'", (run["id"],)).fetchone()
            assert (count, low, high) == (20000, 1.0 / 20000, 1.0)
            # The scheduler's own samples (keys `sys/...`) are in the same table.
            rows = con.execute("SELECT count(*) FROM metric JOIN metric_key k ON k.id = key_id "
                               "WHERE run_id = ? AND k.name NOT LIKE 'sys/%'", (run["id"],)).fetchone()[0]
            assert rows == 40000
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _not_json(command: tuple[str, ...], name: str) -> None:
    pytest.fail(f"{command}: {name} is not JSON")


def test_nan_inf_and_non_scalar_values(project: Project) -> None:
    project.write("odd.py", """
        import mayuri
        mayuri.log(step=0, x=float("nan"), y=float("inf"), flag=True)
        mayuri.log(step=1, x=2.5, y=-float("inf"), flag=False)
        mayuri.log(step=2, weights=[1.0, 2.0])
    """)
    project.write("exp.yaml", "name: odd\njobs:\n  odd:\n    run: python odd.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    (run,) = project.runs()
    stderr = (project.root / ".mayuri" / "runs" / run["id"] / "stderr.log").read_text()
    assert "MetricValueError" in stderr and "'weights' must be one number (int or float), not list" in stderr
    # The points before the bad call are kept, NaN and inf included.
    import mayuri

    (found,) = mayuri.runs(store=project.root / ".mayuri")
    x = found.metrics("x")
    assert x.steps == [0, 1] and math.isnan(x.values[0]) and x.values[1] == 2.5
    assert found.metrics("y").values == [math.inf, -math.inf]
    assert found.metrics("flag").values == [1.0, 0.0]
    assert found.best("y", mode="max") == math.inf and found.best("x") == 2.5
    assert "weights" not in found.summary
    # --json output is strict JSON: the non-finite values are null there.
    for command in (("show", run["id"], "--json"), ("runs", "--json")):
        done = project.mayuri(*command)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout, parse_constant=functools.partial(_not_json, command))
    assert data[0]["id"] == run["id"]
    shown = json.loads(project.mayuri("show", run["id"], "--json").stdout)
    assert shown["metrics"]["y"]["max"] is None and shown["metrics"]["x"]["last"] == 2.5


def test_numpy_scalars_are_numbers(project: Project) -> None:
    project.write("np_job.py", """
        import numpy as np
        import mayuri
        mayuri.log(step=np.int64(3), a=np.float32(0.5), b=np.array(2.0), c=np.int8(4))
    """)
    project.write("exp.yaml", "name: np\njobs:\n  np:\n    run: python np_job.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    import mayuri

    (found,) = mayuri.runs(store=project.root / ".mayuri")
    assert {k: (s.last, s.last_step) for k, s in found.summary.items() if not k.startswith("sys/")} == {
        "a": (0.5, 3), "b": (2.0, 3), "c": (4.0, 3)}
