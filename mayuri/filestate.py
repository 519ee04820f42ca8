"""The current content digests of project files, cheaply: a `stat` per unchanged file.

A file whose (device, inode, size, mtime_ns, ctime_ns) match the stat cache
keeps its cached SHA-512, unless it was modified so close to the moment it was
hashed that a later change could share its timestamp (git's "racily clean"
rule); such files, and every file that changed, are hashed again and the
cache is updated.

`unchanged_except` is the warm cache check's fast path: a `stat` per file,
no digest decoded. Its input is the run's closure snapshot (one row: the
files the stat cache vouched for and their cached stat fields, packed) when
the snapshot still matches every file; otherwise the closure joined with the
stat cache (one query), after which a clean result is snapshotted again. A
snapshot entry claims exactly what the stat-cache entry it was copied from
claimed (a file with these stat fields has the recorded content), so a stale
snapshot can only send the check the slow way, never vouch for a change.
Symbolic links in a closure (kind 'link') are checked by a `readlink` each
and recorded as their target string behind LINK_MARK. Closure paths are
relative to the project folder, or absolute for files outside it.
Nothing here decides what a change means; that is the cache's job.
"""

from __future__ import annotations

import array
import codecs
import functools
import itertools
import json
import operator
import os
import stat as stat_module
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mayuri.hashing import ABSENT, LINK_MARK, hash_files, hash_listing
from mayuri.store.db import Store
from mayuri.store.queries import closure_snapshot, closure_stat_rows, stat_cache_rows
from mayuri.store.records import save_stat_cache

# Timestamps closer than this to the hashing time cannot be trusted: some
# filesystems keep mtimes with coarse granularity.
RACY_WINDOW_NS = 2_000_000_000

Digest = tuple[str, int]

_UTF8_PATHS = codecs.lookup(sys.getfilesystemencoding()).name == "utf-8"

# A row of `closure_stat_rows`: its kind is None when the stat cache vouches for
# the file; then come the stat fields it cached, in the order of _STAT_FIELDS.
_PATH = operator.itemgetter(0)
_KIND = operator.itemgetter(1)
_CACHED_FIELDS = operator.itemgetter(slice(3, 8))
# mtime first: it is what an edit changes, and tuples compare from the left.
_STAT_FIELDS_NAMES = ("st_mtime_ns", "st_ctime_ns", "st_ino", "st_size", "st_dev")
_STAT_FIELDS = operator.attrgetter(*_STAT_FIELDS_NAMES)


def link_digest(path: str) -> Digest:
    """What a link entry records: its target string (behind LINK_MARK), or ABSENT when it is no link."""
    try:
        return LINK_MARK + os.readlink(path), 0
    except OSError:
        return ABSENT, 0


def current_digests(store: Store, root: Path, entries: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Digest]:
    """Digest and size of each (path, kind) entry now; kind is 'file', 'listing' or 'link'."""
    wanted = list(dict.fromkeys(entries))
    result: dict[tuple[str, str], Digest] = {}
    files = [path for path, kind in wanted if kind == "file"]
    for path, kind in wanted:
        if kind == "listing":
            result[(path, kind)] = hash_listing(root / path)
        elif kind == "link":
            result[(path, kind)] = link_digest(os.path.join(root, path))
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


def unchanged_except(store: Store, root: Path, run_id: str) -> list[tuple[str, str]]:
    """The (path, kind) closure entries of a run that cannot be shown unchanged without hashing.

    An entry is shown unchanged when it is a file whose stat matches a trusted
    stat-cache entry holding the recorded digest, a file recorded as absent that
    is still absent, or a listing whose entries hash as recorded. Every other
    entry is returned, for the caller to digest with `current_digests`.
    """
    prefix = os.path.join(root, "")
    # Relative to the project folder, the kernel walks only the part of each
    # path inside the project: these stats cost less than absolute ones. The
    # usual case, run from the project folder itself, needs no folder opened.
    here = os.getcwd() == os.path.normpath(root)
    folder = None if here else _open_folder(root)
    try:
        stat: Callable[[str | bytes], os.stat_result] = (
            os.stat if here
            else functools.partial(os.stat, dir_fd=folder) if folder is not None
            else _stat_under(prefix)
        )
        snapshot = closure_snapshot(store, run_id)
        if snapshot is not None and snapshot[0] == prefix:
            slow = _snapshot_rest(stat, snapshot[1], snapshot[2], snapshot[3])
            if slow is not None:
                return _slow_suspects(prefix, slow)
        rows = closure_stat_rows(store, run_id, prefix, RACY_WINDOW_NS)
        trusted = list(itertools.filterfalse(_KIND, rows))
        suspects = [(path, "file") for path in _stat_changed(stat, trusted)]
        # The rest (few): listings, files recorded absent, files the stat cache cannot vouch for.
        rest = [(path, str(kind), str(recorded)) for path, kind, recorded, *_ in filter(_KIND, rows)]
        suspects += _slow_suspects(prefix, rest)
        if not suspects:
            _snapshot(store, run_id, prefix, trusted, rest)
        return suspects
    finally:
        if folder is not None:
            os.close(folder)


def _slow_suspects(prefix: str, rest: Iterable[Sequence[str]]) -> list[tuple[str, str]]:
    """Those of the (path, kind, recorded) entries that a stat cannot vouch for which may have changed."""
    suspects = []
    for path, kind, recorded in rest:
        where = os.path.join(prefix, path)  # an absolute path (outside the project) stays itself
        if kind == "listing":
            if hash_listing(where)[0] != recorded:
                suspects.append((path, kind))
        elif kind == "link":
            if link_digest(where)[0] != recorded:
                suspects.append((path, kind))
        elif recorded != ABSENT or _exists(where):
            suspects.append((path, kind))
    return suspects


def _packed(fields: Iterable[tuple[int, ...]]) -> bytes:
    """Stat fields as the snapshot keeps them: little-endian signed 64-bit integers, in order."""
    packed = array.array("q", itertools.chain.from_iterable(fields))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def _snapshot_rest(
    stat: Callable[[str | bytes], os.stat_result], paths: bytes, stats: bytes, rest: str
) -> list[list[str]] | None:
    """The snapshot's slow-way entries when every snapshotted file's stat is as cached; else None."""
    try:
        # Stat'ed as the UTF-8 bytes they are kept as, when that is what the
        # filesystem encoding would make of them: a str is encoded on every call.
        names: list[str] | list[bytes] = (
            [] if not paths else paths.split(b"\0") if _UTF8_PATHS else paths.decode().split("\0")
        )
        expected = array.array("q")
        expected.frombytes(stats)
        if sys.byteorder != "little":
            expected.byteswap()
        if len(expected) != len(_STAT_FIELDS_NAMES) * len(names):
            return None
        # All in C (map, zip, any), stopping at the first file whose stat differs.
        cached = iter(expected)
        if any(map(operator.ne, map(_STAT_FIELDS, map(stat, names)), zip(*[cached] * len(_STAT_FIELDS_NAMES), strict=True))):
            return None
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # a file is gone or unreadable: the slow way says which
    entries: list[list[str]] = json.loads(rest)
    return entries


def _snapshot(store: Store, run_id: str, prefix: str, trusted: list[tuple[Any, ...]],
              rest: Sequence[Sequence[str]]) -> None:
    """Keep what was just verified as the run's snapshot, for the next check."""
    from mayuri.store.snapshot_records import save_closure_snapshot

    try:
        stats = _packed(map(_CACHED_FIELDS, trusted))
    except OverflowError:
        return  # a stat field beyond 64 bits: this closure is checked the slow way
    try:
        paths = "\0".join(map(_PATH, trusted)).encode()
    except UnicodeEncodeError:
        return  # a path that is not UTF-8 (kept with surrogates): checked the slow way
    save_closure_snapshot(store, run_id, prefix, paths, stats, json.dumps(rest))


def _stat_changed(stat: Callable[[str | bytes], os.stat_result], rows: list[tuple[Any, ...]]) -> list[str]:
    """The paths of `rows` (trusted files) whose stat differs from the cached one, or that are gone."""
    paths = list(map(_PATH, rows))
    try:
        # The whole pass runs in C (map, compress): with thousands of files, the
        # per-file cost of a Python loop is as much as the stat itself.
        changed = map(operator.ne, map(_STAT_FIELDS, map(stat, paths)), map(_CACHED_FIELDS, rows))
        return list(itertools.compress(paths, changed))
    except OSError:
        # Some file is gone or unreadable: find which, one by one.
        return [row[0] for row in rows if _stat_fields(stat, row[0]) != _CACHED_FIELDS(row)]


def _stat_fields(stat: Callable[[str | bytes], os.stat_result], path: str) -> tuple[int, ...] | None:
    try:
        return _STAT_FIELDS(stat(path))  # type: ignore[no-any-return]
    except OSError:
        return None


def _stat_under(prefix: str) -> Callable[[str | bytes], os.stat_result]:
    """`os.stat` of paths relative to `prefix` (a folder path ending in a separator), str or bytes."""
    encoded = os.fsencode(prefix)

    def stat(path: str | bytes) -> os.stat_result:
        if path[:1] in ("/", b"/"):
            return os.stat(path)  # a file outside the project
        return os.stat(encoded + path if isinstance(path, bytes) else prefix + path)

    return stat


def _open_folder(root: Path) -> int | None:
    if os.stat not in os.supports_dir_fd:
        return None
    try:
        return os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _exists(path: str) -> bool:
    """Whether `current_digests` would see a file here (a regular file), as opposed to ABSENT."""
    try:
        return stat_module.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # unreadable: let `current_digests` report it
