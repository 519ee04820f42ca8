"""Recording artifacts: the rows naming a run's files and folders kept in blobs/.

Writes only, each in one BEGIN IMMEDIATE transaction; the blobs themselves
are written (and registered) before by `mayuri.store.blobs.write_blobs`, so a
recorded artifact never points at a half-written blob. Also the one rule for
what an artifact name or a path inside one may be, used when saving and when
files are put back on disk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import PurePosixPath

from mayuri.errors import MayuriError
from mayuri.store.db import Store

KINDS = ("file", "dir", "checkpoint")
# A Windows drive ("C:" or "C:/..."): absolute there, and never meant as a name.
_DRIVE = re.compile(r"^[A-Za-z]:(/|$)")


class ArtifactError(MayuriError, ValueError):
    """An artifact name or path is unsafe, or the artifact does not exist."""

    title = "artifact error"


def check_relative(name: str, what: str = "artifact name") -> str:
    """`name` as a clean relative POSIX path; refuses `..`, absolute paths, NUL and empty names."""
    if not isinstance(name, str) or not name.strip():
        raise ArtifactError(f"the {what} must be a non-empty string, not {name!r}.")
    if "\0" in name:
        raise ArtifactError(f"the {what} {name!r} contains a NUL character.")
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise ArtifactError(
            f"the {what} {name!r} is an absolute path.",
            hint="Give a relative name such as 'model' or 'plots/loss.png'.",
        )
    parts = [part for part in PurePosixPath(text).parts if part != "."]
    if ".." in parts:
        raise ArtifactError(
            f"the {what} {name!r} climbs out of its folder with '..'.",
            hint="Give a name inside the artifact, such as 'model' or 'plots/loss.png'.",
        )
    if not parts:
        raise ArtifactError(f"the {what} {name!r} names no file.")
    return "/".join(parts)


def record_artifact(
    store: Store, run_id: str, name: str, kind: str, files: Sequence[tuple[str, str, int]]
) -> None:
    """Record artifact `name` of a run as (relpath, sha512, size) files; replaces one of that name."""
    if kind not in KINDS:
        raise ArtifactError(f"artifact kind must be one of {', '.join(KINDS)}, not {kind!r}.")
    name = check_relative(name)
    rows = [(run_id, name, check_relative(rel, "path inside the artifact"), sha, size) for rel, sha, size in files]
    with store.write():
        cursor = store.db.cursor()
        cursor.execute("DELETE FROM artifact_file WHERE run_id = ? AND name = ?", (run_id, name))
        cursor.execute("DELETE FROM artifact WHERE run_id = ? AND name = ?", (run_id, name))
        cursor.execute(
            "INSERT INTO artifact (run_id, name, kind, size, created_at) VALUES (?, ?, ?, ?, ?)",
            (run_id, name, kind, sum(size for _, _, size in files), time.time()),
        )
        cursor.executemany(
            "INSERT INTO artifact_file (run_id, name, relpath, sha512, size) VALUES (?, ?, ?, ?, ?)", rows
        )


def remove_artifacts(store: Store, run_id: str, names: Sequence[str]) -> None:
    """Forget artifacts of a run (their blobs go with the next gc when nothing else holds them)."""
    if not names:
        return
    with store.write():
        cursor = store.db.cursor()
        cursor.executemany("DELETE FROM artifact_file WHERE run_id = ? AND name = ?", [(run_id, n) for n in names])
        cursor.executemany("DELETE FROM artifact WHERE run_id = ? AND name = ?", [(run_id, n) for n in names])
