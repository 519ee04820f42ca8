"""Cache bookkeeping: hits and last use per run, pins, and the stat cache.

Frozen once released. Columns are added with plain ALTER TABLE ... ADD COLUMN
(nullable or with a constant default) so that SQLite never rebuilds `run`:
a rebuild with foreign keys on would cascade-delete every child row.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE run ADD COLUMN hits INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE run ADD COLUMN last_used_at REAL",
    "ALTER TABLE run ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
    # The cache check looks runs up by config hash; a sweep has many runs per job.
    "CREATE INDEX run_cache ON run (experiment_id, job, config_hash, created_at)",
    # Listings filter by status newest first (the dashboard, `mayuri runs -s`).
    "DROP INDEX run_status",
    "CREATE INDEX run_status_created ON run (status, created_at)",
    """CREATE TABLE stat_cache (
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        sha512 TEXT NOT NULL,
        hashed_at_ns INTEGER NOT NULL
    ) WITHOUT ROWID""",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
