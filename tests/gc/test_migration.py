"""Migration 0005 on a store made by an older Mayuri: rows survive, tombstone columns and the trigger work."""

from __future__ import annotations

from pathlib import Path

from mayuri.store import open_store
from mayuri.store.blobs import write_blobs
from tests.store.store_workers import make_old_store


def test_an_old_store_gains_tombstones_without_losing_rows(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ids = make_old_store(root, runs=3)
    store = open_store(root)
    try:
        columns = {row[1] for row in store.db.execute_sql("PRAGMA table_info(run)")}
        assert {"collected_at", "collected_status", "pinned", "last_used_at"} <= columns
        assert store.db.execute_sql("SELECT count(*) FROM attempt").fetchone()[0] == len(ids)
        assert store.db.execute_sql("SELECT count(*) FROM closure_entry").fetchone()[0] > 0
        source = tmp_path / "x.py"
        source.write_text("x = 1\n")
        [(sha, _)] = write_blobs(store, [(source, None)])
        store.db.execute_sql("UPDATE blob SET created_at = 5 WHERE sha512 = ?", (sha,))
        write_blobs(store, [(source, sha)])
        created, touched = store.db.execute_sql(
            "SELECT created_at, touched_at FROM blob WHERE sha512 = ?", (sha,)
        ).fetchone()
        assert created == 5 and touched > 5, "registering an existing blob again must refresh it"
    finally:
        store.close()
