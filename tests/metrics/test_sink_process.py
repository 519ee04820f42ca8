"""The metrics writer process: a plain SQLite connection, no peewee, the store's errors.

It starts with every job that logs a metric: with peewee and the store's full
way in it cost about 70 ms of CPU, more than the job itself for many a short
one. It now opens the database with the standard library alone.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mayuri.store import Store
from mayuri.store.metric_queries import metric_summaries
from mayuri.store.plain_sqlite import StoreLocked, connect, write_transaction
from mayuri.tracking.writer import encode_frame

# Runs the sink as `python -m` does, then says which of the costly modules it had loaded.
SINK = ("import runpy, sys\n"
        "sys.argv = ['sink', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('mayuri.tracking.sink', run_name='__main__')\n"
        "finally:\n"
        "    print(sorted({'peewee', 'mayuri.store.db', 'mayuri.config'} & set(sys.modules)), file=sys.stderr)\n")


def test_the_sink_commits_what_it_reads_without_loading_peewee(store: Store,
                                                              make_run: Callable[[Store], str]) -> None:
    run = make_run(store)
    frames = encode_frame([("loss", 0, 2.0, 1.0), ("loss", 1, 1.0, 1.0)]) + encode_frame([("acc", 0, 0.5, 1.0)])
    done = subprocess.run([sys.executable, "-c", SINK, str(store.root), run], input=frames, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().strip() == "[]"
    summaries = metric_summaries(store, [run])[run]
    assert (summaries["loss"].last, summaries["loss"].count, summaries["acc"].last) == (1.0, 2, 0.5)


def test_the_sink_says_why_points_were_lost(store: Store, tmp_path: Path) -> None:
    frames = encode_frame([("loss", 0, 2.0, 1.0)])
    done = subprocess.run([sys.executable, "-m", "mayuri.tracking.sink", str(store.root), "no-such-run"],
                          input=frames, capture_output=True, timeout=60, check=False)
    said = done.stderr.decode()
    assert "1 metric points of run no-such-run lost" in said and "no run no-such-run in the store" in said, said
    # A store that is not there is not made: the job's stderr says so.
    done = subprocess.run([sys.executable, "-m", "mayuri.tracking.sink", str(tmp_path / "none"), "r"],
                          input=b"", capture_output=True, timeout=60, check=False)
    assert done.returncode == 1 and "metrics of run r not recorded" in done.stderr.decode()
    assert not (tmp_path / "none").exists()


def test_a_plain_write_waits_out_its_busy_timeout_then_says_the_store_is_locked(store: Store) -> None:
    holder = sqlite3.connect(store.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        conn = connect(store.db_path, busy_timeout=0.1)
        with pytest.raises(StoreLocked, match="the store is locked"), write_transaction(conn, store.db_path):
            conn.execute("INSERT INTO metric_key (name) VALUES ('x')")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The connection is usable again once the lock is gone, and nothing of the failed write was kept.
    with write_transaction(conn, store.db_path):
        conn.execute("INSERT INTO metric_key (name) VALUES ('y')")
    assert [r[0] for r in conn.execute("SELECT name FROM metric_key WHERE name IN ('x', 'y')")] == ["y"]
