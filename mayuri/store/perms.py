"""Group permissions in a shared store: files Mayuri creates keep the folder's group access.

Teammates share one store through a group-writable folder (chmod 2770, setgid
so that new files keep its group); a file created under a private umask would
lock the others out. This module only adds group bits, it never takes any
away, and it never changes files in a folder that is not group-writable.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def group_shared(folder: Path) -> bool:
    """Whether `folder` is group-writable: a store that teammates share, whose files Mayuri shares too."""
    try:
        return bool(os.stat(folder).st_mode & stat.S_IWGRP)
    except OSError:
        return False


def share_like_folder(path: Path, folder: Path) -> None:
    """When `folder` is group-writable, give the group of `path` what its owner has.

    A file the owner may write (the database, a log) becomes group read/write;
    a read-only blob stays read-only for everyone; a folder also gets the
    setgid bit of `folder`, so that what is made inside keeps the group.
    """
    try:
        folder_mode = folder.stat().st_mode
        if not folder_mode & stat.S_IWGRP:
            return
        mode = path.stat().st_mode
        wanted = mode | ((mode & stat.S_IRWXU) >> 3)
        if stat.S_ISDIR(mode):
            wanted |= folder_mode & stat.S_ISGID
        if wanted != mode:
            os.chmod(path, stat.S_IMODE(wanted))
    except OSError:
        # Not our file (another user made it): its owner's process already fixed it.
        pass


def make_dirs(path: Path, store_root: Path) -> Path:
    """mkdir -p that applies the store's group sharing to each folder it creates."""
    if path.is_dir():
        return path  # the usual case, at every open of the store: one stat
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):
        share_like_folder(folder, store_root)
    return path


def share_umask(folder: Path) -> None:
    """In a group-writable store, let this process and the jobs it starts create group-writable files.

    Job output (logs, checkpoints, anything written to the run folder) must be
    readable by the teammates who share the store, whatever their umask.
    """
    if not group_shared(folder):
        return
    current = os.umask(0)
    os.umask(current & ~0o070)


def write_text_atomically(path: Path, text: str) -> None:
    """Write `path` whole (a temporary file beside it, then a rename), with the mode a plain create gives.

    The temporary file is created with mode 0666, which the umask trims as it
    would for a plain create (`tempfile.mkstemp` makes it 0600: left so,
    outputs.json of a shared store would be private to the job's user; and
    importing tempfile costs every job that sets an output a few ms).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        tmp = path.parent / f".{path.name}-{os.urandom(6).hex()}"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    share_like_folder(path, path.parent)
