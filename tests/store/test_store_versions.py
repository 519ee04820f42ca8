"""Stores the code must not use as they are: newer, corrupt, someone else's; and old ones, upgraded.

Through the real CLI: exit code 2, one clear message, no traceback, and the
file left byte for byte as it was. An old store (schema version 1, with runs)
is upgraded in place by the next command and keeps its runs.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mayuri.store import open_store, schema_version
from tests.conftest import Project
from tests.store.store_workers import child_row_counts, integrity, make_old_store

EXPERIMENT = """
    name: versions
    params: {x: 1}
    jobs:
      work:
        run: python work.py ${x}
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clean_failure(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("store error:")]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def with_a_run(project: Project) -> None:
    project.write("work.py", "import sys\nprint('x', sys.argv[1])\n")
    project.write("exp.yaml", EXPERIMENT)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr


def test_a_store_newer_than_the_code_is_refused(project: Project) -> None:
    with_a_run(project)
    newer = schema_version() + 1
    connection = sqlite3.connect(project.db)
    connection.execute(f"PRAGMA user_version = {newer}")
    connection.close()
    before = digest(project.db)
    for args in (["runs"], ["run", "exp.yaml", "x=2"]):
        message = assert_clean_failure(project.mayuri(*args), f"schema version {newer}",
                                       f"newer than this Mayuri understands ({schema_version()})", "Upgrade Mayuri")
        assert str(project.db) in message
    assert digest(project.db) == before
    assert integrity(project.db) == "ok"


def test_a_corrupt_database_file_is_reported_and_left_alone(project: Project) -> None:
    with_a_run(project)
    backup = project.root / "backup.db"
    shutil.copyfile(project.db, backup)
    project.db.write_bytes(random.Random(7).randbytes(64 * 1024))
    before = digest(project.db)
    for args in (["runs"], ["run", "exp.yaml", "x=2"], ["show", "abc"]):
        assert_clean_failure(project.mayuri(*args), "corrupt or not a Mayuri store", "mayuri doctor")
    assert digest(project.db) == before
    assert not Path(str(project.db) + "-wal").exists()
    # Restoring the backup, as the message suggests, brings everything back.
    shutil.copyfile(backup, project.db)
    assert [r["params"] for r in project.runs()] == [{"x": 1}]
    assert integrity(project.db) == "ok"


def test_damaged_pages_give_a_clear_message_not_a_traceback(project: Project) -> None:
    with_a_run(project)
    backup = project.root / "backup.db"
    shutil.copyfile(project.db, backup)
    size = project.db.stat().st_size
    page = sqlite3.connect(project.db).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(project.db.read_bytes())
    # Keep the header and schema page; scramble every page after it.
    data[page:] = random.Random(11).randbytes(size - page)
    project.db.write_bytes(bytes(data))
    before = digest(project.db)
    assert_clean_failure(project.mayuri("runs"), "corrupt")
    assert digest(project.db) == before
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        integrity(project.db)  # the test damaged it for real
    shutil.copyfile(backup, project.db)
    assert [r["params"] for r in project.runs()] == [{"x": 1}]
    assert integrity(project.db) == "ok"


def test_someone_elses_sqlite_file_is_not_migrated(project: Project) -> None:
    project.db.unlink()
    connection = sqlite3.connect(project.db)
    connection.execute("CREATE TABLE notes (body TEXT)")
    connection.execute("INSERT INTO notes VALUES ('mine')")
    connection.commit()
    connection.close()
    before = digest(project.db)
    assert_clean_failure(project.mayuri("runs"), "not a Mayuri store")
    assert digest(project.db) == before
    assert integrity(project.db) == "ok"


def test_an_old_store_is_upgraded_by_the_next_command_and_keeps_its_runs(project: Project) -> None:
    store_root = project.root / ".mayuri"
    shutil.rmtree(store_root)
    old_ids = make_old_store(store_root, runs=2)
    before = child_row_counts(project.db)

    listed = project.runs()
    assert sorted(r["id"] for r in listed) == sorted(old_ids)
    assert {r["id"]: r["params"] for r in listed} == {old_ids[0]: {"lr": 0.1}, old_ids[1]: {"lr": 0.2}}
    shown = project.show(old_ids[1][:8])
    assert shown["id"] == old_ids[1]
    logs = project.mayuri("logs", old_ids[0][:8])
    assert logs.returncode == 0 and f"hello from {old_ids[0]}" in logs.stdout

    connection = sqlite3.connect(project.db)
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    connection.close()
    assert version == schema_version()
    assert child_row_counts(project.db) == before

    # The upgraded store takes new runs next to the old ones.
    with_a_run(project)
    runs = project.runs()
    assert len(runs) == 3 and set(old_ids) < {r["id"] for r in runs}
    store = open_store(store_root)
    hits = store.db.execute_sql("SELECT hits FROM run WHERE id = ?", (old_ids[0],)).fetchone()[0]
    store.close()
    assert hits == 0  # a column added by migration 0002, with its default
    assert integrity(project.db) == "ok"
