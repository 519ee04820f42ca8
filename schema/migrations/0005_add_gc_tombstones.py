"""Garbage collection: run tombstones, the gc lease, blob holds and blob freshness.

Frozen once released. Plain SQL; columns are added with ALTER TABLE ... ADD
COLUMN (nullable) so that SQLite never rebuilds `run` (a rebuild with foreign
keys on would cascade-delete every child row).

- A collected run keeps its row as a tombstone: `status` becomes 'collected'
  (so that no cache check ever reuses it), `collected_status` remembers what
  it was, `collected_at` when its files went.
- `gc_lease` has at most one row: the gc that may sweep now.
- `blob_hold` is a pending reference: a writer that is about to reference a
  blob holds it first, and gc keeps a held blob while the holding run is
  active (or, without a run, for the grace period).
- `blob.touched_at` is refreshed by a trigger whenever an existing blob is
  registered again (a deduplicated write), so that the grace period also
  protects a blob that a writer has just decided to reuse.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE run ADD COLUMN collected_at REAL",
    "ALTER TABLE run ADD COLUMN collected_status TEXT",
    """CREATE TABLE gc_lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        token TEXT NOT NULL,
        host TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_create_time REAL,
        user TEXT NOT NULL,
        acquired_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    )""",
    """CREATE TABLE blob_hold (
        id INTEGER PRIMARY KEY,
        sha512 TEXT NOT NULL,
        run_id TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX blob_hold_sha512 ON blob_hold (sha512)",
    "ALTER TABLE blob ADD COLUMN touched_at REAL",
    # A BEFORE trigger fires even when INSERT OR IGNORE then skips the row,
    # which is exactly the case of a writer reusing an existing blob.
    """CREATE TRIGGER blob_touch BEFORE INSERT ON blob BEGIN
        UPDATE blob SET touched_at = NEW.created_at WHERE sha512 = NEW.sha512;
    END""",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
