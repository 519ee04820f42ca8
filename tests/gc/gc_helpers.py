"""Helpers for gc tests: a real store in a temporary project, filled through the store's own writers.

Runs are made with `create_run`/`finish_run`, code blobs with `write_blobs`,
lineage with `add_lineage`, exactly as the scheduler makes them; only their
clocks are set back (ages are what gc policies look at), with plain SQL and
`os.utime`, since waiting 30 days is not an option.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.hashing import hash_file
from mayuri.store import Store
from mayuri.store.blobs import blob_path, write_blobs
from mayuri.store.records import (
    ClosureRow,
    add_lineage,
    create_run,
    ensure_experiment,
    finish_run,
    new_run_id,
    start_attempt,
)

DAY = 86400.0


def disk_usage(*folders: Path) -> int:
    """Disk space of everything under `folders`, as `du` counts it: each inode once, links not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        for dirpath, dirs, files in os.walk(folder):
            for name in dirs + files:
                info = os.lstat(os.path.join(dirpath, name))
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_blocks * 512
    return total


def dangling_references(store: Store) -> list[str]:
    """Digests that a kept run's code closure or an artifact names but whose blob is missing or wrong."""
    rows = store.db.execute_sql(
        "SELECT DISTINCT file.sha512 FROM closure_entry JOIN file ON file.id = closure_entry.file_id "
        "JOIN run ON run.id = closure_entry.run_id WHERE closure_entry.role = 'code' AND run.status != 'collected' "
        "UNION SELECT sha512 FROM artifact_file"
    ).fetchall()
    bad = []
    for (sha,) in rows:
        path = blob_path(store, sha)
        if not path.is_file() or hash_file(path)[0] != sha:
            bad.append(sha)
    return bad


@dataclass
class Filler:
    """Makes runs, folders and blobs in a real store."""

    store: Store
    project: Path
    counter: int = 0
    ids: list[str] = field(default_factory=list)

    def code(self, text: str) -> ClosureRow:
        """A code file in the project, kept in blobs/ like the scheduler keeps it."""
        self.counter += 1
        path = self.project / "src" / f"mod{self.counter}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        [(sha, size)] = write_blobs(self.store, [(path, None)])
        return ClosureRow("code", path.relative_to(self.project).as_posix(), "file", sha, size)

    def run(
        self,
        job: str = "train",
        *,
        experiment: str = "exp",
        status: str = "succeeded",
        age_days: float = 0.0,
        size: int = 10_000,
        code: list[ClosureRow] | None = None,
        params: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        parents: dict[str, str] | None = None,
        pinned: bool = False,
    ) -> str:
        """One run whose last use was `age_days` ago, with a folder holding `size` bytes."""
        run_id = new_run_id()
        exp_id = ensure_experiment(self.store, experiment)
        run_dir = self.store.runs / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "out.bin").write_bytes(os.urandom(size))
        params = dict(params or {"n": len(self.ids)})
        create_run(
            self.store,
            run_id=run_id,
            experiment_id=exp_id,
            job=job,
            kind="job",
            config_hash=job,
            params=params,
            config=params,
            upstream={},
            reason="new",
            run_dir=run_dir,
        )
        add_lineage(self.store, run_id, parents or {})
        start_attempt(self.store, run_id, 1, pid=os.getpid(), pid_create_time=None, params=params)
        if status not in ("queued", "running"):
            fingerprint = hashlib.sha512(run_id.encode()).hexdigest()
            finish_run(
                self.store,
                run_id,
                status=status,
                exit_code=0 if status == "succeeded" else 1,
                fingerprint=fingerprint if status == "succeeded" else None,
                closure=code or [],
                outputs=outputs or {},
            )
        elif status == "queued":
            self.store.db.execute_sql("UPDATE run SET status = 'queued' WHERE id = ?", (run_id,))
        when = time.time() - age_days * DAY
        self.store.db.execute_sql(
            "UPDATE run SET created_at = ?, ended_at = ?, last_used_at = ?, pinned = ? WHERE id = ?",
            (
                when - 60,
                when if status not in ("queued", "running") else None,
                when if status not in ("queued", "running") else None,
                int(pinned),
                run_id,
            ),
        )
        self.ids.append(run_id)
        return run_id

    def age_blobs(self, seconds: float) -> None:
        """Make every blob look written (and registered) `seconds` ago."""
        when = time.time() - seconds
        self.store.db.execute_sql("UPDATE blob SET created_at = ?, touched_at = NULL", (when,))
        for dirpath, _dirs, files in os.walk(self.store.blobs):
            for name in files:
                os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)

    def status(self, run_id: str) -> str:
        return str(
            self.store.db.execute_sql("SELECT status FROM run WHERE id = ?", (run_id,)).fetchone()[
                0
            ]
        )


def gc_json(project: Any, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `mayuri gc ... --json` through the real CLI; (exit code, parsed output)."""
    done = project.mayuri("gc", *args, "--json")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)
