"""The store's database through the standard library alone, for a process that must start fast.

A job's metrics writer (`mayuri.tracking.sink`) starts with every job that
logs a metric. Importing peewee and the store's full way in (schema checks,
migrations, the mount table) cost it about 45 ms of a 70 ms start, more than
many a short job. It writes to a store its scheduler has already opened,
checked and upgraded, so it needs none of that: here are a connection with
the store's own settings, write transactions, and the store's one-paragraph
errors. Everything else goes through `db.py`, which shares these.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mayuri.errors import StoreError

# Set by type checkers only: importing `typing` would cost the writer's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DB_NAME = "mayuri.db"

# Text of the SQLite errors that mean the file cannot be used as it is.
CORRUPT = ("not a database", "malformed", "corrupt")
LOCKED = ("locked", "busy")
ALREADY_ROLLED_BACK = ("no transaction is active", "no such savepoint")


class StoreLocked(StoreError):
    """Another process kept the store's write lock for longer than the busy timeout.

    The only store failure worth retrying: a caller holding results it must
    not lose (a scheduler recording finished jobs) may catch it and try again.
    """


def translate(exc: Exception, path: Path) -> StoreError:
    """SQLite's failure as the store's one-paragraph error, with a hint."""
    text = str(exc)
    if any(word in text for word in LOCKED):
        return StoreLocked(
            f"the store is locked: another process has held it for longer than the busy timeout ({text}).",
            path=path,
            hint=f"Wait for it to finish, or find it with `fuser {path}`; `[store] busy_timeout` in "
            "mayuri.toml sets how long to wait. The write that could not wait was rolled back.",
        )
    if any(word in text for word in CORRUPT):
        return StoreError(
            f"the store's database is corrupt or not a Mayuri store ({text}).",
            path=path,
            hint="Run `mayuri doctor`, or restore the file from a backup; nothing was changed.",
        )
    if "readonly" in text or "unable to open" in text:
        return StoreError(
            f"cannot write the store ({text}).",
            path=path,
            hint="Check that you may write the store folder and its files; a shared store needs "
            "a group-writable folder (chmod 2770) and group read/write on mayuri.db*.",
        )
    if "full" in text or "I/O error" in text:
        return StoreError(
            f"the store could not be written ({text}): no space left on the device holding the store, "
            "or it is failing, or over a file size limit. The write was rolled back.",
            path=path,
            hint="Free some space (`mayuri gc`, `df -h`), then run the command again.",
        )
    return StoreError(f"cannot use the store: {text}.", path=path)


def is_store_failure(exc: Exception) -> bool:
    """Whether an SQLite error says the store is unusable (locked, corrupt, read-only, full).

    Constraint violations and misuse are bugs or callers' business, not a
    broken store: they keep their own type.
    """
    return isinstance(exc, sqlite3.OperationalError) or any(word in str(exc) for word in CORRUPT)


def connect(db_path: Path, busy_timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to an existing store's database (never made here), set as `db.open_store` sets its own."""
    uri = "file:" + str(db_path).replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        # The store chose its journal when it was opened: WAL, with synchronous=normal, on a local disk;
        # a rollback journal, with synchronous=full, on a network filesystem.
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        conn.execute(f"PRAGMA synchronous = {'normal' if mode == 'wal' else 'full'}")
        conn.execute("PRAGMA cache_size = -16000")
    except sqlite3.DatabaseError as exc:
        raise translate(exc, db_path) from exc
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A write transaction (BEGIN IMMEDIATE) on a connection of `connect`; SQLite's failures as StoreErrors."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as exc:
        if not is_store_failure(exc):
            raise
        raise translate(exc, db_path) from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        # After a disk-full or I/O error SQLite has rolled back already: the error is the one to report.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.DatabaseError) and is_store_failure(exc):
            raise translate(exc, db_path) from exc
        raise


def select_in(execute: Callable[[str, tuple[Any, ...]], Any], sql: str, values: Sequence[Any],
              size: int = 500) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql` for all of `values`, asked in chunks; `{marks}` in `sql` is one chunk's placeholders.

    SQLite limits the parameters of one statement (999 in older builds), so
    a long `IN (...)` list is split.
    """
    for start in range(0, len(values), size):
        chunk = tuple(values[start:start + size])
        yield from execute(sql.format(marks=",".join("?" * len(chunk))), chunk)
