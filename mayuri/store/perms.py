"""Group permissions in a shared store: files Mayuri creates keep the folder's group access.

Teammates share one store through a group-writable folder; a file created with
a private umask would lock the others out.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def share_like_folder(path: Path, folder: Path) -> None:
    """Give `path` the group read/write bits when `folder` is group-writable."""
    try:
        folder_mode = folder.stat().st_mode
        if not folder_mode & stat.S_IWGRP:
            return
        mode = path.stat().st_mode
        wanted = mode | stat.S_IRGRP | stat.S_IWGRP
        if stat.S_ISDIR(mode):
            wanted |= stat.S_IXGRP | (folder_mode & stat.S_ISGID)
        if wanted != mode:
            os.chmod(path, stat.S_IMODE(wanted))
    except OSError:
        # Not our file (another user made it): its owner's process already fixed it.
        pass


def make_dirs(path: Path, store_root: Path) -> Path:
    """mkdir -p that applies the store's group sharing to each folder it creates."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):
        share_like_folder(folder, store_root)
    return path
