"""Two `mayuri run` on one store never do the same work twice, and never wait on a dead one (issue 15)."""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import Project
from tests.scheduler.sched_helpers import query, start_mayuri, store_is_sound, wait_for

SWEEP = """\
name: sweep
params: {i: 0, pause: 1.5}
jobs:
  train:
    run: python -c "import time, mayuri; time.sleep(${pause}); mayuri.output('score', ${i} * 2)"
    sweep: {i: [1, 2, 3, 4]}
"""
LABELS = [f"train[i={i}]" for i in (1, 2, 3, 4)]


def test_two_schedulers_started_together_run_each_point_once(project: Project, sigkill_later: list[int]) -> None:
    project.write("exp.yaml", SWEEP)
    first = start_mayuri(project.root, "run", "exp.yaml")
    second = start_mayuri(project.root, "run", "exp.yaml")
    sigkill_later.extend([first.pid, second.pid])
    outputs = []
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(err)
    launches = query(project.db, "SELECT count(*) FROM attempt")[0][0]
    assert launches == 4, f"{launches} launches for 4 sweep points"
    assert query(project.db, "SELECT count(*) FROM run WHERE status = 'succeeded'")[0][0] == 4
    for err in outputs:
        # Both report every result, succeeded here or cached from the other one.
        for label in LABELS:
            assert any(line.startswith(label) and ("succeeded" in line or "cached" in line)
                       for line in err.splitlines()), err
        assert "4 jobs:" in err and "failed" not in err.splitlines()[-1]
    assert any("waiting for run" in err and "another mayuri run" in err for err in outputs), outputs
    assert query(project.db, "SELECT count(*) FROM run_claim")[0][0] == 0
    store_is_sound(project.db)


# The pause comes from the environment (not the config, so that both schedulers plan the same run): the
# first scheduler's job outlives the test's kill, the job of the one that takes over ends at once.
PAUSED = SWEEP.replace("import time, mayuri; time.sleep(${pause})",
                       "import os, time, mayuri; time.sleep(float(os.environ['PAUSE']))")


def test_a_wait_on_a_scheduler_that_died_takes_the_work_over(project: Project, sigkill_later: list[int]) -> None:
    project.write("exp.yaml", PAUSED.replace("[1, 2, 3, 4]", "[1]"))
    first = start_mayuri(project.root, "run", "exp.yaml", env={"PAUSE": "60"})
    sigkill_later.append(first.pid)
    wait_for(lambda: query(project.db, "SELECT count(*) FROM attempt WHERE status = 'running'")[0][0] == 1,
             timeout=60, message="the first scheduler's job")
    job_pid = query(project.db, "SELECT pid FROM attempt")[0][0]
    sigkill_later.append(job_pid)
    second = start_mayuri(project.root, "run", "exp.yaml", env={"PAUSE": "0"})
    sigkill_later.append(second.pid)
    wait_for(lambda: query(project.db, "SELECT count(*) FROM scheduler WHERE status = 'running'")[0][0] == 2,
             timeout=60, message="the second scheduler")
    time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    os.kill(job_pid, signal.SIGKILL)
    first.wait(timeout=30)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "train[i=1]" in err and "succeeded" in err.splitlines()[-1], err
    assert query(project.db, "SELECT count(*) FROM run WHERE status = 'succeeded'")[0][0] == 1
