"""A store you may read but not write: every reading command works (one notice), writing ones exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import Project
from tests.store.unix_users import as_user, read_only_mount, unix_group_users

EXP = """
name: ro
jobs:
  train:
    run: python -c "import mayuri; mayuri.log(step=0, loss=0.5); mayuri.output('score', ${seed})"
    sweep: {seed: [1, 2]}
"""


def _store_with_runs(project: Project) -> list[str]:
    project.write("exp.yaml", EXP)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    return [r["id"] for r in project.runs()]


READS = [["runs", "--json"], ["show", "{a}", "--json"], ["show", "{a}", "--why"], ["logs", "{a}"],
         ["diff", "{a}", "{b}"], ["cache", "ls", "--json"], ["run", "exp.yaml", "--dry-run"], ["doctor"]]
WRITES = [["run", "exp.yaml", "--force"], ["gc", "--yes"], ["pin", "{a}"], ["cancel", "--all"]]
NOTEBOOK = "import mayuri, json; print(json.dumps(sorted(r.id for r in mayuri.runs())))"


def _check(run, ids: list[str]) -> None:
    a, b = ids
    for args in READS:
        done = run([x.format(a=a, b=b) for x in args])
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert done.stderr.count("read-only") <= 1 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(run(["runs", "--json"]).stdout)
    for args in WRITES:
        done = run([x.format(a=a, b=b) for x in args])
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "read-only" in done.stderr and "Traceback" not in done.stderr, done.stderr
    notebook = run(["-c", NOTEBOOK])
    assert notebook.returncode == 0, notebook.stderr
    assert json.loads(notebook.stdout.splitlines()[-1]) == sorted(ids)


def test_read_only_snapshot_mount(project: Project) -> None:
    ids = _store_with_runs(project)
    store = project.root / ".mayuri"
    before = sorted(os.listdir(store))
    with read_only_mount(store):
        def run(args: list[str]) -> subprocess.CompletedProcess[str]:
            if args[0] == "-c":
                return subprocess.run([sys.executable, *args], cwd=project.root, capture_output=True, text=True,
                                      timeout=120)
            return project.mayuri(*args)

        _check(run, ids)
    assert sorted(os.listdir(store)) == before


def test_teammate_without_write_access(project: Project) -> None:
    ids = _store_with_runs(project)
    with unix_group_users(1) as (_group, (reader,)):
        _check(lambda args: as_user(reader, args, cwd=project.root), ids)
