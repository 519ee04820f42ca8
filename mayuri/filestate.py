"""The current content digests of project files, cheaply: a `stat` per unchanged file.

A file whose (device, inode, size, mtime_ns, ctime_ns) match the stat cache
keeps its cached SHA-512, unless it was modified so close to the moment it was
hashed that a later change could share its timestamp (git's "racily clean"
rule); such files, and every file that changed, are hashed again and the
cache is updated.
"""

from __future__ import annotations

import os
import stat as stat_module
import time
from collections.abc import Iterable
from pathlib import Path

from mayuri.hashing import ABSENT, hash_files, hash_listing
from mayuri.store.db import Store
from mayuri.store.queries import stat_cache_rows
from mayuri.store.records import save_stat_cache

# Timestamps closer than this to the hashing time cannot be trusted: some
# filesystems keep mtimes with coarse granularity.
RACY_WINDOW_NS = 2_000_000_000

Digest = tuple[str, int]


def current_digests(store: Store, root: Path, entries: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Digest]:
    """Digest and size of each (relative path, kind) entry now; kind is 'file' or 'listing'."""
    wanted = list(dict.fromkeys(entries))
    result: dict[tuple[str, str], Digest] = {}
    files = [path for path, kind in wanted if kind == "file"]
    for path, kind in wanted:
        if kind == "listing":
            result[(path, kind)] = hash_listing(root / path)
    if not files:
        return result
    absolute = [os.path.join(root, p) for p in files]
    cached = stat_cache_rows(store, absolute)
    to_hash: list[tuple[str, str, os.stat_result]] = []
    for rel, abs_path in zip(files, absolute, strict=True):
        try:
            st = os.stat(abs_path)
        except (FileNotFoundError, NotADirectoryError):
            result[(rel, "file")] = (ABSENT, 0)
            continue
        if not stat_module.S_ISREG(st.st_mode):
            result[(rel, "file")] = (ABSENT, 0)
            continue
        hit = cached.get(abs_path)
        if (
            hit is not None
            and hit[:5] == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            and st.st_mtime_ns + RACY_WINDOW_NS <= hit[6]
        ):
            result[(rel, "file")] = (hit[5], st.st_size)
        else:
            to_hash.append((rel, abs_path, st))
    if to_hash:
        hashed_at = time.time_ns()
        digests = hash_files([a for _, a, _ in to_hash], sum(s.st_size for _, _, s in to_hash))
        updates = []
        for (rel, abs_path, st), (digest, size) in zip(to_hash, digests, strict=True):
            result[(rel, "file")] = (digest, size)
            if digest != ABSENT:
                updates.append(
                    (abs_path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest, hashed_at)
                )
        save_stat_cache(store, updates)
    return result
