"""RELIABILITY.md test 3: another process holds the store's write lock.

Through the real CLI with `[store] busy_timeout = 1`: a write that cannot get
the lock in time ends the command with one line and exit code 2, never a
traceback; readers are not blocked in WAL mode; once the lock is released
everything works and nothing was lost or recorded twice. A lock shorter than
the busy timeout only makes writers wait.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import tomlkit

from tests.conftest import Project
from tests.store.store_workers import LockHolder, fake_mounts, integrity, mayuri_with_mounts

EXPERIMENT = """
    name: locky
    params: {x: 1}
    jobs:
      work:
        run: python work.py ${x}
"""

WORK = """
    import sys
    with open("launches.txt", "a") as marker:
        marker.write(" ".join(sys.argv[1:]) + "\\n")
"""


def set_store_option(project: Project, line: str) -> None:
    """Set one `[store]` key through tomlkit, keeping what `mayuri init` wrote around it."""
    config = project.root / "mayuri.toml"
    document = tomlkit.parse(config.read_text())
    key, _, value = line.partition("=")
    document["store"][key.strip()] = tomlkit.parse(f"v = {value.strip()}")["v"]
    config.write_text(tomlkit.dumps(document))


def launches(project: Project) -> list[str]:
    marker = project.root / "launches.txt"
    return marker.read_text().splitlines() if marker.exists() else []


def assert_one_line_lock_error(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "store error" in line]
    assert len(errors) == 1 and "locked" in errors[0], done.stderr
    assert "busy_timeout" in errors[0]


def test_a_held_lock_fails_writes_cleanly_and_loses_nothing(project: Project) -> None:
    project.write("work.py", WORK)
    project.write("exp.yaml", EXPERIMENT)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    set_store_option(project, "busy_timeout = 1")
    before = project.runs()

    holder = LockHolder(project.db)
    try:
        # WAL: readers do not wait for a writer.
        assert [r["id"] for r in project.runs()] == [r["id"] for r in before]
        began = time.monotonic()
        blocked = project.mayuri("run", "exp.yaml", "x=2")
        waited = time.monotonic() - began
        assert_one_line_lock_error(blocked)
        assert waited >= 1.0  # it waited out the busy timeout before giving up
        assert launches(project) == ["1"]  # the new job was never started
    finally:
        holder.release()

    again = project.mayuri("run", "exp.yaml", "x=2")
    assert again.returncode == 0, again.stderr
    runs = project.runs()
    assert sorted(r["params"]["x"] for r in runs) == [1, 2]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert launches(project) == ["1", "2"]
    assert project.mayuri("run", "exp.yaml", "x=2").returncode == 0  # cached now
    assert launches(project) == ["1", "2"]
    assert integrity(project.db) == "ok"


def test_with_a_rollback_journal_readers_fail_cleanly_too(project: Project, tmp_path: Path) -> None:
    # On a network filesystem (allowed on purpose) the store uses a rollback
    # journal, where an exclusive lock also keeps readers out.
    project.write("work.py", WORK)
    project.write("exp.yaml", EXPERIMENT)
    set_store_option(project, "busy_timeout = 1")
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("allow_network_fs = false", "allow_network_fs = true"))
    mounts = fake_mounts(tmp_path, project.root / ".mayuri", "nfs4")
    first = mayuri_with_mounts(project.root, mounts, "run", "exp.yaml")
    assert first.returncode == 0, first.stderr

    holder = LockHolder(project.db)
    try:
        listed = mayuri_with_mounts(project.root, mounts, "runs")
        assert_one_line_lock_error(listed)
    finally:
        holder.release()
    listed = mayuri_with_mounts(project.root, mounts, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["params"] for r in json.loads(listed.stdout)] == [{"x": 1}]
    assert integrity(project.db) == "ok"


SLOW_EXPERIMENT = """
    name: patient
    jobs:
      work:
        run: python slow.py ${i}
        params: {i: 0}
        sweep: {i: [0, 1, 2, 3]}
"""

SLOW = """
    import pathlib, sys, time
    pathlib.Path("started-" + sys.argv[1]).touch()
    time.sleep(1.5)
    with open("launches.txt", "a") as marker:
        marker.write(sys.argv[1] + "\\n")
"""


def test_a_lock_shorter_than_the_busy_timeout_only_delays_a_running_experiment(project: Project) -> None:
    project.write("slow.py", SLOW)
    project.write("exp.yaml", SLOW_EXPERIMENT)
    set_store_option(project, "busy_timeout = 30")
    env = dict(os.environ, COLUMNS="200")
    run = subprocess.Popen(
        [sys.executable, "-m", "mayuri", "run", "exp.yaml"], cwd=project.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list(project.root.glob("started-*")):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    # Hold the write lock while jobs run and finish: their records must wait, not fail.
    holder = LockHolder(project.db)
    time.sleep(3)
    holder.release()
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    runs = project.runs()
    assert sorted(r["params"]["i"] for r in runs) == [0, 1, 2, 3]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert sorted(launches(project)) == ["0", "1", "2", "3"]
    assert integrity(project.db) == "ok"
