"""Smaller everyday items: .gitignore on init, readable `runs`, why a job failed, an empty filter."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import Project


def test_init_adds_the_store_to_gitignore_in_a_git_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("*.pyc")
    project = Project(root)
    done = project.mayuri("init")
    assert done.returncode == 0, done.stderr
    assert "added the store to" in done.stderr
    assert (root / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    assert "/.mayuri/" in (root / ".gitignore").read_text().splitlines()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    assert ".mayuri" not in status
    # Twice is once.
    assert project.mayuri("init").returncode == 0
    assert (root / ".gitignore").read_text().count("/.mayuri/") == 1


def test_init_outside_git_writes_no_gitignore(project: Project) -> None:
    assert not (project.root / ".gitignore").exists()


def test_runs_shows_only_the_params_that_differ(project: Project) -> None:
    project.write("exp.yaml", """\
        params: {seed: 0, epochs: 10, opt: {name: adam, beta: 0.9}, batch_size: 64, warmup: 100}
        jobs:
          train:
            run: python -c "pass" ${seed} ${opt} ${batch_size} ${warmup} ${epochs}
        """)
    done = project.mayuri("run", "exp.yaml", "seed=1,2", "opt.beta=0.8,0.95")
    assert done.returncode == 0, done.stderr
    table = project.mayuri("runs").stdout
    assert "params that differ" in table
    assert "seed=1" in table and "opt.beta=0.8" in table
    assert "epochs" not in table and "warmup" not in table and "adam" not in table
    every = project.mayuri("runs", "--all-params").stdout
    assert "epochs=10" in every and "batch_size=64" in every


def test_a_failed_job_says_the_last_line_of_its_stderr(project: Project) -> None:
    project.write("fail.py", "import sys\nprint('loading', file=sys.stderr)\n"
                             "raise ValueError('lr must be positive')\n")
    project.write("exp.yaml", "jobs:\n  f:\n    run: python fail.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    assert "exited with code 1: ValueError: lr must be positive" in done.stderr
    [run] = project.runs()
    assert "ValueError: lr must be positive" in project.mayuri("show", run["id"]).stdout


def test_a_filter_that_matches_nothing_says_so(project: Project) -> None:
    done = project.mayuri("runs")
    assert "no runs yet" in done.stderr
    project.write("exp.yaml", "jobs:\n  a:\n    run: python -c pass\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    done = project.mayuri("runs", "--status", "failed")
    assert done.returncode == 0
    assert "no runs match these filters" in done.stderr and "no runs yet" not in done.stderr
