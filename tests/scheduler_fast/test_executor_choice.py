"""Which executor runs a job: the registry by name, `[executor] default`, `executor:` and `--executor`."""

from __future__ import annotations

import pytest

import mayuri.executors as executors
from mayuri.errors import ConfigError
from mayuri.executors.local import LocalExecutor
from tests.conftest import Project
from tests.scheduler_fast.fake_executor import FakeExecutor

EXP = """
jobs:
  hello: {run: "python -c pass"}
"""


def test_local_is_built_in_and_others_come_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(executors.load("local"), LocalExecutor)
    monkeypatch.setattr(executors, "_plugins",
                        lambda: {"fake": "tests.scheduler_fast.fake_executor:FakeExecutor"})
    assert executors.known() == ["local", "slurm", "fake"]
    assert isinstance(executors.load("fake"), FakeExecutor)
    with pytest.raises(ConfigError, match="unknown executor 'ray'; known: local, slurm, fake"):
        executors.load("ray")


def test_unknown_executor_names_are_refused_before_anything_runs(project: Project) -> None:
    project.write("exp.yaml", EXP)
    done = project.mayuri("run", "exp.yaml", "--executor", "nope")
    assert done.returncode == 2 and "unknown executor 'nope'; known: local" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    project.write("bad.yaml", 'jobs:\n  hello: {run: "python -c pass", executor: kubernetes}\n')
    done = project.mayuri("run", "bad.yaml")
    assert done.returncode == 2 and "bad.yaml:2" in done.stderr and "known: local" in done.stderr, done.stderr
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + '\n[executor]\ndefault = "pbs"\n')
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "[executor] default: unknown executor 'pbs'" in done.stderr, done.stderr
    assert not project.runs()


def test_local_named_everywhere_runs_as_before(project: Project) -> None:
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + '\n[executor]\ndefault = "local"\n\n[executor.ray]\naddress = "auto"\n')
    project.write("exp.yaml", 'executor: local\njobs:\n  hello: {run: "python -c pass"}\n')
    done = project.mayuri("run", "exp.yaml", "--executor", "local")
    assert done.returncode == 0, done.stderr
    run = project.runs()[0]
    assert run["status"] == "succeeded"
    import sqlite3

    with sqlite3.connect(project.db) as conn:
        executor, ref, pid = conn.execute("SELECT executor, executor_ref, pid FROM attempt").fetchone()
    assert executor == "local" and ref.startswith(f"{pid}@")


def test_the_entry_points_are_read_once_however_many_jobs_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    # A plan asks for the executor of every job instance: reading the installed packages' metadata each time
    # cost about 10 ms a job (2.5 s for a 200-point sweep on Ray).
    import importlib.metadata

    reads: list[str] = []
    real = importlib.metadata.entry_points

    def counted(**selection: str) -> object:
        reads.append(selection.get("group", ""))
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", counted)
    executors._plugins.cache_clear()
    try:
        for _ in range(200):
            assert executors.is_known("ray") == executors.is_known("ray")
            executors.known()
        assert reads == [executors.GROUP]
    finally:
        executors._plugins.cache_clear()
