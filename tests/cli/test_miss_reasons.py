"""Why a job must run: a miss is explained against the nearest earlier run of the job.

The earlier runs are read from the store once per job and pass of the
planner, not once per instance: explaining the 200 misses of a sweep read
50 runs 200 times, about a second of every such `mayuri run`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mayuri import cache
from mayuri.run_experiment import RunRequest, run_experiment
from mayuri.scheduler.events import SilentReporter
from tests.conftest import Project

SWEEP = 'jobs:\n  echo:\n    run: "echo ${i} ${round}"\n    params: {i: 0, round: 0}\n    sweep: {i: {range: [0, 30]}}\n'


def test_each_point_of_a_sweep_is_explained_from_one_read_of_the_earlier_runs(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("exp.yaml", SWEEP)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    read: list[str] = []
    real = cache.latest_runs
    monkeypatch.setattr(cache, "latest_runs", lambda store, experiment, job, **kw: read.append(job) or
                        real(store, experiment, job, **kw))
    monkeypatch.chdir(project.root)
    planned = run_experiment(RunRequest(file=Path("exp.yaml"), overrides=("echo.round=1",), dry_run=True),
                             SilentReporter(), project.root)
    reasons = {slot.instance.key: slot.reason for slot in planned.outcome.slots}
    # Each point is compared with the earlier run of the same point, the nearest one.
    assert len(reasons) == 30 and set(reasons.values()) == {"param round 0 -> 1"}, reasons
    assert read == ["echo"]
    # A new point is compared with its nearest neighbour, which differs in `i` alone.
    planned = run_experiment(RunRequest(file=Path("exp.yaml"), overrides=("echo.i=31",), dry_run=True),
                             SilentReporter(), project.root)
    [slot] = planned.outcome.slots
    assert slot.reason.startswith("param i ") and slot.reason.endswith(" -> 31"), slot.reason
