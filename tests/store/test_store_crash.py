"""RELIABILITY.md test 5 and a full disk: a writer that dies or cannot write never leaves half a transaction.

Each transaction writes a run, 50 file rows and 50 closure entries, and the
run's fingerprint is a checksum of those rows. Writers are forked from a fork
server that has only imported Mayuri (no connection crosses a fork), so that
fifty kills take seconds.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

from mayuri.store import open_store
from mayuri.store.queries import closures
from tests.store.store_workers import (
    ROWS_PER_TRANSACTION,
    checksum,
    crash_writer,
    full_disk_writer,
    integrity,
)

KILLS = 50


def test_sigkill_mid_transaction_leaves_whole_transactions_only(tmp_path: Path) -> None:
    root = tmp_path / "store"
    open_store(root).close()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.store.store_workers"])
    rng = random.Random(20261122)
    for seed in range(KILLS):
        ready = ctx.Event()
        writer = ctx.Process(target=crash_writer, args=(str(root), seed, ready))
        writer.start()
        if seed % 10 == 9:
            # Now and then kill it while it opens the store (WAL recovery, the first write).
            time.sleep(rng.uniform(0, 0.05))
        else:
            assert ready.wait(timeout=60), "writer never became ready"
            time.sleep(rng.uniform(0, 0.08))
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(timeout=30)
        assert writer.exitcode == -signal.SIGKILL

    assert integrity(root / "mayuri.db") == "ok"
    store = open_store(root)
    runs = store.db.execute_sql("SELECT id, status, fingerprint FROM run").fetchall()
    entries = closures(store, [run_id for run_id, _, _ in runs])
    files = store.db.execute_sql("SELECT count(*) FROM file").fetchone()[0]
    store.close()
    assert len(runs) >= KILLS // 2, "the writers hardly wrote anything: the test proves little"
    for run_id, status, fingerprint in runs:
        rows = entries.get(run_id, [])
        assert status == "succeeded" and len(rows) == ROWS_PER_TRANSACTION, run_id
        assert fingerprint == checksum(rows), run_id
        assert all(r.sha512 == hashlib.sha512(f"{run_id}{k}".encode()).hexdigest()
                   for k, r in enumerate(sorted(rows, key=lambda r: r.path)))
    # No file rows from a transaction whose run is missing.
    assert files == ROWS_PER_TRANSACTION * len(runs)
    assert integrity(root / "mayuri.db") == "ok"


def test_a_full_disk_rolls_back_the_write_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "store"
    open_store(root).close()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    writer = ctx.Process(target=full_disk_writer, args=(str(root), 2 << 20, results))
    writer.start()
    outcome, committed, message = results.get(timeout=120)
    writer.join(timeout=60)
    assert outcome == "refused", message
    # The failed commit's own error, not peewee's "cannot rollback - no transaction is active".
    assert "could not be written (disk I/O error)" in message and "rolled back" in message
    assert committed > 0
    assert integrity(root / "mayuri.db") == "ok"
    store = open_store(root)
    assert store.db.execute_sql("SELECT count(*) FROM experiment").fetchone()[0] == committed
    with store.write():  # with room again, writing works
        store.db.execute_sql("INSERT INTO experiment (name, created_at) VALUES ('after', 0)")
    store.close()
    assert integrity(root / "mayuri.db") == "ok"
