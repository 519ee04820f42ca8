"""The first schema: experiments, runs, attempts, files, closures, blobs, lineage, outputs.

Frozen: this file must never change once released; later changes are new
numbered migrations. It uses plain SQL so that it does not depend on today's
models.
"""

from peewee import Database

STATEMENTS = [
    """CREATE TABLE experiment (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE run (
        id TEXT PRIMARY KEY,
        experiment_id INTEGER NOT NULL REFERENCES experiment (id),
        job TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'job',
        status TEXT NOT NULL,
        fingerprint TEXT,
        config_hash TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        config TEXT NOT NULL DEFAULT '{}',
        upstream TEXT NOT NULL DEFAULT '{}',
        environment TEXT NOT NULL DEFAULT '{}',
        reason TEXT,
        error TEXT,
        exit_code INTEGER,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        user TEXT NOT NULL,
        host TEXT NOT NULL,
        run_dir TEXT NOT NULL,
        scheduler_pid INTEGER
    )""",
    "CREATE INDEX run_job ON run (experiment_id, job, created_at)",
    "CREATE INDEX run_fingerprint ON run (fingerprint)",
    "CREATE INDEX run_status ON run (status)",
    "CREATE INDEX run_created ON run (created_at)",
    """CREATE TABLE attempt (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        status TEXT NOT NULL,
        pid INTEGER,
        pid_create_time REAL,
        host TEXT,
        started_at REAL,
        ended_at REAL,
        exit_code INTEGER,
        signal INTEGER,
        cause TEXT,
        gpus TEXT NOT NULL DEFAULT '[]',
        params TEXT NOT NULL DEFAULT '{}',
        UNIQUE (run_id, number)
    )""",
    """CREATE TABLE file (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha512 TEXT NOT NULL,
        UNIQUE (path, sha512)
    )""",
    """CREATE TABLE closure_entry (
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        file_id INTEGER NOT NULL REFERENCES file (id),
        role TEXT NOT NULL,
        PRIMARY KEY (run_id, file_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX closure_entry_file ON closure_entry (file_id)",
    """CREATE TABLE blob (
        sha512 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE lineage (
        parent_id TEXT NOT NULL REFERENCES run (id),
        child_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (child_id, parent_id, name)
    )""",
    "CREATE INDEX lineage_parent ON lineage (parent_id)",
    """CREATE TABLE output (
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
