"""Content identity: small pure functions that hash configs, files and listings.

Contract (pinned by golden tests; changing any of it invalidates every cache):
- canonical JSON is `json.dumps(obj, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False, allow_nan=True)`;
- structured hashes are SHA-512 over `<kind>\\0<canonical json>`, so that two
  kinds of thing never collide;
- file contents are plain SHA-512 of the bytes (what `sha512sum` prints);
- a folder listing is SHA-512 of its sorted entry names joined by `\\n`;
- a path that does not exist has the digest `ABSENT`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ABSENT = "absent"
# A symbolic link in a closure records its target string behind this mark, where files have a SHA-512.
LINK_MARK = "->"
_CHUNK = 1 << 20
# Below this many bytes in all, threads cost more than they save.
_PARALLEL_MIN_BYTES = 8 << 20


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value` (sorted keys, compact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_structure(kind: str, value: Any) -> str:
    """SHA-512 hex of a JSON-able value, tagged by what kind of thing it is."""
    payload = kind.encode() + b"\0" + canonical_json(value).encode()
    return hashlib.sha512(payload).hexdigest()


def hash_bytes(data: bytes) -> str:
    """SHA-512 hex of bytes."""
    return hashlib.sha512(data).hexdigest()


# One read buffer per thread, reused: allocating a fresh 1 MiB buffer per file
# costs more than hashing a small source file.
_buffers = threading.local()


def _read_buffer() -> tuple[bytearray, memoryview]:
    try:
        pair: tuple[bytearray, memoryview] = _buffers.pair
    except AttributeError:
        buffer = bytearray(_CHUNK)
        pair = _buffers.pair = (buffer, memoryview(buffer))
    return pair


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """SHA-512 hex of a file's contents and its size; `(ABSENT, 0)` if it does not exist."""
    digest = hashlib.sha512()
    size = 0
    buffer, view = _read_buffer()
    try:
        with open(path, "rb", buffering=0) as handle:
            while True:
                count = handle.readinto(buffer)
                if not count:
                    break
                # hashlib releases the GIL for large updates: threads hash in parallel.
                digest.update(view[:count])
                size += count
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT, 0
    return digest.hexdigest(), size


def hash_files(
    paths: Sequence[str | os.PathLike[str]], total_bytes: int | None = None
) -> list[tuple[str, int]]:
    """Hash many files, on every core when there is enough to hash; results in input order."""
    workers = min(os.cpu_count() or 1, len(paths))
    if workers <= 1:
        return [hash_file(path) for path in paths]
    if total_bytes is not None and total_bytes < _PARALLEL_MIN_BYTES:
        return [hash_file(path) for path in paths]
    sizes = [_size(path) for path in paths]
    if sum(sizes) < _PARALLEL_MIN_BYTES:
        return [hash_file(path) for path in paths]
    # Imported here: a warm cache check never hashes, and this costs start-up time.
    from concurrent.futures import ThreadPoolExecutor

    # Largest first, so that one big file does not start last and leave a core idle.
    order = sorted(range(len(paths)), key=sizes.__getitem__, reverse=True)
    results: list[tuple[str, int]] = [(ABSENT, 0)] * len(paths)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, digest in zip(order, pool.map(hash_file, [paths[i] for i in order]), strict=True):
            results[index] = digest
    return results


def _size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def hash_listing(folder: str | os.PathLike[str]) -> tuple[str, int]:
    """SHA-512 of a folder's sorted entry names and their count; `(ABSENT, 0)` if it is gone."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT, 0
    return hash_bytes("\n".join(names).encode("utf-8", "surrogateescape")), len(names)


def file_digest_path(folder: Path, digest: str) -> Path:
    """Where a content-addressed file with `digest` lives under `folder` (two-level fan-out)."""
    return folder / digest[:2] / digest[2:]
