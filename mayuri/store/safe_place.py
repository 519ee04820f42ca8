"""Putting a blob back as a file inside the store, without ever following a link.

Run folders are writable by their jobs, and in a shared store by teammates:
a job may plant `artifacts -> ~/` in its own folder, hoping that a teammate
who fetches its artifact writes through it. So the folders are opened one
at a time from the store's root with `openat(O_NOFOLLOW | O_DIRECTORY)`,
the file is linked or copied to a temporary name in the last one and
renamed over the entry (a rename replaces a link, never writes through it),
and the bytes are checked against the digest. Nothing here writes outside
the store's root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

from mayuri.store.artifact_records import ArtifactError
from mayuri.store.perms import group_shared

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def _refuse(where: list[str], exc: OSError) -> ArtifactError:
    return ArtifactError(
        f"refusing to write the artifact through {'/'.join(where)} in the store: it is not a plain folder "
        f"({exc.strerror}); a link planted in a run folder could point anywhere.",
        hint="Look at that run folder (`ls -la`); remove the link, then fetch the artifact again.",
    )


def _folder(parent: int, name: str, shared: int, where: list[str]) -> int:
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _refuse(where, exc) from exc
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o777, dir_fd=parent)
    try:
        fd = os.open(name, _FOLDER, dir_fd=parent)
    except OSError as exc:
        raise _refuse(where, exc) from exc
    if shared:
        info = os.fstat(fd)
        if info.st_uid == os.geteuid():
            os.fchmod(fd, stat.S_IMODE(info.st_mode) | ((info.st_mode & stat.S_IRWXU) >> 3) | stat.S_ISGID)
    return fd


def _digest(fd: int, out: int | None = None) -> str:
    hasher = hashlib.sha512()
    while chunk := os.read(fd, _CHUNK):
        hasher.update(chunk)
        if out is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
    return hasher.hexdigest()


def _already(folder: int, name: str, source: os.stat_result, digest: str) -> bool:
    """Whether `name` is already a plain file with the right content (the blob itself, or a checked copy)."""
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != source.st_size:
        return False
    if (info.st_dev, info.st_ino) == (source.st_dev, source.st_ino):
        return True
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return False
    try:
        return _digest(fd) == digest
    finally:
        os.close(fd)


def _put(folder: int, temporary: str, source: Path, mode: int) -> str:
    """Link (or copy) the blob to `temporary` in `folder`; returns the digest of its bytes."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=folder)
    blob = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            os.link(source, temporary, dst_dir_fd=folder, follow_symlinks=False)
        except OSError:
            # Another user's blob (protected hard links), another disk: a copy, readable as the blob is.
            out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=folder)
            try:
                os.fchmod(out, mode)
                return _digest(blob, out)
            finally:
                os.close(out)
        return _digest(blob)
    finally:
        os.close(blob)


def place_blob(root: Path, folders: list[str], name: str, source: Path, digest: str) -> None:
    """Make `<root>/<folders...>/<name>` hold the blob `source` (of `digest`), following no link."""
    shared = group_shared(root)
    info = os.stat(source)
    # A copy is never more readable than the blob, but the group of a shared store may read it.
    mode = stat.S_IMODE(info.st_mode) & 0o444 | (stat.S_IRGRP if shared else 0)
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for depth, part in enumerate(folders):
            fds.append(_folder(fds[-1], part, shared, folders[:depth + 1]))
        folder = fds[-1]
        if _already(folder, name, info, digest):
            return
        temporary = f".{name}.mayuri-{os.getpid()}.tmp"
        got = _put(folder, temporary, source, mode)
        if got != digest:
            os.unlink(temporary, dir_fd=folder)
            raise ArtifactError(
                f"the blob of {'/'.join([*folders, name])} is damaged: its content no longer matches its digest.",
                path=source, hint="Run `mayuri doctor`; the artifact must be saved again.",
            )
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        for fd in fds:
            os.close(fd)
