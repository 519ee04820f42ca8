"""Looking at mayuri.db as a file, without opening the store: WAL health, integrity, recovery.

`mayuri doctor` uses these before it opens the store the usual way, because
that open writes (journal mode, migrations, a new -wal) and would hide or
spoil what is wrong. Everything here reads the database read-only; the one
file it writes is a recovered copy beside the original. Nothing prints.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import peewee

from mayuri.store.db import read_only_uri

# The WAL index header at the start of -shm (sqlite3 wal.c): isInit at 12, page size at 14, mxFrame at 16.
_SHM_HEADER = struct.Struct("=12xBxHI")
_WAL_HEADER = 32
_FRAME_HEADER = 24


@dataclass(frozen=True)
class WalTrouble:
    """The -wal file is gone (or cut short) while the index says it holds committed pages."""

    frames: int
    holders: list[tuple[int, int]]  # (pid, fd) of processes that still have the deleted file open


def _deleted_wal_holders(wal: Path) -> list[tuple[int, int]]:
    wanted = f"{os.path.realpath(wal)} (deleted)"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                    found.append((int(pid), int(fd)))
        except OSError:
            continue
    return found


def wal_trouble(db_path: Path) -> WalTrouble | None:
    """Whether committed pages of the -wal were lost: it was deleted or truncated under the store."""
    wal = Path(str(db_path) + "-wal")
    holders = _deleted_wal_holders(wal)
    frames = 0
    try:
        with open(str(db_path) + "-shm", "rb") as handle:
            header = handle.read(_SHM_HEADER.size)
        if len(header) == _SHM_HEADER.size:
            is_init, page, frames = _SHM_HEADER.unpack(header)
            page = 65536 if page == 1 else page
            if not is_init or not page:
                frames = 0
    except OSError:
        pass
    if frames:
        needed = _WAL_HEADER + frames * (_FRAME_HEADER + page)
        try:
            whole = wal.stat().st_size >= needed
        except FileNotFoundError:
            whole = False
        if whole:
            frames = 0
    return WalTrouble(frames, holders) if frames or holders else None


def _read_only(db_path: Path) -> sqlite3.Connection:
    """A read-only connection; immutable when SQLite cannot make the -shm it needs (a read-only folder)."""
    last: sqlite3.Error | None = None
    for mode in ("?mode=ro", "?immutable=1"):
        connection = sqlite3.connect(read_only_uri(db_path) + mode, uri=True, timeout=5.0)
        try:
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return connection
        except sqlite3.Error as exc:
            connection.close()
            last = exc
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
    assert last is not None
    raise last


def integrity(db_path: Path) -> tuple[list[str], list[str]]:
    """What `PRAGMA quick_check` and `PRAGMA integrity_check` say (["ok"] each when healthy), read-only."""
    results = []
    for pragma in ("quick_check", "integrity_check"):
        try:
            connection = _read_only(db_path)
            try:
                results.append([str(r[0]) for r in connection.execute(f"PRAGMA {pragma}(20)").fetchall()])
            finally:
                connection.close()
        except sqlite3.Error as exc:
            results.append([str(exc)])
    return results[0], results[1]


def _salvage(damaged: Path, target: Path) -> int:
    """Copy row by row every table SQLite can still read; returns the rows copied."""
    source = _read_only(damaged)
    # A new file of its own, written in one IMMEDIATE transaction like every write.
    out = peewee.SqliteDatabase(str(target))
    copied = 0
    try:
        schema = source.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                                "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC").fetchall()
        with out.atomic("IMMEDIATE"):
            for _kind, _name, sql in schema:
                try:
                    out.execute_sql(sql)
                except peewee.DatabaseError:
                    continue
            for kind, name, _sql in schema:
                if kind != "table":
                    continue
                try:
                    for row in source.execute(f'SELECT * FROM "{name}"'):
                        out.execute_sql(f'INSERT OR IGNORE INTO "{name}" VALUES ({",".join("?" * len(row))})', row)
                        copied += 1
                except sqlite3.Error:
                    continue  # the rest of this table is unreadable; keep what came before it
        version = source.execute("PRAGMA user_version").fetchone()[0]
        out.execute_sql(f"PRAGMA user_version = {int(version)}")
    finally:
        source.close()
        out.close()
    return copied


def write_recovered_copy(db_path: Path) -> tuple[Path, str]:
    """A recovered copy beside the database (`mayuri.db.recovered`): SQLite's `.recover`, else salvage.

    Returns the copy and how it was made. The original is only read.
    """
    target = db_path.with_name(db_path.name + ".recovered")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    cli = shutil.which("sqlite3")
    if cli is not None:
        dump = subprocess.run([cli, "-readonly", str(db_path), ".recover"], capture_output=True, timeout=600)
        if dump.returncode == 0 and dump.stdout:
            made = subprocess.run([cli, str(target)], input=dump.stdout, capture_output=True, timeout=600)
            if made.returncode == 0:
                return target, "sqlite3 .recover"
            target.unlink(missing_ok=True)
    rows = _salvage(db_path, target)
    return target, f"row-by-row salvage ({rows} rows)"


def replace_with(db_path: Path, recovered: Path, stamp: str) -> Path:
    """Put the recovered copy in place of the database; the original is kept as mayuri.db.corrupt-<stamp>."""
    kept = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    for suffix in ("-wal", "-shm", ""):
        source = Path(str(db_path) + suffix)
        if source.exists():
            os.rename(source, str(kept) + suffix)
    os.rename(recovered, db_path)
    return kept
