"""Sizing and deleting inside the store only: every path checked, no symlink ever followed.

The only ways gc removes files are `remove_run_folder`, `remove_blob_file`
and `remove_temp_file`. Each takes a name (a run id, a digest, a temp file
name), never a path from the database, builds the path under the store's
real root, and refuses anything that is not a plain folder or file of the
expected shape. A symlink is never followed: sizes and deletions use
`lstat`, and `shutil.rmtree` removes links themselves, not their targets.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_HEX = re.compile(r"^[0-9a-f]+$")
TEMP_FOLDER = "tmp"


@dataclass(frozen=True)
class Tree:
    """Regular files under a folder, and the disk space the whole folder takes (links not followed)."""

    files: int
    bytes: int


def usage(info: os.stat_result) -> int:
    """Disk space a file or folder takes, as `du` counts it (its size where blocks are not reported)."""
    return info.st_blocks * 512 if info.st_blocks else info.st_size


def real_root(store_root: Path) -> Path:
    """The store's root with symlinks resolved once; every deletion is checked against it."""
    return Path(os.path.realpath(store_root))


def _plain_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def run_folder(root: Path, run_id: str) -> Path | None:
    """`<root>/runs/<run_id>` if it is a plain folder (not a link) of a well-formed id, else None."""
    if not _RUN_ID.match(run_id) or not _plain_dir(root / "runs"):
        return None
    folder = root / "runs" / run_id
    return folder if _plain_dir(folder) else None


def tree_size(folder: Path) -> Tree:
    """Files under `folder` and the disk space that removing it frees, without following any link.

    Folders count too. A file with hard links elsewhere (an artifact put back
    from blobs/ is a hard link to its blob) frees nothing when the folder
    goes, so its space counts only when every link to it is inside the folder.
    """
    try:
        size = usage(os.lstat(folder))
    except OSError:
        return Tree(0, 0)
    files = 0
    linked: dict[tuple[int, int], list[int]] = {}
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
                size += usage(info)
            elif stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                files += 1
                seen = linked.setdefault(
                    (info.st_dev, info.st_ino), [0, info.st_nlink, usage(info)]
                )
                seen[0] += 1
            else:
                files += stat.S_ISREG(info.st_mode)
                size += usage(info)
    size += sum(space for count, links, space in linked.values() if count >= links)
    return Tree(files, size)


def remove_run_folder(root: Path, run_id: str) -> int:
    """Delete a run's folder; returns the disk space freed (0 if there was no such folder)."""
    folder = run_folder(root, run_id)
    if folder is None:
        return 0
    before = tree_size(folder).bytes
    # rmtree unlinks symlinks it meets instead of descending into them, and
    # refuses a top folder that is a link (fd-based on Linux: no races).
    shutil.rmtree(folder, ignore_errors=True)
    left = tree_size(folder).bytes if os.path.lexists(folder) else 0
    return before - left


def blob_files(root: Path) -> Iterator[tuple[str, int, float]]:
    """(sha512, disk space, mtime) of each plain file in the blob fan-out folders; links, strays skipped."""
    blobs = root / "blobs"
    if not _plain_dir(blobs):
        return
    for fan in os.scandir(blobs):
        if len(fan.name) != 2 or not _HEX.match(fan.name) or not fan.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(fan.path):
            if not _HEX.match(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                yield fan.name + entry.name, usage(info), info.st_mtime


def _blob_path(root: Path, digest: str) -> Path | None:
    if len(digest) < 3 or not _HEX.match(digest) or not _plain_dir(root / "blobs" / digest[:2]):
        return None
    return root / "blobs" / digest[:2] / digest[2:]


def remove_blob_file(root: Path, digest: str, older_than: float) -> int | None:
    """Delete a blob file if it is a plain file last written before `older_than`.

    Returns the disk space freed (0 when it was already gone), or None when it was
    left in place (rewritten just now, a link, or not removable).
    """
    path = _blob_path(root, digest)
    if path is None:
        return None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(info.st_mode) or info.st_mtime >= older_than:
        return None
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError:
        return None
    # A blob still hard-linked into a run folder (a put-back artifact) frees nothing yet.
    return usage(info) if info.st_nlink == 1 else 0


def temp_files(root: Path) -> Iterator[tuple[str, int, float]]:
    """(name, disk space, mtime) of plain files in `blobs/tmp` (leftovers of interrupted blob writes)."""
    folder = root / "blobs" / TEMP_FOLDER
    if not _plain_dir(folder):
        return
    for entry in os.scandir(folder):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            yield entry.name, usage(info), info.st_mtime


def remove_temp_file(root: Path, name: str, older_than: float) -> int | None:
    """Delete a leftover temp file last written before `older_than`; space freed, or None if kept."""
    if "/" in name or name in (".", "..") or "\0" in name:
        return None
    path = root / "blobs" / TEMP_FOLDER / name
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_mtime >= older_than:
            return None
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError:
        return None
    return usage(info)


def run_folder_names(root: Path) -> Iterator[tuple[str, float]]:
    """(name, mtime) of the plain folders under `runs/` (to find folders no run row owns)."""
    runs = root / "runs"
    if not _plain_dir(runs):
        return
    for entry in os.scandir(runs):
        if _RUN_ID.match(entry.name) and entry.is_dir(follow_symlinks=False):
            yield entry.name, entry.stat(follow_symlinks=False).st_mtime
