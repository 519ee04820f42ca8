"""The in-job API in a plain script (no run), strictly, and `mayuri.init(params=...)` inside a job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Project

SCRIPT = """\
import mayuri
p = mayuri.params(defaults={"lr": 0.1, "epochs": 2})
print("params", sorted(p.items()))
for step in range(3):
    mayuri.log(step=step, loss=1.0 / (step + 1))
mayuri.output("score", 1)
mayuri.output("score", 2)
print("artifact", mayuri.artifact("train.py"))
print("empty", mayuri.params())
"""


def _plain(folder: Path, strict: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYURI_")}
    if strict:
        env["MAYURI_STRICT"] = "1"
    return subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_plain_script_runs_with_defaults_and_one_notice_per_call(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    done = _plain(tmp_path)  # no mayuri.toml anywhere: not a project either
    assert done.returncode == 0, done.stderr
    assert "params [('epochs', 2), ('lr', 0.1)]" in done.stdout
    assert "artifact train.py" in done.stdout and "empty {}" in done.stdout
    notices = [line for line in done.stderr.splitlines() if line.startswith("mayuri: not in a run")]
    assert len(notices) == 3, done.stderr
    assert {call for call in ("log", "output", "artifact") if any(f"mayuri.{call}()" in n for n in notices)} \
        == {"log", "output", "artifact"}


def test_strict_mode_fails_outside_a_run(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    done = _plain(tmp_path, strict=True)
    assert done.returncode != 0
    assert "MAYURI_RUN_ID is not set" in done.stderr


def test_the_same_script_under_mayuri_run_gets_its_params_and_logs(project: Project) -> None:
    project.write("train.py", SCRIPT)
    project.write("exp.yaml", "params: {lr: 0.5}\njobs:\n  train:\n    run: python train.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    shown = project.show(run["id"])
    assert shown["outputs"] == {"score": 2}
    assert shown["metrics"]["loss"]["count"] == 3
    logs = project.mayuri("logs", run["id"]).stdout
    assert "params [('epochs', 2), ('lr', 0.5)]" in logs
    assert "not in a run" not in logs


def test_init_with_params_inside_a_job_records_them(project: Project) -> None:
    project.write("train.py", """\
        import pathlib
        import mayuri
        mayuri.init("ignored", params={"lr": 0.3, "data": pathlib.Path("d"), "layers": [1, 2]})
        """)
    project.write("exp.yaml", "jobs:\n  train:\n    run: python train.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    assert project.show(run["id"])["script_params"] == {"lr": 0.3, "data": "d", "layers": [1, 2]}
    text = project.mayuri("show", run["id"]).stdout
    assert "script params (mayuri.init)" in text and "0.3" in text
