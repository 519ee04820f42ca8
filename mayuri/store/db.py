"""The one place that opens the store's SQLite database: pragmas, checks and migrations.

Every connection is made here (WAL on a local disk, a busy timeout, foreign
keys on, and BEGIN IMMEDIATE for every transaction so that no write ever
upgrades a read lock: docs/decisions.md, decisions 1 and 2). SQLite's failures
leave this package as StoreErrors. It must not print, and no other module
may connect to the database or set pragmas.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee

from mayuri.config import Settings
from mayuri.errors import StoreError
from mayuri.store.fsinfo import is_network_fs
from mayuri.store.perms import group_shared, make_dirs, share_like_folder
from mayuri.store.plain_sqlite import (
    ALREADY_ROLLED_BACK,
    DB_NAME,
    LOCKED,
    StoreLocked,
    is_store_failure,
    select_in,
    translate,
)

HISTORY_TABLE = "schema_migration"

log = logging.getLogger(__name__)


class StoreReadOnly(StoreError):
    """A write was asked of a store opened read-only."""


class DatabaseLost(StoreError):
    """mayuri.db is missing or empty while the store still holds run folders or blobs."""


def _is_store_failure(exc: Exception) -> bool:
    return isinstance(exc, peewee.OperationalError) or is_store_failure(exc)


@contextlib.contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's failures (locked, corrupt, read-only, full) into one-paragraph StoreErrors."""
    try:
        yield
    except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
        if not _is_store_failure(exc):
            raise
        raise translate(exc, path) from exc


class _StoreDatabase(peewee.SqliteDatabase):
    """A SqliteDatabase whose failing statements raise StoreError, for readers and writers alike."""

    # The database file, for messages (`database` is a URI for a read-only store).
    store_path: Path | None = None

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        with store_errors(self.store_path or Path(self.database)):
            return super().execute_sql(sql, params)


@dataclass
class Store:
    """An open store: the database plus the folders for blobs and run folders.

    `read_only`: opened for reading only (a snapshot, a teammate's store you
    may not write); every write is refused with one clear line.
    """

    root: Path
    db: peewee.SqliteDatabase
    read_only: bool = False

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    def require_writable(self, command: str = "this command") -> None:
        """Refuse (StoreReadOnly, exit 2) when the store was opened read-only."""
        if self.read_only:
            raise StoreReadOnly(
                f"the store is read-only for you, and {command} writes to it.",
                path=self.root,
                hint="Reading commands (runs, show, logs, diff, cache ls, tui) work on it; to write, "
                "ask its owner for group write access, or copy it somewhere you may write.",
            )

    @contextlib.contextmanager
    def write(self, wait: float | None = None) -> Iterator[Any]:
        """A write transaction (BEGIN IMMEDIATE; a savepoint when nested): the only way code writes.

        `wait` shortens the busy timeout for this transaction, for a write that
        is worth doing only if the store is free now (StoreLocked otherwise).
        """
        self.require_writable()
        with store_errors(self.db_path), self._waiting(wait):
            try:
                with self.db.atomic("IMMEDIATE") as transaction:
                    yield transaction
            except (peewee.OperationalError, sqlite3.OperationalError) as exc:
                # After a disk-full or I/O error SQLite has already rolled the
                # transaction back, and peewee's own rollback then fails: report
                # the error that mattered, not that one.
                original: BaseException | None = exc
                while original is not None and any(text in str(original) for text in ALREADY_ROLLED_BACK):
                    original = original.__context__
                if original is not None and original is not exc:
                    raise original from None
                raise

    @contextlib.contextmanager
    def _waiting(self, wait: float | None) -> Iterator[None]:
        if wait is None:
            yield
            return
        connection = self.db.connection()
        usual = connection.execute("PRAGMA busy_timeout").fetchone()[0]
        connection.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(usual)}")

    def select_in(self, sql: str, values: Sequence[Any], size: int = 500) -> Iterator[tuple[Any, ...]]:
        """The rows of `sql` for all of `values`, asked in chunks (`plain_sqlite.select_in`)."""
        return select_in(self.db.execute_sql, sql, values, size)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()


def _migrations_dir() -> Path:
    # The package's own folder, where the wheel ships the scripts. Not through
    # importlib.resources: its readers (zipfile among them) cost every start-up
    # a few milliseconds, and the migration runner needs a real folder anyway.
    import mayuri.schema.migrations as package

    return Path(next(iter(package.__path__)))


@functools.cache
def _migration_names() -> tuple[str, ...]:
    # Read at every open of the store: a plain listing, no glob patterns to compile.
    names = (name[:-3] for name in os.listdir(_migrations_dir()) if name.endswith(".py"))
    return tuple(sorted(name for name in names if name[:1].isdigit()))


def _number(name: str) -> int:
    return int(name.split("_", 1)[0])


def schema_version() -> int:
    """The newest migration this Mayuri knows (the store's `user_version` when current)."""
    return max((_number(name) for name in _migration_names()), default=0)


def _schema_state(db: peewee.SqliteDatabase) -> tuple[int, set[str] | None, bool]:
    """The store's user_version, its applied migrations (None: no history) and whether it has tables."""
    try:
        # One statement for the usual case, a store with its history: every open pays for this.
        rows = db.connection().execute(
            f'SELECT user_version, name FROM pragma_user_version LEFT JOIN "{HISTORY_TABLE}"'
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
    else:
        return int(rows[0][0]), {row[1] for row in rows if row[1] is not None}, True
    version = int(db.execute_sql("PRAGMA user_version").fetchone()[0])
    tables = {row[0] for row in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    applied = None
    if HISTORY_TABLE in tables:
        applied = {row[0] for row in db.execute_sql(f'SELECT name FROM "{HISTORY_TABLE}"')}
    return version, applied, bool(tables)


def _pending(db: peewee.SqliteDatabase, path: Path) -> list[str]:
    """The migrations this store still needs; refuses a store it must not touch."""
    latest = schema_version()
    version, applied, has_tables = _schema_state(db)
    if version > latest:
        raise StoreError(
            f"the store has schema version {version}, newer than this Mayuri understands ({latest}).",
            path=path,
            hint="Upgrade Mayuri (pip install -U mayuri) to use it; nothing was changed.",
        )
    if applied is None and has_tables:
        # Someone else's database: migrating it would write our tables into it.
        raise StoreError(
            "this SQLite file is not a Mayuri store (it has tables but no Mayuri schema history).",
            path=path,
            hint="Point `[store] path` in mayuri.toml at a folder of its own; nothing was changed.",
        )
    # By name, not by user_version alone: a migration numbered below one
    # already applied (merged late) must still run.
    return [name for name in _migration_names() if applied is None or name not in applied]


def _migrate(db: peewee.SqliteDatabase, path: Path) -> None:
    # Imported only when there is something to migrate: it costs every start-up otherwise.
    from playhouse.migrations import Runner

    runner = Runner(db, directory=str(_migrations_dir()), table_name=HISTORY_TABLE)
    # Foreign keys must be off while tables change shape (a rebuild would
    # cascade-delete child rows), and the pragma is a no-op inside a transaction.
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        with db.atomic("IMMEDIATE"):
            # Decide again under the write lock: another process may have migrated meanwhile.
            pending = set(_pending(db, path))
            if not pending:
                return
            before = int(db.execute_sql("PRAGMA user_version").fetchone()[0])
            runner.History.create_table(safe=True)
            for migration in runner.migrations():
                if migration.name in pending:
                    migration.load().up(runner.migrator, db)
                    runner.History.create(name=migration.name)
            db.execute_sql(f"PRAGMA user_version = {schema_version()}")
            problems = db.execute_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise StoreError(
                    f"migration left {len(problems)} broken references; it was rolled back.",
                    path=path,
                )
        log.info(
            "upgraded the store from schema version %d to %d (%s)",
            before, schema_version(), ", ".join(sorted(pending)),
        )
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")


def _set_journal_mode(db: peewee.SqliteDatabase, mode: str, deadline: float) -> None:
    # Changing the journal mode needs the database to itself, and SQLite
    # reports "locked" at once instead of waiting on the busy handler when
    # another process is doing the same during its first start: retry until
    # the busy timeout. Once the file is in WAL, the read below takes no lock.
    connection = db.connection()
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] == mode:
                return
            got = connection.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not any(word in str(exc) for word in LOCKED) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        if got != mode:
            raise StoreError(f"SQLite refused journal_mode={mode} (it stayed {got}).", path=db.database)
        return


def _create_db_file(db_path: Path, root: Path) -> None:
    # Made here rather than by SQLite so that its group permissions are right
    # before any teammate opens it; SQLite gives -wal, -shm and -journal files
    # the database file's own mode, whatever the umask.
    try:
        fd = os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return
    os.close(fd)
    share_like_folder(db_path, root)


def _check_filesystem(root: Path, allow_network_fs: bool) -> bool:
    network, fstype = is_network_fs(root)
    if network and not allow_network_fs:
        raise StoreError(
            f"the store folder is on a network or unknown filesystem ({fstype}), where SQLite's "
            "locking is not safe and the store could be corrupted.",
            path=root,
            hint="Keep the store on a local disk of the shared machine ([store] path in "
            "mayuri.toml), or set `[store] allow_network_fs = true` to accept the risk.",
        )
    if network:
        log.warning(
            "warning: store on a network filesystem (%s); using a rollback journal. "
            "Never use it from two machines at once.",
            fstype,
        )
    return network


def store_content(root: Path) -> tuple[int, int]:
    """(run folders, blobs) on disk in the store at `root`: the history a database indexes."""
    from mayuri.gc.safe_fs import blob_files, run_folder_names

    try:
        return sum(1 for _ in run_folder_names(root)), sum(1 for _ in blob_files(root))
    except OSError:
        return 0, 0


def database_empty(db_path: Path) -> bool:
    """Whether mayuri.db is missing, or 0 bytes with no -wal content (a stray `> mayuri.db`)."""
    try:
        if os.stat(db_path).st_size > 0:
            return False
    except FileNotFoundError:
        return True
    try:
        return os.stat(str(db_path) + "-wal").st_size == 0
    except FileNotFoundError:
        return True


def refuse_lost_database(root: Path) -> None:
    """Raise DatabaseLost when the store holds history that a new, empty database would hide.

    A fresh database over full runs/ and blobs/ would show "no runs yet" and
    let gc take every run folder and blob as leftovers: never make one there.
    """
    folders, blobs = store_content(root)
    if folders or blobs:
        raise DatabaseLost(
            f"the database is missing (or empty) but the store holds {folders} run folders and "
            f"{blobs} blobs.",
            path=root / DB_NAME,
            hint="Restore mayuri.db from a backup, or run `mayuri doctor --rebuild` to re-index the store "
            "from its run folders and blobs. Nothing was changed.",
        )


def _writable(root: Path, db_path: Path) -> bool:
    # Root ignores permission bits, but not a read-only mount: ask both.
    try:
        if os.statvfs(root).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return True
    # The effective ids (and capabilities) decide what this process may do, as the kernel does on open.
    effective = os.access in os.supports_effective_ids
    if not os.access(root, os.W_OK | os.X_OK, effective_ids=effective):
        return False
    return not db_path.exists() or os.access(db_path, os.W_OK, effective_ids=effective)


def read_only_uri(db_path: Path) -> str:
    """The `file:` URI of the database, for SQLite's `mode=ro` or `immutable=1` parameters."""
    return "file:" + urllib.parse.quote(str(db_path.resolve()))


def _open_read_only(root: Path, db_path: Path, busy_timeout: float) -> Store:
    """Open a store this process may not write: SQLite's read-only mode, immutable where it needs that.

    A WAL database on a read-only folder cannot have its -shm made, so SQLite
    can read it only as immutable; that is exact when no -wal content is left
    behind (a clean snapshot), and the only way left otherwise.
    """
    if database_empty(db_path):
        refuse_lost_database(root)
        raise StoreError(
            "no store here, and the folder is read-only for you.",
            path=db_path,
            hint="Check `[store] path` in mayuri.toml; a store is created by `mayuri init` where you may write.",
        )
    uri = read_only_uri(db_path)
    last: Exception | None = None
    for mode in ("?mode=ro", "?immutable=1"):
        db = _StoreDatabase(uri + mode, uri=True, timeout=busy_timeout, check_same_thread=False,
                            pragmas={"foreign_keys": 1, "cache_size": -16000, "query_only": 1})
        db.store_path = db_path
        try:
            with store_errors(db_path):
                db.connect()
                version, applied, _ = _schema_state(db)
        except StoreError as exc:
            db.close()
            last = exc
            continue
        if applied is None or version < schema_version():
            db.close()
            raise StoreError(
                "this read-only store was made by an older Mayuri and needs an upgrade that cannot be written.",
                path=db_path, hint="Ask its owner to run any `mayuri` command on it once; nothing was changed.",
            )
        wal = Path(str(db_path) + "-wal")
        unseen = mode == "?immutable=1" and wal.exists() and wal.stat().st_size > 0
        log.warning("notice: the store is read-only for you (%s); reading only, nothing will be recorded.%s", root,
                    " Its -wal file holds changes SQLite cannot read from a read-only folder: the latest records "
                    "may be missing (copy the store somewhere writable to see them)." if unseen else "")
        return Store(root=root, db=db, read_only=True)
    assert last is not None
    raise last


def open_store(
    root: Path,
    *,
    allow_network_fs: bool = False,
    busy_timeout: float = 30.0,
    create: bool = True,
    fresh: bool = False,
) -> Store:
    """Open (and create or upgrade when needed) the store at `root`.

    The database is made only in a store with no history (no run folders, no
    blobs), or with `fresh` (`mayuri init`, `doctor --rebuild`). A store this
    process cannot write opens read-only.
    """
    root = Path(root)
    db_path = root / DB_NAME
    empty = database_empty(db_path)
    if not create and empty:
        raise StoreError(
            "no store here yet.", path=db_path, hint="Run `mayuri init`, or `mayuri run` an experiment."
        )
    if root.is_dir() and not _writable(root, db_path):
        return _open_read_only(root, db_path, busy_timeout)
    if empty and not fresh:
        refuse_lost_database(root)
    try:
        if not root.is_dir():
            make_dirs(root, root.parent if root.parent.exists() else root)
        network = _check_filesystem(root, allow_network_fs)
        for folder in ("blobs", "runs"):
            make_dirs(root / folder, root)
        if not db_path.exists():
            _create_db_file(db_path, root)
    except OSError as exc:
        raise StoreError(
            f"cannot create the store ({exc.strerror}).",
            path=exc.filename or root,
            hint="Check the permissions of the store folder, or set `[store] path` in mayuri.toml.",
        ) from exc
    db = _StoreDatabase(
        str(db_path),
        # journal_mode is set after connecting, with retries (see _set_journal_mode).
        pragmas={"synchronous": "full" if network else "normal", "foreign_keys": 1, "cache_size": -16000},
        timeout=busy_timeout,
        lock_type="IMMEDIATE",
        check_same_thread=False,
    )
    deadline = time.monotonic() + busy_timeout
    try:
        with store_errors(db_path):
            db.connect()
            # Refuse a store we must not touch before anything (even the journal mode) changes.
            pending = _pending(db, db_path)
            if not fresh and len(pending) == len(_migration_names()):
                # A database with no schema at all (not just 0 bytes) over a full store.
                refuse_lost_database(root)
            _set_journal_mode(db, "delete" if network else "wal", deadline)
            if pending:
                _migrate(db, db_path)
    except BaseException:
        db.close()
        raise
    if group_shared(root):
        for suffix in ("", "-wal", "-shm"):
            file = Path(str(db_path) + suffix)
            if file.exists():
                share_like_folder(file, root)
    return Store(root=root, db=db)


__all__ = ["DatabaseLost", "Store", "StoreLocked", "StoreReadOnly", "open_store", "schema_version", "store_errors"]


def open_project_store(settings: Settings) -> Store:
    """The store that a project's `mayuri.toml` names, opened with its settings."""
    return open_store(
        settings.store.path,
        allow_network_fs=settings.store.allow_network_fs,
        busy_timeout=settings.store.busy_timeout,
    )
