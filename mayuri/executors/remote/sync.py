"""Bringing a node's run folder to the head as it changes: appended bytes, or a whole file when replaced.

On the node, `FolderSync.changes()` looks at every file under the run folder
and returns what is new since its last call: the bytes appended to a file
that only grew (logs, the spool's metric frames) or the whole file when it
was replaced or rewritten (`outputs.json`, written to a temporary name and
renamed). On the head, `apply()` writes them into the head's run folder,
never outside it. Between the two, the engine carries the changes (a Ray
generator's items, for one).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# (path relative to the run folder, offset to write at (-1: the whole file, replacing it), bytes)
Change = tuple[str, int, bytes]
# What one call returns at most; the rest comes with the next call.
MAX_BYTES = 8 << 20


class FolderSync:
    """What the head has of a node's run folder (per file: its inode, size and mtime when last sent)."""

    def __init__(self, root: Path, skip: tuple[str, ...] = ()) -> None:
        self.root = root
        self.skip = skip
        self.sent: dict[str, tuple[int, int, int]] = {}

    def changes(self, max_bytes: int = MAX_BYTES) -> list[Change]:
        """What changed since the last call (at most about `max_bytes`)."""
        found: list[Change] = []
        budget = max_bytes
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, self.root)
                if rel.startswith(self.skip) or name.endswith(".tmp"):
                    continue
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue  # a link, a socket: only the run's own files go
                known = self.sent.get(rel)
                now = (info.st_ino, info.st_size, info.st_mtime_ns)
                if known == now:
                    continue
                grew = known is not None and known[0] == info.st_ino and info.st_size >= known[1]
                offset = known[1] if grew and known is not None else 0
                size = min(info.st_size - offset, budget)
                try:
                    with open(path, "rb") as handle:
                        handle.seek(offset)
                        data = handle.read(size)
                except OSError:
                    continue
                found.append((rel, offset if grew else -1, data))
                # A file read in part is looked at again next time, from where this stopped.
                self.sent[rel] = (info.st_ino, offset + len(data), info.st_mtime_ns if
                                  offset + len(data) == info.st_size else -1)
                budget -= len(data)
                if budget <= 0:
                    return found
        return found


def apply(run_dir: Path, changes: list[Change], bases: dict[str, int] | None = None) -> None:
    """Write a node's changes into the head's run folder (a path leaving it is refused).

    `bases`: files that earlier attempts appended to (the logs): the node's
    file of this attempt goes after what they hold, from that offset.
    """
    root = os.path.realpath(run_dir)
    for rel, at, data in changes:
        offset = max(at, 0) + bases[rel] if bases and rel in bases else at
        target = os.path.realpath(os.path.join(root, rel))
        if not target.startswith(root + os.sep):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if offset < 0:
            tmp = f"{target}.sync-tmp"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
            continue
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
