"""Where a run came from: its experiment file and the command line's overrides.

Frozen once released. Plain SQL; columns are added with ALTER TABLE ... ADD
COLUMN (nullable) so that SQLite never rebuilds `run`.

- `run.source`: the experiment file `mayuri run` was given, relative to the
  project folder when it is inside it (NULL for ad-hoc runs and for runs
  recorded before this migration).
- `run.overrides`: the `KEY=VALUE` overrides of that command, a JSON list of
  strings in the order given (NULL: none recorded).

With them, a rerun (the dashboard's `R`) runs the same file with the same
overrides, instead of looking for a file by the experiment's name.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE run ADD COLUMN source TEXT",
    "ALTER TABLE run ADD COLUMN overrides TEXT",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
