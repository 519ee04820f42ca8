"""Code that the store tests run in other processes (spawned or forked from a fork server).

Each worker opens the store itself, after it started: no connection ever
crosses a fork (RELIABILITY.md decision 3). Workers report through a queue and
never raise out of the process, so that a test can count what went wrong.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing.synchronize
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import peewee
from playhouse.migrations import Runner

from mayuri.errors import StoreError
from mayuri.store import open_store
from mayuri.store.db import HISTORY_TABLE, _migrations_dir
from mayuri.store.records import ClosureRow, create_run, ensure_experiment, finish_run

ROWS_PER_TRANSACTION = 50


def integrity(db_path: Path) -> str:
    """PRAGMA integrity_check of a database file, read with a plain sqlite3 connection."""
    connection = sqlite3.connect(db_path, timeout=30)
    try:
        return "\n".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
    finally:
        connection.close()


def _new_run(store: Any, experiment_id: int, run_id: str, worker: int) -> None:
    create_run(
        store, run_id=run_id, experiment_id=experiment_id, job="storm", kind="job",
        config_hash="storm", params={"worker": worker}, config={}, upstream={}, reason="new",
        run_dir=store.runs / run_id,
    )


def storm_writer(root: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Test 1: `count` transactions that each read the run count, then insert a run keyed by it."""
    try:
        store = open_store(Path(root))
        experiment_id = ensure_experiment(store, "storm")
        barrier.wait()
        began = time.monotonic()
        for _ in range(count):
            with store.write():
                # A lost update (two writers reading the same count) would
                # collide on the primary key; a deferred transaction would
                # fail with "locked" when it upgrades.
                seen = store.db.execute_sql("SELECT count(*) FROM run").fetchone()[0]
                _new_run(store, experiment_id, f"{seen:06d}", worker)
        store.close()
        results.put((worker, "ok", time.monotonic() - began))
    except BaseException:  # noqa: BLE001 - the test counts every failure
        results.put((worker, "error", traceback.format_exc()))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def first_opener(root: str, worker: int, barrier: Any, results: Any) -> None:
    """Test 4: open the store at the same moment as the others; report whether this one migrated."""
    handler = _Collect()
    logger = logging.getLogger("mayuri.store.db")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        barrier.wait()
        store = open_store(Path(root), busy_timeout=30)
        version = store.db.execute_sql("PRAGMA user_version").fetchone()[0]
        runs = store.db.execute_sql("SELECT count(*) FROM run").fetchone()[0]
        store.close()
        upgraded = [m for m in handler.messages if m.startswith("upgraded the store")]
        results.put((worker, "ok", {"version": version, "runs": runs, "upgraded": upgraded}))
    except BaseException:  # noqa: BLE001
        results.put((worker, "error", traceback.format_exc()))


def checksum(rows: list[ClosureRow]) -> str:
    """What a crash-test transaction stores as its run's fingerprint: a digest of its closure rows."""
    text = "\n".join(f"{r.path} {r.sha512}" for r in sorted(rows, key=lambda r: r.path))
    return hashlib.sha256(text.encode()).hexdigest()


def crash_writer(root: str, seed: int, ready: multiprocessing.synchronize.Event) -> None:
    """Test 5: write multi-row transactions until killed (run + 50 files + 50 closure entries each)."""
    store = open_store(Path(root))
    experiment_id = ensure_experiment(store, "crash")
    ready.set()
    number = 0
    while True:
        run_id = f"{seed:04d}-{number:06d}"
        rows = [
            ClosureRow("code", f"{run_id}/f{k:02d}.py", "file", hashlib.sha512(f"{run_id}{k}".encode()).hexdigest(), k)
            for k in range(ROWS_PER_TRANSACTION)
        ]
        with store.write():
            _new_run(store, experiment_id, run_id, seed)
            finish_run(store, run_id, status="succeeded", exit_code=0, fingerprint=checksum(rows), closure=rows)
        number += 1


def make_old_store(root: Path, *, runs: int = 2) -> list[str]:
    """A store as a Mayuri at schema version 1 left it (only migration 0001), with runs and their rows.

    Returns the ids of the runs it holds.
    """
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("blobs", "runs"):
        (root / folder).mkdir(exist_ok=True)
    db = peewee.SqliteDatabase(str(root / "mayuri.db"), pragmas={"journal_mode": "wal"})
    db.connect()
    Runner(db, directory=str(_migrations_dir()), table_name=HISTORY_TABLE).up(target="0001_initial")
    db.execute_sql("PRAGMA user_version = 1")
    ids = [f"{n:02d}" + "ab" * 15 for n in range(runs)]
    with db.atomic("IMMEDIATE"):
        db.execute_sql("INSERT INTO experiment (id, name, created_at) VALUES (1, 'old', 1.0)")
        for n, run_id in enumerate(ids):
            run_dir = root / "runs" / run_id
            run_dir.mkdir()
            (run_dir / "stdout.log").write_text(f"hello from {run_id}\n")
            db.execute_sql(
                "INSERT INTO run (id, experiment_id, job, status, fingerprint, config_hash, params, "
                "created_at, started_at, ended_at, user, host, run_dir) "
                "VALUES (?, 1, 'train', 'succeeded', ?, 'cfg', ?, ?, ?, ?, 'ada', 'box', ?)",
                (run_id, f"fp{n}", f'{{"lr": 0.{n + 1}}}', 10.0 + n, 10.0 + n, 11.0 + n, str(run_dir)),
            )
            db.execute_sql(
                "INSERT INTO attempt (run_id, number, status, exit_code) VALUES (?, 1, 'succeeded', 0)", (run_id,)
            )
            db.execute_sql(
                "INSERT INTO file (path, kind, size, sha512) VALUES (?, 'file', 3, ?)",
                (f"train{n}.py", "0" * 128),
            )
            db.execute_sql(
                "INSERT INTO closure_entry (run_id, file_id, role) SELECT ?, id, 'code' FROM file WHERE path = ?",
                (run_id, f"train{n}.py"),
            )
            db.execute_sql("INSERT INTO output (run_id, name, value) VALUES (?, 'acc', '0.9')", (run_id,))
        if len(ids) > 1:
            db.execute_sql(
                "INSERT INTO lineage (parent_id, child_id, name) VALUES (?, ?, 'data')", (ids[0], ids[1])
            )
    db.close()
    return ids


def child_row_counts(db_path: Path) -> dict[str, int]:
    """How many rows the tables that hang off `run` hold (to prove an upgrade kept them)."""
    connection = sqlite3.connect(db_path, timeout=30)
    try:
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("run", "attempt", "closure_entry", "output", "lineage", "file")
        }
    finally:
        connection.close()


# Runs the real CLI with the mount table read from argv[1] instead of /proc/self/mounts.
_CLI_WITH_MOUNTS = (
    "import sys\n"
    "import mayuri.store.fsinfo as fsinfo\n"
    "fsinfo.MOUNTS_FILE = sys.argv.pop(1)\n"
    "from mayuri.cli import main\n"
    "main()\n"
)


def mayuri_with_mounts(root: Path, mounts: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mayuri ARGS` in project `root`, seeing the fake mount table `mounts`."""
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-c", _CLI_WITH_MOUNTS, str(mounts), *args], cwd=root, env=env, check=False,
        capture_output=True, text=True, timeout=timeout,
    )


def fake_mounts(folder: Path, path: Path, fstype: str) -> Path:
    """A mount table in which `path` is a mount of type `fstype` (on top of an ext4 root)."""
    table = folder / f"mounts-{fstype.replace('.', '_')}"
    point = os.path.realpath(path).replace(" ", "\\040")
    table.write_text(f"/dev/vda / ext4 rw,relatime 0 0\nserver:/export {point} {fstype} rw 0 0\n")
    return table


class LockHolder:
    """Another process that holds `BEGIN EXCLUSIVE` on a database until released."""

    SCRIPT = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "c.execute(\"INSERT INTO experiment (name, created_at) VALUES ('lock holder', 0)\")\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.execute('ROLLBACK')\n"
        "print('released', flush=True)\n"
    )

    def __init__(self, db_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(db_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"
        assert self.process.wait(timeout=30) == 0


def full_disk_writer(root: str, limit: int, results: Any) -> None:
    """Writes 100 kB rows under a file size limit until the store refuses; reports how it refused."""
    # Past RLIMIT_FSIZE a write fails with EFBIG, as on a full disk, once SIGXFSZ no longer kills.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    store = open_store(Path(root))
    committed = 0
    try:
        while True:
            with store.write():
                store.db.execute_sql(
                    "INSERT INTO experiment (name, created_at) VALUES (?, ?)", (f"{committed:06d}" + "x" * 100_000, 0)
                )
            committed += 1
    except StoreError as exc:
        results.put(("refused", committed, str(exc)))
    except BaseException:  # noqa: BLE001
        results.put(("error", committed, traceback.format_exc()))


def first_start_rounds(base: str, worker: int, rounds: int, barrier: Any, results: Any) -> None:
    """Test 4, many times over: in each round all workers open a new store at the same moment."""
    failures = []
    for number in range(rounds):
        barrier.wait()
        try:
            open_store(Path(base) / f"store{number}", busy_timeout=30).close()
        except Exception:  # noqa: BLE001 - counted and reported by the test
            failures.append(traceback.format_exc())
    results.put((worker, "ok" if not failures else "error", failures[:1]))


def hit_appender(root: str, run_ids: list[str], count: int, barrier: Any, results: Any) -> None:
    """Appends `count` hits, cycling through `run_ids`, each at its own time; reports the latest time."""
    from mayuri.store.hit_log import append_hits

    try:
        barrier.wait()
        latest = 0.0
        for index in range(count):
            latest = time.time()
            append_hits(Path(root), [run_ids[index % len(run_ids)]], latest)
        results.put((os.getpid(), "ok", latest))
    except BaseException:
        results.put((os.getpid(), "error", traceback.format_exc()))


def hit_folder(root: str, barrier: Any, stop: Any, results: Any) -> None:
    """Folds the hit log over and over until `stop` is set; reports how many hits it moved."""
    from mayuri.store.hit_log import fold_hits

    try:
        store = open_store(Path(root))
        barrier.wait()
        moved = 0
        while not stop.is_set():
            with store.write():
                moved += fold_hits(store)
        store.close()
        results.put((os.getpid(), "ok", moved))
    except BaseException:
        results.put((os.getpid(), "error", traceback.format_exc()))
