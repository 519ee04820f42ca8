"""`mayuri doctor` on a healthy store, a large -wal, and database files the group cannot write."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from mayuri import doctor as doctor_module
from mayuri.doctor import doctor
from mayuri.store import open_store


def test_a_healthy_store_is_all_ok(project) -> None:
    done = project.mayuri("doctor", "--json")
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)
    assert {f["check"] for f in findings} >= {"integrity", "schedulers", "orphaned runs", "leases", "wal"}
    assert {f["level"] for f in findings} == {"ok"}


def test_a_large_wal_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "store")
    try:
        store.db.execute_sql("CREATE TABLE filler (x BLOB)")
        reader = store.db.connection()
        # A second connection holding a read transaction keeps the WAL from being reset.
        other = sqlite3.connect(store.db_path)
        other.execute("BEGIN")
        other.execute("SELECT COUNT(*) FROM run").fetchone()
        with store.write():
            reader.executemany("INSERT INTO filler VALUES (?)", [(os.urandom(4096),) for _ in range(300)])
        monkeypatch.setattr(doctor_module, "WAL_WARN_BYTES", 64 * 1024)
        levels = {f.check: f.level for f in doctor(store).findings}
        assert levels["wal"] == "warning"
        other.rollback()
        other.close()
    finally:
        store.close()


def test_group_permissions_are_repaired_in_a_shared_store(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o2770)
    store = open_store(root)
    try:
        os.chmod(store.db_path, 0o600)
        report = doctor(store)
        assert any(f.check == "permissions" and f.level == "repaired" for f in report.findings)
        assert stat.S_IMODE(store.db_path.stat().st_mode) & 0o060 == 0o060
        assert report.ok
    finally:
        store.close()
