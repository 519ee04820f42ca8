"""How the files of two runs' closures differ, as text: the unified diffs `mayuri diff` and the dashboard show.

Reads the closure entries of both runs and, for each file whose content
differs, the two kept blobs (code and small text files, see
`mayuri.text_files`). A file that was not kept (binary, larger than the
limit, or collected) is reported without a diff.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from mayuri.hashing import ABSENT
from mayuri.store.blobs import blob_path
from mayuri.store.db import Store
from mayuri.store.queries import closures
from mayuri.text_files import TEXT_LIMIT, is_text


@dataclass
class FileDiff:
    """One file that differs between two runs: its path, both digests (None: not in that run), the diff."""

    path: str
    left: str | None
    right: str | None
    lines: list[str] = field(default_factory=list)
    # Why there is no text diff ("binary or larger than 1 MiB", ...), or "" when there is one.
    note: str = ""

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.startswith("+") and not line.startswith("+++"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.startswith("-") and not line.startswith("---"))


def _text(store: Store, digest: str | None) -> list[str] | None:
    """The lines of a kept blob; [] for a file that was absent; None when the text was not kept."""
    if digest is None or digest == ABSENT:
        return []
    path = blob_path(store, digest)
    try:
        if path.stat().st_size > TEXT_LIMIT:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if not is_text(data[:8192]):
        return None
    return data.decode("utf-8", "replace").splitlines(keepends=True)


def file_diffs(store: Store, left_id: str, right_id: str, *, with_text: bool = True) -> list[FileDiff]:
    """The files (not folder listings) of two runs' closures that differ, with unified diffs when kept."""
    rows = closures(store, [left_id, right_id])
    left = {c.path: c.sha512 for c in rows.get(left_id, []) if c.kind == "file"}
    right = {c.path: c.sha512 for c in rows.get(right_id, []) if c.kind == "file"}
    diffs = []
    for path in sorted(left.keys() | right.keys()):
        a, b = left.get(path), right.get(path)
        if a == b:
            continue
        diff = FileDiff(path, a, b)
        if with_text:
            old, new = _text(store, a), _text(store, b)
            if old is None or new is None:
                diff.note = "no text diff: binary, larger than 1 MiB, or not kept"
            else:
                lines = difflib.unified_diff(old, new, f"a/{path} ({left_id[:8]})", f"b/{path} ({right_id[:8]})")
                diff.lines = [line if line.endswith("\n") else line + "\n" for line in lines]
        diffs.append(diff)
    return diffs
