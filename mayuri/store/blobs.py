"""Content-addressed blobs: files kept by SHA-512, deduplicated, written atomically.

A blob is written to a temporary name in the same folder, fsynced, renamed
into place and the folder fsynced, before its row is registered: a registered
blob is always whole (docs/decisions.md, decision 8).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

from mayuri.errors import StoreError
from mayuri.hashing import file_digest_path, hash_files
from mayuri.store.db import Store
from mayuri.store.perms import make_dirs


def blob_path(store: Store, digest: str) -> Path:
    """Where the blob with `digest` lives."""
    return file_digest_path(store.blobs, digest)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreFull(StoreError):
    """The device holding the store ran out of space (or a file size limit) while a blob was written."""


def _full(store: Store, exc: OSError) -> StoreFull:
    return StoreFull(
        f"no space left on the device holding the store ({exc.strerror}); the blob being written was removed.",
        path=store.root,
        hint="Free some space (`mayuri gc`, `df -h`), then run again: finished runs are kept and reused.",
    )


def _copy_in(store: Store, source: Path) -> tuple[str, int]:
    try:
        return _copy(store, source)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise _full(store, exc) from exc
        raise


def _copy(store: Store, source: Path) -> tuple[str, int]:
    folder = make_dirs(store.blobs / "tmp", store.root)
    # Never through a link (it could publish a file from anywhere), never more readable than the source.
    src_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    mode = stat.S_IMODE(os.fstat(src_fd).st_mode) & 0o444
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix="blob-", delete=False)
    hasher = hashlib.sha512()
    size = 0
    try:
        with handle, open(src_fd, "rb") as src:
            while chunk := src.read(1 << 20):
                hasher.update(chunk)
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        # The digest is taken of the bytes copied, not trusted from the caller:
        # the source may have changed since it was hashed.
        actual = hasher.hexdigest()
        final = blob_path(store, actual)
        if final.exists():
            os.unlink(handle.name)
        else:
            make_dirs(final.parent, store.root)
            os.chmod(handle.name, mode)
            os.replace(handle.name, final)
            _fsync_dir(final.parent)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise
    return actual, size


def _link_in(store: Store, source: Path, digest: str) -> tuple[str, int] | None:
    """Keep a file as a blob by reference: a hard link (no copy), when the filesystem allows and it is unchanged.

    The linked inode is hashed again: a source rewritten since the caller hashed
    it is not taken (None, and the caller copies). The blob shares the source's
    inode, which becomes read-only like every blob.
    """
    final = blob_path(store, digest)
    folder = make_dirs(store.blobs / "tmp", store.root)
    temporary = folder / f"link-{os.getpid()}-{digest[:16]}"
    try:
        os.link(source, temporary)
    except OSError:
        return None  # another filesystem, or links not allowed: copied instead
    try:
        [(actual, size)] = hash_files([temporary])
        if actual != digest:
            return None
        make_dirs(final.parent, store.root)
        os.chmod(temporary, 0o444)
        os.replace(temporary, final)
        _fsync_dir(final.parent)
        return digest, size
    finally:
        if temporary.exists():
            os.unlink(temporary)


def _register(store: Store, blobs: list[tuple[str, int]]) -> None:
    if not blobs:
        return
    now = time.time()
    with store.write():
        store.db.cursor().executemany(
            "INSERT OR IGNORE INTO blob (sha512, size, created_at) VALUES (?, ?, ?)",
            [(digest, size, now) for digest, size in blobs],
        )


def write_blobs(store: Store, sources: list[tuple[Path, str | None]], *, link: bool = False) -> list[tuple[str, int]]:
    """Copy files into the blob store, once per content; returns (sha512, size) per source.

    A source given with a known digest whose blob exists is neither read nor copied.
    With `link`, a new blob is a hard link to its source where the filesystem
    allows (checkpoints: kept by reference, not by copy).
    New blobs are registered in one transaction, after they are whole on disk.
    """
    present: dict[str, int] = {}
    for _, digest in sources:
        if digest and digest not in present:
            try:
                present[digest] = blob_path(store, digest).stat().st_size
            except FileNotFoundError:
                continue
    # Register what is about to be reused before relying on it (registering
    # again restarts gc's grace period), then look again: a gc sweep between
    # the first look and the registration may have taken it.
    _register(store, list(present.items()))
    results: list[tuple[str, int]] = []
    copied: list[tuple[str, int]] = []
    for source, digest in sources:
        if digest in present and blob_path(store, digest).exists():
            results.append((digest, present[digest]))
        else:
            made = (_link_in(store, source, digest) if link and digest else None) or _copy_in(store, source)
            results.append(made)
            copied.append(made)
    _register(store, copied)
    return results
