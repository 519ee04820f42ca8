"""The node an attempt ran on, for executors that run jobs on other machines.

Frozen once released. Added with ALTER TABLE ... ADD COLUMN (nullable), so
SQLite never rebuilds `attempt`, and an older store keeps working as it is.

- `attempt.node`: the host name of the machine that ran the attempt, as its
  executor learned it (a Slurm node from the runner's exit record, or from
  Slurm's own record of the job); NULL for local attempts (their machine is
  `attempt.host`, the scheduler's) and for attempts recorded before it existed.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE attempt ADD COLUMN node TEXT",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
