"""How a run's closure was learned, and what it read that the cache does not cover.

Frozen once released. Plain SQL; the column is added with ALTER TABLE ... ADD
COLUMN (nullable) so that SQLite never rebuilds `run`.

- `run.closure_info`: JSON object, NULL for runs recorded before this
  migration. `tracer` is "preload" (the C file-access tracer saw every
  process's reads) or "python" (the Python audit hook alone: reads made in C
  or by non-Python programs were not seen); `untracked` (absent when empty)
  lists the absolute paths read outside the project and `[cache] roots`;
  `unseen` (absent when empty) the statically linked programs the job ran,
  which no preload reaches.
"""

from peewee import Database

STATEMENTS = [
    "ALTER TABLE run ADD COLUMN closure_info TEXT",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
