"""The one place that opens the store's SQLite database: pragmas, checks and migrations.

Every connection is made here (WAL on a local disk, a long busy timeout,
foreign keys on, and BEGIN IMMEDIATE as the default for every transaction so
that no write ever upgrades a read lock: RELIABILITY.md decisions 1 and 2).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import peewee
from playhouse.migrations import Runner

from mayuri.errors import StoreError
from mayuri.store.fsinfo import is_network_fs
from mayuri.store.models import MODELS, database_proxy
from mayuri.store.perms import make_dirs, share_like_folder

DB_NAME = "mayuri.db"


@dataclass
class Store:
    """An open store: the database plus the folders for blobs and run folders."""

    root: Path
    db: peewee.SqliteDatabase

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    def write(self) -> peewee._atomic:
        """A write transaction (BEGIN IMMEDIATE): the only way code here writes."""
        return self.db.atomic("IMMEDIATE")

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()


def _migrations_dir() -> Path:
    return Path(str(resources.files("mayuri.schema.migrations")))


def schema_version() -> int:
    """The newest migration this Mayuri knows (the store's `user_version` when current)."""
    return len(list(_migrations_dir().glob("[0-9]*.py")))


def _translate(exc: Exception, path: Path) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(
            f"the store is locked: another process has held it for longer than the busy timeout ({text}).",
            path=path,
            hint="Wait for it to finish, or find it with `fuser` and stop it; nothing was written.",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"the store's database is corrupt or not a Mayuri store ({text}).",
            path=path,
            hint="Run `mayuri doctor`, or restore the file from a backup; nothing was changed.",
        )
    return StoreError(f"cannot use the store: {text}.", path=path)


@contextlib.contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's operational errors into one-paragraph StoreErrors."""
    try:
        yield
    except (peewee.OperationalError, peewee.DatabaseError, sqlite3.DatabaseError) as exc:
        raise _translate(exc, path) from exc


def _migrate(db: peewee.SqliteDatabase, path: Path) -> None:
    latest = schema_version()
    current = db.execute_sql("PRAGMA user_version").fetchone()[0]
    if current == latest:
        return
    if current > latest:
        raise StoreError(
            f"the store has schema version {current}, newer than this Mayuri understands ({latest}).",
            path=path,
            hint="Upgrade Mayuri (pip install -U mayuri) to use it; nothing was changed.",
        )
    runner = Runner(db, directory=str(_migrations_dir()))
    # Foreign keys must be off while tables change shape (a rebuild would
    # cascade-delete child rows), and the pragma is a no-op inside a transaction.
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        with db.atomic("IMMEDIATE"):
            # Re-read under the write lock: another process may have migrated meanwhile.
            if db.execute_sql("PRAGMA user_version").fetchone()[0] == latest:
                return
            runner.History.create_table(safe=True)
            applied = runner.applied()
            for migration in runner.migrations():
                if migration.name in applied:
                    continue
                migration.load().up(runner.migrator, db)
                runner.History.create(name=migration.name)
            db.execute_sql(f"PRAGMA user_version = {latest}")
            problems = db.execute_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise StoreError(
                    f"migration left {len(problems)} broken references; it was rolled back.",
                    path=path,
                )
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")


def open_store(
    root: Path,
    *,
    allow_network_fs: bool = False,
    busy_timeout: float = 30.0,
    create: bool = True,
) -> Store:
    """Open (and create or upgrade when needed) the store at `root`."""
    root = Path(root)
    db_path = root / DB_NAME
    if not create and not db_path.exists():
        raise StoreError(
            "no store here yet.", path=db_path, hint="Run `mayuri init`, or `mayuri run` an experiment."
        )
    make_dirs(root, root.parent if root.parent.exists() else root)
    network, fstype = is_network_fs(root)
    if network and not allow_network_fs:
        raise StoreError(
            f"the store folder is on a network filesystem ({fstype}), where SQLite's locking "
            "is not safe and the store could be corrupted.",
            path=root,
            hint="Keep the store on a local disk of the shared machine ([store] path in "
            "mayuri.toml), or set `[store] allow_network_fs = true` to accept the risk.",
        )
    if network:
        print(
            f"warning: store on a network filesystem ({fstype}); using a rollback journal. "
            "Never use it from two machines at once.",
            file=sys.stderr,
        )
    for folder in ("blobs", "runs"):
        make_dirs(root / folder, root)
    pragmas = {
        "journal_mode": "delete" if network else "wal",
        "synchronous": "full" if network else "normal",
        "foreign_keys": 1,
        "cache_size": -16000,
    }
    db = peewee.SqliteDatabase(
        str(db_path),
        pragmas=pragmas,
        timeout=busy_timeout,
        lock_type="IMMEDIATE",
        check_same_thread=False,
    )
    with store_errors(db_path):
        # busy_timeout must be in force before journal_mode, which needs a lock.
        db.connect()
        _migrate_with_retry(db, db_path, busy_timeout)
    database_proxy.initialize(db)
    for suffix in ("", "-wal", "-shm"):
        file = Path(str(db_path) + suffix)
        if file.exists():
            share_like_folder(file, root)
    return Store(root=root, db=db)


def _migrate_with_retry(db: peewee.SqliteDatabase, path: Path, busy_timeout: float) -> None:
    # Switching to WAL during another process's first start can report "locked"
    # without waiting on the busy handler; retry until the busy timeout.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            _migrate(db, path)
            return
        except peewee.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


__all__ = ["MODELS", "Store", "open_store", "schema_version", "store_errors"]
