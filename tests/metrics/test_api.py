"""The in-job API's edges: a cheap import, clear errors outside a job, checkpoint and resume folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mayuri
from tests.conftest import Project


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def test_import_mayuri_stays_cheap(tmp_path: Path) -> None:
    done = _python(
        "import sys, mayuri\n"
        "heavy = {'peewee', 'sqlite3', 'torch', 'transformers', 'textual', 'pynvml', 'numpy'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
        "mayuri.runs  # the read-back API loads on first use\n"
        "print('peewee' in sys.modules)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"]


def test_a_job_that_reads_its_shard_and_sets_outputs_loads_nothing_costly(tmp_path: Path) -> None:
    # Every job of a sharded evaluation pays its start-up: the store's database layer (peewee,
    # sqlite3) cost ~25 ms of it, dataclasses, typing and tempfile a few ms more.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "MAYURI_RUN_ID": "ab" * 16, "MAYURI_RUN_DIR": str(run_dir), "MAYURI_SHARD": "1",
           "MAYURI_SHARDS": "4", "MAYURI_PARAMS": '{"n": 10}'}
    code = ("import sys, mayuri\n"
            "part = mayuri.shard_of(range(mayuri.params()['n']))\n"
            "mayuri.output('total', sum(part))\n"
            "mayuri.output('index', mayuri.shard()[0])\n"
            "costly = {'peewee', 'sqlite3', 'dataclasses', 'typing', 'tempfile', 'inspect', 'hashlib'}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & costly))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
    assert json.loads((run_dir / "outputs.json").read_text()) == {"index": 1, "total": 3 + 4 + 5}
    assert (run_dir / "outputs.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_log_outside_a_job_says_how_to_run_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = _python("import mayuri\nmayuri.log(step=0, loss=1.0)", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not in a run" in done.stderr and "mayuri run" in done.stderr
    monkeypatch.setenv("MAYURI_STRICT", "1")
    done = _python("import mayuri\nmayuri.log(step=0, loss=1.0)", tmp_path)
    assert done.returncode == 1
    assert "not a job launched by `mayuri run`" in done.stderr


def test_checkpoint_dir_and_resume_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYURI_RUN_ID", "ab" * 16)
    monkeypatch.setenv("MAYURI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("MAYURI_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("MAYURI_RESUME_FROM", raising=False)
    assert mayuri.checkpoint_dir() == tmp_path / "run" / "checkpoints"
    assert mayuri.checkpoint_dir().is_dir()
    assert mayuri.resume_from() is None
    monkeypatch.setenv("MAYURI_CHECKPOINT_DIR", str(tmp_path / "run" / "checkpoints" / "2"))
    monkeypatch.setenv("MAYURI_RESUME_FROM", str(tmp_path / "run" / "checkpoints" / "1"))
    assert mayuri.checkpoint_dir() == tmp_path / "run" / "checkpoints" / "2"
    assert mayuri.resume_from() == tmp_path / "run" / "checkpoints" / "1"


def test_bad_steps_and_names_are_refused(project: Project) -> None:
    project.write("bad_step.py", """
        import mayuri
        for bad in ({"step": 1.5}, {"step": "3"}):
            try:
                mayuri.log(x=1.0, **bad)
            except mayuri.job.MetricValueError as exc:
                print("refused:", exc)
        try:
            mayuri.log({"": 1.0}, step=0)
        except TypeError as exc:
            print("refused:", exc)
    """)
    project.write("exp.yaml", "name: steps\njobs:\n  s:\n    run: python bad_step.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = project.runs()
    out = (project.root / ".mayuri" / "runs" / run["id"] / "stdout.log").read_text().splitlines()
    assert out == [
        "refused: mayuri.log: step must be an integer, not float (1.5).",
        "refused: mayuri.log: step must be an integer, not str ('3').",
        "refused: mayuri.log: metric names must be non-empty strings, not ''.",
    ]
