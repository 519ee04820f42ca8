"""Splitting work into shards: the arithmetic, and the in-job side (`mayuri.shard()` and friends).

A sharded job (`shards:` in the experiment file) runs once per shard, each
process told its index and the count (MAYURI_SHARD, MAYURI_SHARDS) and,
with `shards: {files: GLOB}`, the files that are its share
(MAYURI_SHARD_FILES). Files go to shards by a stable hash of their
project-relative path, so adding, removing or editing one file changes one
shard's share and nothing else. Pure functions and environment reads only:
cheap to import in a job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

# Set by type checkers only: importing `typing` would cost every job's start (~2 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

SHARD_VAR = "MAYURI_SHARD"
SHARDS_VAR = "MAYURI_SHARDS"
FILES_VAR = "MAYURI_SHARD_FILES"


def bounds(length: int, index: int, count: int) -> tuple[int, int]:
    """[start, stop) of shard `index` of `count` over `length` items: contiguous, sizes within one."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist (index must be 0 to count - 1).")
    size, extra = divmod(length, count)
    # The first `extra` shards take one item more.
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def part_of(items: Sequence[T], index: int, count: int) -> Sequence[T]:
    """Shard `index` of `count`'s part of a sequence."""
    start, stop = bounds(len(items), index, count)
    return items[start:stop]


def shard_for_path(path: str, count: int) -> int:
    """The shard a file goes to: a stable hash of its project-relative POSIX path."""
    import hashlib  # here: shard_of() and shard() need none, and it costs every job's start

    digest = hashlib.sha256(path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def assign_files(paths: Sequence[str], count: int) -> list[list[str]]:
    """The files of each shard (sorted), by `shard_for_path`."""
    parts: list[list[str]] = [[] for _ in range(count)]
    for path in sorted(paths):
        parts[shard_for_path(path, count)].append(path)
    return parts


# -- in the job ---------------------------------------------------------------


def shard() -> tuple[int, int]:
    """(index, count) of the shard this job is; (0, 1) in a job that is not sharded."""
    return int(os.environ.get(SHARD_VAR, "0")), int(os.environ.get(SHARDS_VAR, "1"))


def shard_of(items: Sequence[T]) -> Sequence[T]:
    """This shard's part of any sequence: contiguous, the same for the same inputs, sizes within one."""
    index, count = shard()
    return part_of(items, index, count)


def shard_files() -> list[Path]:
    """The files that are this shard's share (`shards: {files: GLOB}`), as absolute paths."""
    from mayuri.job import NotInJob

    listed = os.environ.get(FILES_VAR)
    if listed is None:
        raise NotInJob("this job has no shard files (MAYURI_SHARD_FILES is not set).",
                       hint="Give the job `shards: {files: GLOB, count: N}` in the experiment file.")
    root = Path(os.environ.get("MAYURI_PROJECT_ROOT", "."))
    return [root / path for path in json.loads(listed)]
