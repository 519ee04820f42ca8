"""`run.json` in each run folder: the run's records, so that a lost database can be rebuilt.

Written when a run ends (and again when an ad-hoc run finishes): the run's
row with its experiment's name, its attempts, outputs, artifacts with their
files, lineage parents, closure and metric summaries, as plain JSON rows
keyed by column name. `mayuri doctor --rebuild` reads them back
(`store/rebuild.py`). Metric points are not copied (they can be millions);
their summaries are.

Must not: fail a run. A manifest that cannot be written is only a weaker
rebuild later; the database stays the record.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mayuri.errors import StoreError
from mayuri.run_contract import MANIFEST_FILE
from mayuri.store.db import Store
from mayuri.store.perms import write_text_atomically

MANIFEST_VERSION = 1

log = logging.getLogger(__name__)

# What a manifest holds: section name -> query of one run's rows (the run id is the one parameter).
_SECTIONS = {
    "attempts": "SELECT * FROM attempt WHERE run_id = ? ORDER BY number",
    "outputs": "SELECT * FROM output WHERE run_id = ?",
    "artifacts": "SELECT * FROM artifact WHERE run_id = ?",
    "artifact_files": "SELECT * FROM artifact_file WHERE run_id = ?",
    "lineage": "SELECT * FROM lineage WHERE child_id = ?",
    "closure": "SELECT f.path, f.kind, f.size, f.sha512, c.role FROM closure_entry c "
               "JOIN file f ON f.id = c.file_id WHERE c.run_id = ?",
    "metric_summaries": "SELECT k.name AS key, s.* FROM metric_summary s "
                        "JOIN metric_key k ON k.id = s.key_id WHERE s.run_id = ?",
}


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def manifest_of(store: Store, run_id: str) -> dict[str, Any] | None:
    """The records of one run as a manifest (None if the run has no row)."""
    conn = store.db.connection()
    found = _rows(conn, "SELECT run.*, experiment.name AS experiment FROM run "
                        "JOIN experiment ON experiment.id = run.experiment_id WHERE run.id = ?", (run_id,))
    if not found:
        return None
    manifest: dict[str, Any] = {"version": MANIFEST_VERSION, "run": found[0]}
    for section, sql in _SECTIONS.items():
        manifest[section] = _rows(conn, sql, (run_id,))
    return manifest


def write_manifests(store: Store, run_ids: Iterable[str]) -> None:
    """Write `run.json` into the folder of each run (those that have one); never raises for a file error."""
    for run_id in run_ids:
        folder = store.runs / run_id
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            manifest = manifest_of(store, run_id)
            if manifest is not None:
                write_text_atomically(folder / MANIFEST_FILE, json.dumps(manifest, sort_keys=True, default=str))
        except (OSError, sqlite3.Error, StoreError) as exc:
            log.warning("warning: could not write %s of run %s (%s)", MANIFEST_FILE, run_id[:8], exc)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a run folder, or None when it has none (or an unreadable one)."""
    try:
        with open(folder / MANIFEST_FILE, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) and isinstance(loaded.get("run"), dict) else None
