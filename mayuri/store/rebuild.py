"""`mayuri doctor --rebuild`: a new database re-indexed from the store's run folders and blobs.

Each run folder with a `run.json` (see `run_manifest.py`) gets its run back
whole: row, attempts, outputs, artifacts, lineage, closure and metric
summaries (metric points are not in folders and are lost). A folder without
one still gives a run, from its params.json and outputs.json, marked
`orphaned` with an error saying what could not be recovered. Every blob on
disk is registered again. An existing database is never overwritten: it is
kept beside as `mayuri.db.before-rebuild-<time>` and only with --yes.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import StoreError
from mayuri.gc.safe_fs import blob_files, run_folder_names
from mayuri.job import OUTPUTS_FILE, PARAMS_FILE
from mayuri.store.db import DB_NAME, Store, database_empty, open_store
from mayuri.store.run_manifest import read_manifest

PARTIAL_EXPERIMENT = "(rebuilt)"
PARTIAL_NOTE = ("rebuilt by `mayuri doctor --rebuild` from a run folder without run.json: its experiment, job, "
                "status, fingerprint, attempts, metrics and artifacts are unknown")


@dataclass
class RebuildReport:
    """What a rebuild recovered: runs whole, runs in part, blobs; and where the old database went."""

    whole: int = 0
    partial: list[str] = field(default_factory=list)
    blobs: int = 0
    kept_aside: Path | None = None


def _set_aside(db_path: Path, yes: bool) -> Path | None:
    if database_empty(db_path):
        for suffix in ("", "-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
        return None
    if not yes:
        raise StoreError(
            "the store has a database with content; --rebuild would replace it.",
            path=db_path,
            hint="Run `mayuri doctor` to check it first; `mayuri doctor --rebuild --yes` keeps it beside "
            "as mayuri.db.before-rebuild-<time> and builds a new one. Nothing was changed.",
        )
    aside = db_path.with_name(f"{DB_NAME}.before-rebuild-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("-wal", "-shm", ""):
        source = Path(str(db_path) + suffix)
        if source.exists():
            os.rename(source, str(aside) + suffix)
    return aside


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def _insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any], known: set[str]) -> None:
    names = [k for k in row if k in known]
    conn.execute(
        f'INSERT OR IGNORE INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})',
        [row[k] for k in names],
    )


def _experiment_id(conn: sqlite3.Connection, name: str, created_at: float) -> int:
    conn.execute("INSERT OR IGNORE INTO experiment (name, created_at) VALUES (?, ?)", (name, created_at))
    conn.execute("UPDATE experiment SET created_at = MIN(created_at, ?) WHERE name = ?", (created_at, name))
    return int(conn.execute("SELECT id FROM experiment WHERE name = ?", (name,)).fetchone()[0])


def _run_row(manifest: dict[str, Any], folder: Path, experiment_id: int) -> dict[str, Any]:
    row = {k: v for k, v in manifest["run"].items() if k != "experiment"}
    row["experiment_id"] = experiment_id
    # The scheduler that ran it is gone with the old database.
    row["scheduler_id"] = None
    if not Path(str(row.get("run_dir", ""))).is_dir():
        row["run_dir"] = str(folder)
    return row


def _rebuild_children(conn: sqlite3.Connection, manifest: dict[str, Any], columns: dict[str, set[str]]) -> None:
    for table, section in (("attempt", "attempts"), ("output", "outputs"), ("artifact", "artifacts"),
                           ("artifact_file", "artifact_files")):
        for row in manifest.get(section, []):
            _insert_row(conn, table, {k: v for k, v in row.items() if k not in ("id", "scheduler_id")}, columns[table])
    run_id = manifest["run"]["id"]
    for entry in manifest.get("closure", []):
        conn.execute("INSERT OR IGNORE INTO file (path, kind, size, sha512) VALUES (?, ?, ?, ?)",
                     (entry["path"], entry["kind"], entry["size"], entry["sha512"]))
        conn.execute("INSERT OR IGNORE INTO closure_entry (run_id, file_id, role) "
                     "SELECT ?, id, ? FROM file WHERE path = ? AND sha512 = ?",
                     (run_id, entry["role"], entry["path"], entry["sha512"]))
    for summary in manifest.get("metric_summaries", []):
        conn.execute("INSERT OR IGNORE INTO metric_key (name) VALUES (?)", (summary["key"],))
        key_id = conn.execute("SELECT id FROM metric_key WHERE name = ?", (summary["key"],)).fetchone()[0]
        _insert_row(conn, "metric_summary", {**summary, "key_id": key_id}, columns["metric_summary"])


def _json_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _created(folder: Path) -> float:
    """When a run folder without run.json was made, as near as its files tell."""
    return min([folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.iterdir() if p.is_file()])


def _partial_run(conn: sqlite3.Connection, run_id: str, folder: Path, experiment_id: int) -> None:
    info = folder.stat()
    created = _created(folder)
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    conn.execute(
        "INSERT OR IGNORE INTO run (id, experiment_id, job, status, config_hash, params, error, created_at, "
        "ended_at, user, host, run_dir) VALUES (?, ?, 'unknown', 'orphaned', '', ?, ?, ?, ?, ?, 'unknown', ?)",
        (run_id, experiment_id,
         json.dumps(_json_file(folder / PARAMS_FILE), sort_keys=True), PARTIAL_NOTE, created, info.st_mtime,
         user, str(folder)),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO output (run_id, name, value) VALUES (?, ?, ?)",
        [(run_id, name, json.dumps(value, sort_keys=True))
         for name, value in _json_file(folder / OUTPUTS_FILE).items()],
    )


def _index(store: Store, report: RebuildReport) -> None:
    with store.write():
        _index_rows(store, store.db.connection(), report)


def _index_rows(store: Store, conn: sqlite3.Connection, report: RebuildReport) -> None:
    tables = ("run", "attempt", "output", "artifact", "artifact_file", "lineage", "metric_summary")
    columns = {t: _columns(conn, t) for t in tables}
    manifests = []
    for name, _ in run_folder_names(store.root):
        folder = store.runs / name
        manifest = read_manifest(folder)
        if manifest is not None and manifest["run"].get("id") == name:
            run = manifest["run"]
            experiment = _experiment_id(conn, str(run["experiment"]), float(run["created_at"]))
            _insert_row(conn, "run", _run_row(manifest, folder, experiment), columns["run"])
            manifests.append(manifest)
            report.whole += 1
        else:
            _partial_run(conn, name, folder, _experiment_id(conn, PARTIAL_EXPERIMENT, _created(folder)))
            report.partial.append(name)
    # Children once every run is in: lineage may point at any of them.
    for manifest in manifests:
        _rebuild_children(conn, manifest, columns)
        for row in manifest.get("lineage", []):
            conn.execute(
                "INSERT OR IGNORE INTO lineage (parent_id, child_id, name) "
                "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM run WHERE id = ?)",
                (row["parent_id"], row["child_id"], row["name"], row["parent_id"]),
            )
    blobs = [(sha, os.lstat(store.blobs / sha[:2] / sha[2:]).st_size, mtime)
             for sha, _, mtime in blob_files(store.root)]
    conn.executemany("INSERT OR IGNORE INTO blob (sha512, size, created_at) VALUES (?, ?, ?)", blobs)
    report.blobs = len(blobs)
    # The new database indexes history older than itself: date it from its oldest run.
    conn.execute("UPDATE store_meta SET value = CAST(MIN(CAST(value AS REAL), "
                 "COALESCE((SELECT MIN(created_at) FROM run), CAST(value AS REAL))) AS TEXT) "
                 "WHERE key = 'created_at'")


def rebuild_store(root: Path, *, allow_network_fs: bool, busy_timeout: float, yes: bool) -> RebuildReport:
    """Make a new database for the store at `root` from its run folders and blobs."""
    report = RebuildReport()
    report.kept_aside = _set_aside(root / DB_NAME, yes)
    store = open_store(root, allow_network_fs=allow_network_fs, busy_timeout=busy_timeout, fresh=True)
    try:
        _index(store, report)
    finally:
        store.close()
    return report
