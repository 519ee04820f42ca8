"""Where an attempt ran when its executor placed it elsewhere: the node's name.

Frozen once released. A nullable column added with ALTER TABLE ... ADD
COLUMN, so SQLite never rebuilds `attempt`, and an older store keeps working.

- `attempt.node`: the name of the machine a remote executor (Ray) ran the
  attempt on, recorded when it ends; NULL for local attempts (their `host`
  is where they ran). The GPUs the engine gave it go to `attempt.gpus` by
  UUID, as for local attempts, and the engine's id for it (the Ray task id)
  to `attempt.executor_ref` (migration 0014).
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE attempt ADD COLUMN node TEXT",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
