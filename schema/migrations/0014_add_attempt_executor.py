"""Which executor ran an attempt, and the executor's id for it.

Frozen once released. Columns are added with ALTER TABLE ... ADD COLUMN
(nullable), so SQLite never rebuilds `attempt`, and an older store keeps
working as it is.

- `attempt.executor`: the name the executor is registered under (`local`,
  or a backend's name); NULL on attempts recorded before it existed, which
  were all local.
- `attempt.executor_ref`: the executor's id for the attempt (local: `PID@START`,
  the pid and its start time; a cluster: its task or job id). Recovery,
  `cancel` and `doctor` hand it back to that executor to ask whether the
  attempt is alive or to stop it. The local pid columns (`pid`,
  `pid_create_time`, `host`) stay filled for local attempts.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE attempt ADD COLUMN executor TEXT",
    "ALTER TABLE attempt ADD COLUMN executor_ref TEXT",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
