"""`metrics_from: {stdout: ...}`: a program that only prints gets metrics, live, shown with logged ones."""

from __future__ import annotations

from tests.conftest import Project

PRINTER = """\
import os, sys, time
import mayuri
print("iter 0: loss 2.5000")
print("iter 10: loss 1.2500 extra words")
print("eval acc=0.75")
print("nothing to see")
mayuri.log(step=10, logged=1.0)
# The metrics must be in the store while the job still runs: they are read as the lines appear.
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    summary = mayuri.get_run(os.environ["MAYURI_RUN_ID"], store=os.environ["MAYURI_STORE"]).summary
    if "loss" in summary and "acc" in summary:
        break
    time.sleep(0.1)
else:
    sys.exit("the printed metrics never arrived while the job ran")
print("bye", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""

EXP = """\
jobs:
  train:
    run: python printer.py ${code}
    params: {code: 0}
    metrics_from:
      stdout: ['iter (?P<step>\\d+): loss (?P<loss>[\\d.]+)', 'acc=(?P<acc>[\\d.]+)']
"""


def test_printed_lines_become_metrics_as_they_appear(project: Project) -> None:
    project.write("printer.py", PRINTER)
    project.write("exp.yaml", EXP)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    metrics = project.show(run["id"])["metrics"]
    assert metrics["loss"]["count"] == 2 and metrics["loss"]["last"] == 1.25 and metrics["loss"]["last_step"] == 10
    assert metrics["acc"]["last"] == 0.75
    assert metrics["logged"]["count"] == 1
    # The output itself is kept as printed, and the closure is the program's, not the wrapper's.
    logs = project.mayuri("logs", run["id"], "--no-stderr").stdout
    assert logs.splitlines()[:2] == ["iter 0: loss 2.5000", "iter 10: loss 1.2500 extra words"]
    paths = {c["path"] for c in project.show(run["id"])["closure"]}
    assert "printer.py" in paths and not any("stdout_metrics" in p for p in paths)
    text = project.mayuri("show", run["id"]).stdout
    assert "acc" in text and "loss" in text


def test_the_programs_exit_status_is_the_runs(project: Project) -> None:
    project.write("printer.py", PRINTER)
    project.write("exp.yaml", EXP)
    done = project.mayuri("run", "exp.yaml", "code=3")
    assert done.returncode == 1
    [run] = project.runs()
    assert run["status"] == "failed"
    assert project.show(run["id"])["exit_code"] == 3
    assert project.show(run["id"])["metrics"]["loss"]["count"] == 2


def test_a_pattern_without_a_metric_or_invalid_is_refused(project: Project) -> None:
    project.write("exp.yaml", "jobs:\n  a:\n    run: 'true'\n    metrics_from: {stdout: 'step (?P<step>\\d+)'}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "names no metric" in done.stderr and "exp.yaml:4" in done.stderr
    project.write("exp.yaml", "jobs:\n  a:\n    run: 'true'\n    metrics_from: {stdout: '(?P<x'}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "not a valid regular expression" in done.stderr
