"""What kind of filesystem a folder lives on, so a store on a network share can be refused.

SQLite's locking (and WAL above all) is not safe on network filesystems.
"""

from __future__ import annotations

import os
from pathlib import Path

NETWORK_FSTYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "lustre", "gpfs",
        "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "9p", "afs", "beegfs",
        "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "unknown",
    }
)


def fstype_of(path: Path, mounts_file: str = "/proc/self/mounts") -> str:
    """The fstype of the mount holding `path` ('unknown' when no mount table matches)."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        with open(mounts_file, encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                # The mount table escapes spaces and tabs as octal.
                point = fields[1].encode().decode("unicode_escape")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, best_type = point, fields[2]
    except OSError:
        return "unknown"
    return best_type


def is_network_fs(path: Path, mounts_file: str = "/proc/self/mounts") -> tuple[bool, str]:
    """Whether `path` is on a filesystem where SQLite locking cannot be trusted, and its type."""
    kind = fstype_of(path, mounts_file)
    return kind in NETWORK_FSTYPES, kind
