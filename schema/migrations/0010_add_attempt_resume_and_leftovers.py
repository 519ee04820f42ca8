"""What an attempt resumed from, and how many leftover processes were stopped after it.

Frozen once released. Columns are added with ALTER TABLE ... ADD COLUMN
(nullable), so SQLite never rebuilds `attempt`.

- `attempt.resumed_from`: the id of the interrupted run (cancelled, orphaned,
  lost, timed out or failed, same job and config) whose last checkpoint this
  attempt started from (`MAYURI_RESUME_FROM`); NULL: it started from scratch
  or resumed an earlier attempt of its own run.
- `attempt.resumed_step`: the step of that checkpoint when it could be told
  (a `checkpoint-N` or `step-N` name, else the run's last logged step).
- `attempt.leftovers`: processes the job left behind when its main process
  ended (a background child, a daemon), stopped before the end was recorded.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE attempt ADD COLUMN resumed_from TEXT",
    "ALTER TABLE attempt ADD COLUMN resumed_step INTEGER",
    "ALTER TABLE attempt ADD COLUMN leftovers INTEGER",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
