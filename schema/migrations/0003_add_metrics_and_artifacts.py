"""Metrics and artifacts: interned metric keys, raw points, a summary per run and key, artifact files.

Frozen once released. Plain SQL, new tables only (nothing existing is
rebuilt). NaN cannot be stored as a REAL (SQLite turns it into NULL), so a
NULL `metric.value` means NaN; infinities are stored as they are.
"""

from peewee import Database

STATEMENTS = [
    """CREATE TABLE metric_key (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE metric (
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        key_id INTEGER NOT NULL REFERENCES metric_key (id),
        step INTEGER NOT NULL,
        value REAL,
        logged_at REAL NOT NULL
    )""",
    "CREATE INDEX metric_run_key_step ON metric (run_id, key_id, step)",
    """CREATE TABLE metric_summary (
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        key_id INTEGER NOT NULL,
        last REAL,
        last_step INTEGER,
        min REAL,
        min_step INTEGER,
        max REAL,
        max_step INTEGER,
        count INTEGER NOT NULL,
        updated_at REAL,
        PRIMARY KEY (run_id, key_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE artifact (
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
    """CREATE TABLE artifact_file (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        relpath TEXT NOT NULL,
        sha512 TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (run_id, name, relpath),
        FOREIGN KEY (run_id, name) REFERENCES artifact (run_id, name) ON DELETE CASCADE
    )""",
    # gc asks "is this blob still referenced?" by digest.
    "CREATE INDEX artifact_file_sha512 ON artifact_file (sha512)",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
