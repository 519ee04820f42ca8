"""The hit log: cache hits appended to a file in the store, folded into the runs' rows later.

An all-cached `mayuri run` writes one thing, its cache hits (each reused
run's `hits` and last use). As a SQLite write that costs more than the rest of
the warm check: a WAL commit, then a checkpoint when the last connection
closes. So a scheduler counts the hits it has not counted in a transaction
already by appending one line per hit to `hits.log` in the store folder.

- Appenders hold a shared flock on the log while they write one `write()`.
- A fold moves every logged hit into `run.hits` and `run.last_used_at`, inside
  a write transaction (so folds never overlap): it renames the log aside,
  takes an exclusive flock on it (waiting for appenders already writing), reads
  it, updates the rows and deletes it. An appender that opened the log before
  the rename sees that its file is no longer the log and opens the new one.
  gc folds before it tombstones a run, a scheduler when it registers, and the
  appender itself when the log has grown large. A log renamed aside by a fold
  that died is folded by the next one; a fold whose transaction fails after
  deleting what it read loses those counts (never a run).
- Readers add the hits still in the log to the rows they read
  (`pending_hits`), so `show`, `cache ls` and gc's plan see every hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Collection
from pathlib import Path

from mayuri.errors import StoreError
from mayuri.store.db import Store
from mayuri.store.perms import share_like_folder

LOG_NAME = "hits.log"
# A log renamed aside by a fold is "hits.log.<token>".
_TAKEN_PREFIX = LOG_NAME + "."
# The appender folds the log itself past this size (about 1,200 hits), which
# keeps what readers parse small.
FOLD_AT_BYTES = 64 * 1024


def log_hits(store: Store, run_ids: Collection[str], when: float) -> None:
    """Count a cache hit on each run, at time `when`: one append, and a fold when the log is large."""
    if not run_ids:
        return
    size = append_hits(store.root, run_ids, when)
    if size >= FOLD_AT_BYTES:
        # Busy or read-only: the next writer folds it.
        with contextlib.suppress(StoreError), store.write(wait=0.0):
            fold_hits(store)


def append_hits(store_root: Path, run_ids: Collection[str], when: float) -> int:
    """Append one line per hit to the log; returns the log's size after the append."""
    data = "".join(f"{run_id} {when!r}\n" for run_id in run_ids).encode()
    path = os.path.join(store_root, LOG_NAME)
    try:
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if _is_the_log(fd, path):
                    share_like_folder(Path(path), Path(store_root))
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    return os.fstat(fd).st_size
            finally:
                os.close(fd)
    except OSError as exc:
        raise StoreError(
            f"cannot record cache hits in the store's hit log ({exc.strerror}).",
            path=Path(path),
            hint="Check that you may write the store folder; a shared store needs a group-writable "
            "folder (chmod 2770).",
        ) from exc


def _is_the_log(fd: int, path: str) -> bool:
    """Whether the open file is still the log (a fold may have renamed it, or folded and deleted it)."""
    mine = os.fstat(fd)
    if mine.st_nlink == 0:
        return False
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def fold_hits(store: Store) -> int:
    """Move every logged hit into its run's row; must run inside `store.write()`. Returns the hits moved."""
    if not store.db.in_transaction():
        raise RuntimeError("fold_hits needs the store's write transaction: folds must not overlap")
    root = str(store.root)
    with contextlib.suppress(FileNotFoundError):
        os.rename(os.path.join(root, LOG_NAME), os.path.join(root, _TAKEN_PREFIX + uuid.uuid4().hex))
    taken = [os.path.join(root, name) for name in _taken_names(root)]
    counts: dict[str, list[float]] = {}
    # The files stay open, and locked, until they are deleted: an appender that
    # opened one before the rename must find it gone, not write into it unread.
    with contextlib.ExitStack() as held:
        try:
            _read_taken(taken, counts, held)
            if counts:
                store.db.cursor().executemany(
                    "UPDATE run SET hits = hits + ?, last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                    [(int(hits), last, run_id) for run_id, (hits, last) in counts.items()],
                )
            for path in taken:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        except OSError as exc:
            raise StoreError(f"cannot fold the store's hit log ({exc.strerror}).",
                             path=Path(exc.filename or root), hint="Check that you may write the store folder.") from exc
    return int(sum(hits for hits, _ in counts.values()))


def _read_taken(taken: list[str], counts: dict[str, list[float]], held: contextlib.ExitStack) -> None:
    for path in taken:
        try:
            file = held.enter_context(open(path, "rb"))
        except FileNotFoundError:
            continue
        # Waits for the appenders that were writing when the log was renamed.
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        _tally(file.read(), counts)


def pending_hits(store_root: Path) -> dict[str, tuple[int, float]]:
    """run id -> (hits, latest use) still in the log, for readers to add to what the rows say."""
    counts: dict[str, list[float]] = {}
    root = str(store_root)
    for name in (LOG_NAME, *_taken_names(root)):
        try:
            with open(os.path.join(root, name), "rb") as file:
                _tally(file.read(), counts)
        except FileNotFoundError:
            continue
    return {run_id: (int(hits), last) for run_id, (hits, last) in counts.items()}


def log_stamp(store_root: Path) -> tuple[int, int] | None:
    """(inode, size) of the log, which changes with every append and fold; None when there is none."""
    try:
        info = os.stat(os.path.join(store_root, LOG_NAME))
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size


def with_pending(run_id: str, hits: int, last_used: float | None,
                 pending: dict[str, tuple[int, float]]) -> tuple[int, float | None]:
    """A run's (hits, last use) as its row says, plus what the log still holds for it."""
    logged = pending.get(run_id)
    if logged is None:
        return hits, last_used
    return hits + logged[0], max(last_used or 0.0, logged[1])


def _taken_names(root: str) -> list[str]:
    try:
        return [name for name in os.listdir(root) if name.startswith(_TAKEN_PREFIX)]
    except FileNotFoundError:
        return []


def _tally(data: bytes, counts: dict[str, list[float]]) -> None:
    # Only whole lines: a reader may see an append that is not finished.
    for line in data.split(b"\n")[:-1]:
        fields = line.split()
        if len(fields) != 2:
            continue
        try:
            run_id, when = fields[0].decode("ascii"), float(fields[1])
        except ValueError:
            continue
        entry = counts.setdefault(run_id, [0, when])
        entry[0] += 1
        entry[1] = max(entry[1], when)
