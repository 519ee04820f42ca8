"""What a cached `mayuri run` loads and leaves on: only what answering from the cache needs.

A cached run is the command people run most, so its start-up is part of the
product (issue 2's target). These tests run the real entry point and look at
the process as it exits: the modules it loaded and whether the cyclic garbage
collector was on (off for a short command; on again once jobs run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project

# The real entry point, reporting at exit what the process had loaded and whether it collected cycles.
_REPORTING_CLI = (
    "import atexit, gc, json, sys\n"
    "report = sys.argv.pop(1)\n"
    "def write():\n"
    "    with open(report, 'w') as out:\n"
    "        json.dump({'modules': sorted(sys.modules), 'collecting': gc.isenabled()}, out)\n"
    "atexit.register(write)\n"
    "from mayuri.cli import main\n"
    "main()\n"
)

# Loaded only to launch jobs, to draw tables, or to parse YAML: a cached run away from a terminal needs none.
NOT_FOR_A_CACHED_RUN = ("rich", "mayuri.scheduler.loop", "mayuri.scheduler.attempts", "ruamel", "textual",
                        "mayuri.render")


def reporting_run(project: Project, tmp_path: Path, *args: str,
                  env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "report.json"
    full_env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    full_env.update(env or {})
    done = subprocess.run([sys.executable, "-c", _REPORTING_CLI, str(report), *args], cwd=project.root,
                          env=full_env, capture_output=True, text=True, timeout=120)
    return done, json.loads(report.read_text())


@pytest.fixture
def cached(project: Project) -> Project:
    project.write("job.py", "import mayuri\nmayuri.output('n', len(open('data.txt').read()))\n")
    project.write("data.txt", "hello\n")
    project.write("exp.yaml", "name: cost\njobs:\n  count:\n    run: python job.py\n")
    first = project.mayuri("run", "exp.yaml")
    assert first.returncode == 0, first.stderr
    return project


def loaded(report: dict[str, Any], prefix: str) -> list[str]:
    return [m for m in report["modules"] if m == prefix or m.startswith(prefix + ".")]


def test_a_cached_run_loads_no_scheduler_no_rich_and_does_not_collect(cached: Project, tmp_path: Path) -> None:
    done, report = reporting_run(cached, tmp_path, "run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert "cached (run" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("1 job: 1 cached in ")
    assert "\x1b[" not in done.stderr  # plain lines, as Rich would have written them here
    for prefix in NOT_FOR_A_CACHED_RUN:
        assert loaded(report, prefix) == [], prefix
    assert report["collecting"] is False


def test_a_run_that_launches_collects_again(cached: Project, tmp_path: Path) -> None:
    (cached.root / "data.txt").write_text("hello again\n")
    done, report = reporting_run(cached, tmp_path, "run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert "data.txt changed" in done.stderr
    assert loaded(report, "mayuri.scheduler.loop") != []
    assert report["collecting"] is True


def test_a_job_downstream_of_a_changed_one_is_decided_after_it(project: Project, tmp_path: Path) -> None:
    project.write("prep.py", "import mayuri\nmayuri.output('v', open('data.txt').read())\n")
    project.write("use.py", "import mayuri, sys\nmayuri.output('v', sys.argv[1])\n")
    project.write("data.txt", "one\n")
    project.write("exp.yaml", """\
        name: chain
        jobs:
          prep:
            run: python prep.py
          use:
            run: python use.py ${v}
            depends_on:
              prep: {v: v}
        """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    (project.root / "data.txt").write_text("two\n")
    done, _ = reporting_run(project, tmp_path, "run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("prep", "use"))]
    assert [line.split()[:2] for line in lines] == [["prep", "running"], ["prep", "succeeded"],
                                                   ["use", "running"], ["use", "succeeded"]]
    assert [project.show(r["id"])["outputs"]["v"] for r in project.runs("--job", "use")] == ["two\n", "one\n"]


def test_forced_colours_go_through_rich(cached: Project, tmp_path: Path) -> None:
    done, report = reporting_run(cached, tmp_path, "run", "exp.yaml", env={"FORCE_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert "cached" in done.stderr and "\x1b[" in done.stderr
    assert loaded(report, "rich") != []


@pytest.mark.parametrize("command", [("runs",), ("cache", "ls"), ("doctor",), ("run", "exp.yaml")])
def test_commands_close_the_store_before_exit(cached: Project, command: tuple[str, ...]) -> None:
    # Objects are frozen before exit, so nothing is left for the interpreter to close: each command must.
    done = cached.mayuri(*command)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in (cached.root / ".mayuri").iterdir() if p.name.startswith("mayuri.db-"))
    assert left == []  # the last connection to close removes SQLite's -wal and -shm files
