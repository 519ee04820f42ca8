"""`mayuri.init` in a script started by hand: an ad-hoc run in the project's store."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import Project

SCRIPT = """
import sys
import mayuri
run = mayuri.init(experiment="scratch", params={"lr": 0.5})
assert mayuri.params() == {"lr": 0.5}
for step in range(100):
    mayuri.log(step=step, loss=1.0 / (step + 1))
mayuri.output("score", 0.75)
if sys.argv[1:] == ["fail"]:
    raise RuntimeError("boom")
if sys.argv[1:2] == ["exit"]:
    sys.exit(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
"""


def _run(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    project.write("by_hand.py", SCRIPT)
    return subprocess.run([sys.executable, "by_hand.py", *args], cwd=project.root, capture_output=True,
                          text=True, timeout=120, check=False)


def test_adhoc_run_is_recorded_with_metrics_and_outputs(project: Project) -> None:
    done = _run(project)
    assert done.returncode == 0, done.stderr
    (run,) = project.runs()
    assert (run["experiment"], run["job"], run["kind"], run["status"]) == ("scratch", "by_hand", "adhoc", "succeeded")
    assert run["params"] == {"lr": 0.5}
    import mayuri

    (found,) = mayuri.runs(experiment="scratch", store=project.root / ".mayuri", lr=0.5)
    assert found.outputs == {"score": 0.75}
    assert len(found.metrics("loss")) == 100 and found.best("loss") == 0.01


def test_adhoc_run_that_raises_is_failed(project: Project) -> None:
    done = _run(project, "fail")
    assert done.returncode == 1 and "boom" in done.stderr
    (run,) = project.runs()
    assert run["status"] == "failed"
    assert project.show(run["id"])  # readable by the CLI


def test_adhoc_run_that_exits_with_a_failing_status_is_failed(project: Project) -> None:
    for status, code in (("3", 3), ("bad input", 1)):
        done = _run(project, "exit", status)
        assert done.returncode == code, done.stderr
        run = project.runs()[0]
        assert (run["status"], run["exit_code"]) == ("failed", code)
        assert project.show(run["id"])["exit_code"] == code


def test_adhoc_run_that_exits_with_status_zero_succeeded(project: Project) -> None:
    done = _run(project, "exit", "0")
    assert done.returncode == 0, done.stderr
    (run,) = project.runs()
    assert run["status"] == "succeeded"
