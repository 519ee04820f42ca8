"""Helpers for the scheduler's tests: the misbehaving fake job, store reads, background `mayuri`."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

FAKEJOB = Path(__file__).resolve().parent / "fakejob.py"


def fake(*args: str) -> str:
    """A `run:` command for the fake job."""
    return " ".join(["python", str(FAKEJOB), *args])


def query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the project's store."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def attempts(db: Path) -> list[dict[str, Any]]:
    rows = query(db, "SELECT run_id, number, status, cause, gpus, params, started_at, ended_at, error "
                     "FROM attempt ORDER BY started_at")
    keys = ("run_id", "number", "status", "cause", "gpus", "params", "started_at", "ended_at", "error")
    result = [dict(zip(keys, r, strict=True)) for r in rows]
    for row in result:
        row["gpus"] = json.loads(row["gpus"])
        row["params"] = json.loads(row["params"])
    return result


def assert_no_overlap(rows: list[dict[str, Any]]) -> None:
    """No two attempts held the same GPU at the same time."""
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for gpu in row["gpus"]:
            by_gpu.setdefault(gpu, []).append((row["started_at"], row["ended_at"]))
    for gpu, spans in by_gpu.items():
        spans.sort()
        for (s1, e1), (s2, e2) in itertools.pairwise(spans):
            assert e1 <= s2, f"two attempts on {gpu} overlap: {s1}-{e1} and {s2}-{e2}"


def store_is_sound(db: Path) -> None:
    """The checks every test ends with: integrity ok, no lease left, no run stuck running."""
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "SELECT COUNT(*) FROM gpu_lease") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM run WHERE status IN ('running', 'queued')") == [(0,)]


def start_mayuri(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`mayuri ARGS` in the background (its own session, so that the test can signal it alone)."""
    full = dict(os.environ)
    full.update(env or {})
    full["COLUMNS"] = "200"
    return subprocess.Popen([sys.executable, "-m", "mayuri", *args], cwd=root, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_terminal_signals)


def _terminal_signals() -> None:
    # A test's Ctrl-C must reach `mayuri` as a terminal's does. Ignored signals are inherited across
    # exec, and a suite run as a shell's background job (`pytest ... &`) ignores SIGINT and SIGQUIT:
    # Python then never installs its KeyboardInterrupt handler.
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def wait_for(predicate: Any, timeout: float = 30.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def running_pids(db: Path) -> list[int]:
    return [r[0] for r in query(db, "SELECT pid FROM attempt WHERE status = 'running'")]


def processes_with_run_ids(run_ids: list[str]) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MAYURI_RUN_ID") in run_ids and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found
