"""What kind of filesystem a folder lives on, so a store on a network share can be refused.

SQLite's locking (and WAL above all) is not safe on network filesystems, and a
filesystem whose type cannot be found is treated as one. This module only
reads the mount table (/proc/self/mounts on Linux, the output of `mount` on
macOS and the BSDs); what to do about the answer is `db.py`'s business.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

# Read at call time, so that tests can point it at a fake mount table.
MOUNTS_FILE = "/proc/self/mounts"

NETWORK_FSTYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "lustre", "gpfs",
        "ceph", "fuse.ceph", "fuse.cephfs", "glusterfs", "fuse.glusterfs", "9p", "afs",
        "beegfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.juicefs", "davfs",
        "fuse.davfs2", "ncpfs", "coda", "orangefs", "pvfs2", "panfs", "afpfs", "webdav", "unknown",
    }
)

_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> str:
    # The kernel writes space, tab, newline and backslash in mount points as
    # \ooo; other bytes (UTF-8 names) are written as they are.
    if b"\\" not in field:
        return os.fsdecode(field)  # the usual case: no regular expression to run
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), field))


def _linux_mounts(mounts_file: str) -> list[tuple[str, str]]:
    table = []
    with open(mounts_file, "rb") as mounts:
        for line in mounts:
            fields = line.split(None, 3)  # device, mount point, type; the options are not needed
            if len(fields) >= 3:
                table.append((_unescape(fields[1]), os.fsdecode(fields[2])))
    return table


# `mount` on macOS and the BSDs: "/dev/disk1s1 on / (apfs, local, journaled)".
_BSD_MOUNT = re.compile(r"^.* on (?P<point>.+) \((?P<type>[^,)]+)[,)]")


def bsd_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, fstype) pairs from the output of `mount` where there is no /proc."""
    return [(m["point"], m["type"]) for m in map(_BSD_MOUNT.match, text.splitlines()) if m]


def _mount_table(mounts_file: str) -> list[tuple[str, str]]:
    if os.path.exists(mounts_file) or sys.platform.startswith("linux"):
        return _linux_mounts(mounts_file)
    done = subprocess.run(["mount"], capture_output=True, text=True, timeout=10, check=True)
    return bsd_mounts(done.stdout)


def fstype_of(path: Path, mounts_file: str | None = None) -> str:
    """The fstype of the mount holding `path` ('unknown' when no mount table matches)."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        table = _mount_table(mounts_file or MOUNTS_FILE)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for point, kind in table:
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        # The last of equally long matches wins: it was mounted on top.
        if inside and len(point) >= len(best):
            best, best_type = point, kind
    return best_type


def is_network_fs(path: Path, mounts_file: str | None = None) -> tuple[bool, str]:
    """Whether `path` is on a filesystem where SQLite locking cannot be trusted, and its type."""
    kind = fstype_of(path, mounts_file)
    return kind in NETWORK_FSTYPES, kind
