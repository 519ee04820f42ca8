"""Minimal reruns: the params a run used, its results by content, and claims on running work.

Frozen once released. Columns are added with ALTER TABLE ... ADD COLUMN
(nullable) so that SQLite never rebuilds `run`.

- `run.base_hash`: SHA-512 of the run's job config without its params (the
  cache looks runs up by it, whatever their experiment or job name).
- `run.params_used`: JSON list of the dotted names of the params the run used
  (NULL: all of them, which is what every run recorded before holds).
- `run.used_key`: SHA-512 of the used params' values (for NULL, of all params).
- `run.result_key`: SHA-512 of the run's output values and result files (NULL:
  not known; its fingerprint stands for its results, as it did before).
- `run.labels`: JSON object of the params that tell the instance apart, with
  its upstreams' (`train.lr`), for filters (NULL: none).
- `run.fingerprint_version`: 2 when the fingerprint covers the config without
  params, the used params and the upstream results (NULL: recorded before,
  over the whole config and the upstream fingerprints).
- `run_claim`: the work a live run is doing (its claim key), taken in the
  transaction that inserts the run and freed when the run leaves
  queued/running (a trigger), so that another scheduler waits for it instead
  of doing it twice.

Existing runs get their base_hash and used_key computed here from their
recorded config, with the hashing of `mayuri.hashing.hash_structure` as it is
today (copied: a migration never imports code that may change).
"""

import hashlib
import json
from typing import Any

from peewee import Database

STATEMENTS = [
    "ALTER TABLE run ADD COLUMN base_hash TEXT",
    "ALTER TABLE run ADD COLUMN params_used TEXT",
    "ALTER TABLE run ADD COLUMN used_key TEXT",
    "ALTER TABLE run ADD COLUMN result_key TEXT",
    "ALTER TABLE run ADD COLUMN labels TEXT",
    "ALTER TABLE run ADD COLUMN fingerprint_version INTEGER",
    # The cache's lookup: the instances of a sweep share the first two and differ by upstream.
    "CREATE INDEX run_base_used ON run (base_hash, used_key, upstream)",
    """CREATE TABLE run_claim (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
        scheduler_id TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX run_claim_run ON run_claim (run_id)",
    """CREATE TRIGGER run_claim_freed AFTER UPDATE OF status ON run
        WHEN NEW.status NOT IN ('queued', 'running') BEGIN
        DELETE FROM run_claim WHERE run_id = NEW.id;
    END""",
]


def _hash(kind: str, value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha512(kind.encode() + b"\0" + text.encode()).hexdigest()


def up(migrator: object, db: Database) -> None:
    for statement in STATEMENTS:
        db.execute_sql(statement)
    rows = db.execute_sql("SELECT id, config FROM run WHERE config IS NOT NULL").fetchall()
    updates = []
    for run_id, config_text in rows:
        try:
            config = json.loads(config_text)
        except ValueError:
            continue
        if not isinstance(config, dict):
            continue
        base = _hash("job-base/v1", {k: v for k, v in config.items() if k != "params"})
        used = _hash("used-params/v1", {"*": config.get("params", {})})
        updates.append((base, used, run_id))
    if updates:
        db.cursor().executemany("UPDATE run SET base_hash = ?, used_key = ? WHERE id = ?", updates)
