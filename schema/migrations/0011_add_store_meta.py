"""The store's own facts: when its database was made.

Frozen once released. Plain SQL, new objects only.

`store_meta.created_at` dates the database. A database younger than the
oldest run folder of its store was made after the history it should index
(a lost `mayuri.db` re-created, or a restore from an old backup), and gc
then refuses to delete "leftover" folders and blobs. A store upgraded to
this version dates from its oldest run (or now, when it has none).
"""

from peewee import Database

STATEMENTS = [
    """CREATE TABLE store_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    """INSERT INTO store_meta (key, value)
        SELECT 'created_at', CAST(COALESCE(MIN(created_at), strftime('%s', 'now')) AS TEXT) FROM run""",
]


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
