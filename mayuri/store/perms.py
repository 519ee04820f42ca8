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


def current_umask() -> int:
    """This process's umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_text_atomically(path: Path, text: str) -> None:
    """Write `path` whole (temporary file, then rename) with the mode a plain create would give it.

    A temporary file is made 0600 whatever the umask: left so, outputs.json
    of a shared store would be private to the job's user.
    """
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    share_like_folder(path, path.parent)
