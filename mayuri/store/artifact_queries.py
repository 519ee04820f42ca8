"""Reading artifacts back: a run's artifacts and the files of one. Read-only."""

from __future__ import annotations

from dataclasses import dataclass

from mayuri.store.db import Store


@dataclass(frozen=True)
class ArtifactRow:
    """One artifact of a run."""

    name: str
    kind: str
    size: int
    created_at: float
    files: int


@dataclass(frozen=True)
class ArtifactFile:
    """One file of an artifact: its path inside the artifact, blob digest and size."""

    relpath: str
    sha512: str
    size: int


def artifacts_of(store: Store, run_id: str) -> list[ArtifactRow]:
    """A run's artifacts by name, with their file counts."""
    rows = store.db.execute_sql(
        "SELECT a.name, a.kind, a.size, a.created_at, "
        "(SELECT count(*) FROM artifact_file f WHERE f.run_id = a.run_id AND f.name = a.name) "
        "FROM artifact a WHERE a.run_id = ? ORDER BY a.name",
        (run_id,),
    )
    return [ArtifactRow(*row) for row in rows]


def artifact_files(store: Store, run_id: str, name: str) -> tuple[str, list[ArtifactFile]] | None:
    """(kind, files) of one artifact, or None when the run has no artifact of that name."""
    row = store.db.execute_sql(
        "SELECT kind FROM artifact WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    if row is None:
        return None
    files = store.db.execute_sql(
        "SELECT relpath, sha512, size FROM artifact_file WHERE run_id = ? AND name = ? ORDER BY relpath",
        (run_id, name),
    )
    return row[0], [ArtifactFile(*f) for f in files]
