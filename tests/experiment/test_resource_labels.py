"""`resources.labels`: what a node must have on an engine (Ray custom resources, Slurm constraints); checked,
ignored locally."""

from __future__ import annotations

from tests.conftest import Project


def test_labels_are_names_and_a_local_run_ignores_them(project: Project) -> None:
    project.write("exp.yaml", 'jobs:\n  train: {run: "python -c pass", resources: {labels: [a100, 3]}}\n')
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "exp.yaml:2" in done.stderr, done.stderr
    assert "resources.labels: must be a name or a list of names" in done.stderr and "Traceback" not in done.stderr
    project.write("exp.yaml", 'jobs:\n  train: {run: "python -c pass", resources: {labels: [a100]}}\n')
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
