"""Closure snapshots: a run's verified closure in one row, for the warm cache check.

Frozen once released. Plain SQL, new objects only.

A snapshot holds, for one run and one project folder (`prefix`), the files of
the run's closure that the stat cache vouched for when the snapshot was taken
(their relative paths, UTF-8, joined by NUL bytes, and their cached stat fields mtime_ns,
ctime_ns, ino, size, dev packed as little-endian signed 64-bit integers), and
the entries that are always checked the slow way (folder listings, files that
must still not exist) as JSON. It is derived data: the closure and the stat
cache stay the record, and a snapshot that no longer matches the files is
simply not used. A collected run (gc's tombstone) loses its snapshot.
"""

from peewee import Database

STATEMENTS = [
    """CREATE TABLE closure_snapshot (
        run_id TEXT PRIMARY KEY REFERENCES run (id) ON DELETE CASCADE,
        prefix TEXT NOT NULL,
        paths BLOB NOT NULL,
        stats BLOB NOT NULL,
        rest TEXT NOT NULL
    )""",
    """CREATE TRIGGER closure_snapshot_collected AFTER UPDATE OF status ON run
        WHEN NEW.status = 'collected' BEGIN
        DELETE FROM closure_snapshot WHERE run_id = NEW.id;
    END""",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
