"""The gc and cache commands as users meet them: the plan first, confirmation, exit codes, the gc lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from mayuri.gc.lease import LeaseLost, gc_lease
from mayuri.process_identity import boot_id
from mayuri.units import format_size
from tests.gc.gc_helpers import Filler, disk_usage


def test_dry_run_shows_the_plan_deletes_nothing_and_exits_1_when_there_is_work(
    project: Any, filler: Filler
) -> None:
    old = filler.run(age_days=40, size=2 << 20)
    done = project.mayuri("gc", "--older-than", "30d", "--dry-run")
    assert done.returncode == 1
    assert "run folders" in done.stdout and "2.0 MiB" in done.stdout and old[:8] in done.stdout
    assert (filler.store.runs / old).exists() and filler.status(old) == "succeeded"
    done = project.mayuri("gc", "--older-than", "90d", "--dry-run")
    assert done.returncode == 0 and "nothing to free" in done.stdout


def test_without_yes_and_without_a_terminal_nothing_is_deleted(
    project: Any, filler: Filler
) -> None:
    old = filler.run(age_days=40)
    done = project.mayuri("gc", "--older-than", "30d")
    assert done.returncode == 2 and "--yes" in done.stderr and "Traceback" not in done.stderr
    assert "run folders" in done.stdout, "the plan is shown before refusing"
    assert (filler.store.runs / old).exists()


@pytest.mark.parametrize("answer, deleted", [("y", True), ("n", False)])
def test_confirmation_at_a_terminal(
    project: Any, filler: Filler, answer: str, deleted: bool
) -> None:
    old = filler.run(age_days=40)
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mayuri", "gc", "--older-than", "30d"],
        cwd=project.root,
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(secondary)
    os.write(primary, f"{answer}\n".encode())
    out, err = process.communicate(timeout=120)
    os.close(primary)
    assert process.returncode == 0, err
    assert "Delete all of this?" in err
    assert (filler.store.runs / old).exists() is not deleted
    assert ("freed" in out) is deleted


def test_a_second_gc_cannot_sweep_while_one_holds_the_lease(project: Any, filler: Filler) -> None:
    old = filler.run(age_days=40)
    with gc_lease(filler.store):
        done = project.mayuri("gc", "--older-than", "30d", "--yes")
        assert done.returncode == 2 and "another gc is sweeping" in done.stderr
        assert (filler.store.runs / old).exists()
        # Planning needs no lease.
        assert project.mayuri("gc", "--older-than", "30d", "--dry-run").returncode == 1
    assert project.mayuri("gc", "--older-than", "30d", "--yes").returncode == 0
    assert not (filler.store.runs / old).exists()
    assert filler.store.db.execute_sql("SELECT count(*) FROM gc_lease").fetchone()[0] == 0


def _plant_lease(filler: Filler, host: str, pid: int, heartbeat: float) -> None:
    filler.store.db.execute_sql(
        "INSERT OR REPLACE INTO gc_lease (id, token, host, boot_id, pid, pid_create_time, user, acquired_at, "
        "heartbeat_at) VALUES (1, 'theirs', ?, ?, ?, 0, 'them', ?, ?)",
        (host, boot_id(), pid, heartbeat, heartbeat),
    )


def test_a_dead_holders_lease_is_taken_over(project: Any, filler: Filler) -> None:
    import socket

    filler.run(age_days=40)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _plant_lease(filler, socket.gethostname(), dead.pid, time.time())
    assert project.mayuri("gc", "--older-than", "30d", "--yes").returncode == 0
    # Another host's holder is judged by its heartbeat.
    filler.run(age_days=40)
    _plant_lease(filler, "elsewhere", 1, time.time())
    assert project.mayuri("gc", "--older-than", "30d", "--yes").returncode == 2
    _plant_lease(filler, "elsewhere", 1, time.time() - 3600)
    assert project.mayuri("gc", "--older-than", "30d", "--yes").returncode == 0


def test_a_sweep_stops_when_its_lease_was_reclaimed(filler: Filler) -> None:
    with pytest.raises(LeaseLost), gc_lease(filler.store) as lease:
        lease.check()
        filler.store.db.execute_sql("UPDATE gc_lease SET token = 'someone-else'")
        lease.check()


def test_cache_ls_and_rm(project: Any, filler: Filler) -> None:
    from mayuri.store.records import record_hits

    first = filler.run("train", age_days=3, size=1000)
    second = filler.run("train", age_days=2, size=3000)
    prep = filler.run("prep", age_days=1, size=500)
    filler.run("train", status="failed", age_days=1)
    record_hits(filler.store, [first, first, second])
    done = project.mayuri("cache", "ls", "--json")
    assert done.returncode == 0
    entries = {e["job"]: e for e in json.loads(done.stdout)}
    assert entries["train"]["entries"] == 2 and entries["train"]["hits"] == 3
    space = disk_usage(filler.store.runs / first) + disk_usage(filler.store.runs / second)
    space += (
        os.lstat(filler.store.runs / first).st_blocks * 512
        + os.lstat(filler.store.runs / second).st_blocks * 512
    )
    assert entries["train"]["bytes"] == space and entries["prep"]["entries"] == 1
    table = project.mayuri("cache", "ls")
    assert "train" in table.stdout and format_size(space) in table.stdout
    done = project.mayuri("cache", "rm", "train", "--dry-run")
    assert done.returncode == 1 and (filler.store.runs / first).exists()
    done = project.mayuri("cache", "rm", "train", "--yes", "--json")
    assert done.returncode == 0
    assert {r["id"] for r in json.loads(done.stdout)["plan"]["runs"]} == {first, second}
    assert filler.status(first) == "collected" and filler.status(prep) == "succeeded"
    done = project.mayuri("cache", "rm", prep[:10], "--yes")
    assert done.returncode == 0 and filler.status(prep) == "collected"
    done = project.mayuri("cache", "rm", "nosuchjob")
    assert done.returncode == 2 and "neither a job nor a run" in done.stderr


@pytest.mark.parametrize(
    "command", [["gc"], ["pin"], ["unpin"], ["cache"], ["cache", "ls"], ["cache", "rm"]]
)
def test_every_command_has_help_with_an_example(project: Any, command: list[str]) -> None:
    done = project.mayuri(*command, "--help")
    assert done.returncode == 0 and "Example:" in done.stdout


def test_gc_sweeps_while_a_reader_holds_a_snapshot(project: Any, filler: Filler) -> None:
    """The dashboard reads in long transactions; gc (WAL, short write transactions) must not wait on it."""
    import sqlite3

    old = filler.run(age_days=40)
    reader = sqlite3.connect(filler.store.db_path, timeout=1)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT status FROM run WHERE id = ?", (old,)).fetchone() == (
            "succeeded",
        )
        started = time.monotonic()
        done = project.mayuri("gc", "--older-than", "30d", "--yes")
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 30
        # The reader still sees its snapshot; a new read sees the tombstone.
        assert reader.execute("SELECT status FROM run WHERE id = ?", (old,)).fetchone() == (
            "succeeded",
        )
        reader.execute("COMMIT")
        assert reader.execute("SELECT status FROM run WHERE id = ?", (old,)).fetchone() == (
            "collected",
        )
    finally:
        reader.close()


def test_gc_removes_parsed_files_of_experiments_that_are_gone(project: Any) -> None:
    for name in ("kept", "gone"):
        project.write(f"{name}.yaml", f"name: {name}\njobs:\n  hello:\n    run: python -c \"print('hi')\"\n")
        assert project.mayuri("run", f"{name}.yaml").returncode == 0
    parsed = project.root / ".mayuri" / "parsed"
    (parsed / "leftover.123.tmp").write_text("{")
    (project.root / "gone.yaml").unlink()
    old = time.time() - 7200
    for entry in parsed.iterdir():
        os.utime(entry, (old, old))
    assert len(list(parsed.iterdir())) == 3

    done = project.mayuri("gc", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["plan"]["parsed_files"]) == 2
    assert {c["name"]: c["items"] for c in report["result"]["categories"]}["parsed experiment files"] == 2
    (left,) = parsed.iterdir()
    assert json.loads(left.read_text())["given"] == "kept.yaml"
    # The kept experiment still reuses its entry, and its run.
    again = project.mayuri("run", "kept.yaml")
    assert again.returncode == 0 and "cached (run" in again.stderr


def test_gc_keeps_parsed_files_written_within_the_grace_period(project: Any) -> None:
    project.write("gone.yaml", "name: gone\njobs:\n  hello:\n    run: python -c \"print('hi')\"\n")
    assert project.mayuri("run", "gone.yaml").returncode == 0
    (project.root / "gone.yaml").unlink()
    done = project.mayuri("gc", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plan"]["parsed_files"] == []
    assert len(list((project.root / ".mayuri" / "parsed").iterdir())) == 1


def test_gc_never_deletes_through_a_linked_parsed_folder(project: Any, tmp_path: Any) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.tmp").write_text("keep me")
    old = time.time() - 7200
    os.utime(elsewhere / "precious.tmp", (old, old))
    assert project.mayuri("init").returncode == 0
    (project.root / ".mayuri" / "parsed").symlink_to(elsewhere)
    done = project.mayuri("gc", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plan"]["parsed_files"] == []
    assert (elsewhere / "precious.tmp").read_text() == "keep me"
