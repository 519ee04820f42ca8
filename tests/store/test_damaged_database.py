"""`mayuri doctor` on a damaged database: read-only checks, a recovered copy, a deleted -wal detected."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import Project

EXP = """
name: dmg
jobs:
  train:
    run: python -c "import mayuri; mayuri.output('score', ${seed})"
    sweep: {seed: [1, 2, 3, 4, 5, 6]}
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage(db: Path) -> None:
    """Scribble over the pages of the run table's index, keeping the file's header readable."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'run_created'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as handle:
        handle.seek((page - 1) * size + 8)
        handle.write(b"\xff" * 200)


def test_doctor_examines_a_corrupt_database_without_changing_it(project: Project) -> None:
    project.write("exp.yaml", EXP)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    _damage(project.db)
    before = _digest(project.db)
    done = project.mayuri("doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PRAGMA integrity_check" in done.stdout and "PRAGMA quick_check" in done.stdout
    assert "mayuri.db.recovered" in done.stdout and "Traceback" not in done.stderr
    assert _digest(project.db) == before, "doctor must not change the damaged database without --yes"
    with sqlite3.connect(project.db.with_name("mayuri.db.recovered")) as copy:
        assert copy.execute("SELECT count(*) FROM run").fetchone()[0] == 6
    fixed = project.mayuri("doctor", "--yes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert list(project.db.parent.glob("mayuri.db.corrupt-*"))
    assert len(project.runs()) == 6
    assert project.mayuri("doctor").returncode == 0


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")
for n in range(50):
    conn.execute("INSERT INTO experiment (name, created_at) VALUES (?, 0)", (f"e{n}",))
print("ready", flush=True)
time.sleep(600)
"""


def test_doctor_detects_a_deleted_wal(project: Project) -> None:
    wal = Path(str(project.db) + "-wal")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(project.db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert wal.stat().st_size > 0
        wal.unlink()
        done = project.mayuri("doctor")
        assert done.returncode == 1, done.stdout + done.stderr
        text = " ".join(done.stdout.split())
        assert f"mayuri.db-wal was deleted while pid {holder.pid} still use it" in text
        assert f"/proc/{holder.pid}/fd/" in text
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # The writer is gone with the only copy of its pages: the index still says they were committed.
    done = project.mayuri("doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "missing or shorter than its index says" in " ".join(done.stdout.split())
