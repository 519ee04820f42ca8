"""A lost or empty mayuri.db never costs the history: refused, rebuilt from run folders, never collected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Project

TRAIN = """
import os, mayuri
p = mayuri.params()
mayuri.log(step=0, loss=1.0 / p["lr"])
mayuri.log(step=1, loss=0.5 / p["lr"])
os.makedirs("model", exist_ok=True)
open("model/w.bin", "w").write("weights %s" % p["lr"])
mayuri.artifact("model")
mayuri.output("score", p["lr"] * 10)
"""

EXP = """
name: lost
jobs:
  train:
    run: python train.py
    sweep: {lr: [0.1, 0.2]}
  report:
    run: python -c "import mayuri; mayuri.output('best', 1)"
    depends_on: [train]
"""


def _history(project: Project) -> Project:
    project.write("train.py", TRAIN)
    project.write("exp.yaml", EXP)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    return project


def _records(project: Project) -> dict[str, dict]:
    keep = ("id", "experiment", "job", "status", "params", "fingerprint", "started", "user", "host")
    records = {}
    for run in project.runs():
        detail = project.show(run["id"])
        records[run["id"]] = {
            **{k: run[k] for k in keep},
            **{k: detail.get(k) for k in ("outputs", "artifacts", "attempts", "upstream", "downstream")},
        }
    return records


@pytest.fixture
def history(project: Project) -> Project:
    return _history(project)


def _lose(project: Project, how: str) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(project.db) + suffix).unlink(missing_ok=True)
    if how == "deleted":
        project.db.unlink()
    else:
        project.db.write_bytes(b"")


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_lost_database_is_refused_not_recreated(history: Project, how: str) -> None:
    folders = len(list((history.root / ".mayuri" / "runs").iterdir()))
    _lose(history, how)
    for command in (["runs"], ["gc", "--yes"], ["run", "exp.yaml"]):
        done = history.mayuri(*command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        message = " ".join(done.stderr.split())
        assert f"the database is missing (or empty) but the store holds {folders} run folders and" in message
        assert "mayuri doctor --rebuild" in message and "Traceback" not in message
    assert not history.db.exists() or history.db.stat().st_size == 0, "the database must not be re-created"
    assert len(list((history.root / ".mayuri" / "runs").iterdir())) == folders


def test_rebuild_restores_the_records(history: Project) -> None:
    before = _records(history)
    summaries = {rid: history.show(rid)["metrics"] for rid in before}
    _lose(history, "deleted")
    doctor = history.mayuri("doctor", "--rebuild")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"re-indexed {len(before)} run(s)" in doctor.stdout
    after = _records(history)
    assert after == before
    assert {rid: history.show(rid)["metrics"] for rid in before} == summaries
    # The rebuilt store is the cache again: nothing reruns.
    again = history.mayuri("run", "exp.yaml", "--dry-run")
    assert again.returncode == 0 and "0 will run" in again.stdout, again.stdout
    # And an artifact can be fetched from its blobs.
    train = next(rid for rid, r in after.items() if r["job"] == "train")
    fetch = f"import mayuri; print(open(mayuri.get_run({train!r}).artifact('model') / 'w.bin').read())"
    fetched = subprocess.run([sys.executable, "-c", fetch], cwd=history.root, capture_output=True, text=True)
    assert fetched.returncode == 0 and fetched.stdout.startswith("weights "), fetched.stderr
    folder = history.root / ".mayuri" / "runs" / train
    (folder / "run.json").unlink()
    # A folder without run.json still gives a run, marked for what is missing.
    _lose(history, "deleted")
    doctor = history.mayuri("doctor", "--rebuild", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert any("had no run.json" in f["message"] for f in json.loads(doctor.stdout))
    partial = history.show(train)
    assert partial["status"] == "orphaned" and partial["params"] == before[train]["params"]
    assert partial["outputs"] == before[train]["outputs"]


def test_rebuild_never_replaces_a_database_without_yes(history: Project) -> None:
    done = history.mayuri("doctor", "--rebuild")
    assert done.returncode == 2 and "--rebuild --yes" in done.stderr, done.stderr
    done = history.mayuri("doctor", "--rebuild", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(history.db.parent.glob("mayuri.db.before-rebuild-*"))


def test_gc_keeps_leftovers_of_a_database_younger_than_the_store(history: Project) -> None:
    runs = history.root / ".mayuri" / "runs"
    past = time.time() - 7200
    for folder in sorted(runs.iterdir())[2:]:
        shutil.rmtree(folder)  # too few folders without a row for the share rule: the age rule must act
    for folder in runs.iterdir():
        os.utime(folder, (past, past))
    _lose(history, "deleted")
    # `mayuri init` may make a database over a full store; gc must then distrust it.
    init = history.mayuri("init")
    assert init.returncode == 0 and "the store holds 2 run folders" in " ".join(init.stderr.split()), init.stderr
    done = history.mayuri("gc", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert plan["leftover_folders"] == [] and plan["blobs"] == []
    assert "younger than the oldest run folder" in plan["leftovers_withheld"]
    assert len(list(runs.iterdir())) == 2
    assert "leftovers kept" in history.mayuri("gc", "--dry-run").stdout


def test_gc_keeps_leftovers_when_many_folders_have_no_row(history: Project) -> None:
    runs = history.root / ".mayuri" / "runs"
    past = time.time() - 7200
    for n in range(4):
        stray = runs / f"{n:032x}"
        stray.mkdir()
        (stray / "params.json").write_text("{}")
        os.utime(stray, (past, past))
    done = history.mayuri("gc", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert plan["leftover_folders"] == []
    assert "4 of 8 run folders have no record" in plan["leftovers_withheld"]
    assert len(list(runs.iterdir())) == 8
