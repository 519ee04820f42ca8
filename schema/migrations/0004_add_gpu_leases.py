"""Scheduler state: live schedulers, GPU leases, cancel requests and the peaks of each run.

Frozen once released. Plain SQL; columns on existing tables are added with
ALTER TABLE ... ADD COLUMN (nullable) so that SQLite never rebuilds `run`.

A scheduler row is the identity every lease and run of one `mayuri run`
process hangs off: (host, boot id, pid, process create time) tell whether it
is alive on this host, the heartbeat tells it for other hosts, and its id is
the token that fences its late writes once another scheduler has reclaimed it.
"""

from peewee import Database

STATEMENTS = [
    """CREATE TABLE scheduler (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_create_time REAL,
        user TEXT NOT NULL,
        experiment TEXT,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        ended_at REAL
    )""",
    "CREATE INDEX scheduler_status ON scheduler (status)",
    """CREATE TABLE gpu_lease (
        id INTEGER PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        host TEXT NOT NULL,
        gpu_uuid TEXT NOT NULL,
        scheduler_id TEXT NOT NULL REFERENCES scheduler (id) ON DELETE CASCADE,
        run_id TEXT REFERENCES run (id) ON DELETE SET NULL,
        attempt INTEGER,
        memory INTEGER NOT NULL,
        exclusive INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        pid_create_time REAL,
        boot_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    )""",
    "CREATE INDEX gpu_lease_gpu ON gpu_lease (host, gpu_uuid)",
    "CREATE INDEX gpu_lease_scheduler ON gpu_lease (scheduler_id)",
    "ALTER TABLE run ADD COLUMN scheduler_id TEXT",
    "ALTER TABLE run ADD COLUMN cancel_requested_at REAL",
    "ALTER TABLE run ADD COLUMN peak_rss INTEGER",
    "ALTER TABLE run ADD COLUMN peak_gpu_memory INTEGER",
    "CREATE INDEX run_scheduler ON run (scheduler_id)",
    "ALTER TABLE attempt ADD COLUMN scheduler_id TEXT",
    "ALTER TABLE attempt ADD COLUMN error TEXT",
    "ALTER TABLE attempt ADD COLUMN peak_rss INTEGER",
    "ALTER TABLE attempt ADD COLUMN peak_gpu_memory INTEGER",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
