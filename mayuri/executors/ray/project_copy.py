"""Copy mode's project: packed on the head once per run, unpacked once per node, kept while it is used.

The head packs the project's files (`pack`: their paths, modes and bytes, and
symlinks as links) without the store, `.git`, virtualenvs (folders holding
`pyvenv.cfg`), caches and the `exclude` globs, and puts the package in Ray's
object store once per `mayuri run`. A task uses its node's copy,
`<tmp>/mayuri-ray-<user>/projects/<digest>` (`node_copy`): the first task of
a node that needs it unpacks it into a temporary folder renamed into place (a
task beside it never sees half a copy); the others find it. The package is a
task argument, which Ray brings to a node once and hands to each task there
without a copy (a pickle buffer); a task that fetched it itself would count
as blocked, and Ray would start another worker in its place.

Why not Ray's runtime environment (`working_dir`): every worker of a job
that has one starts through Ray's setup script, which imports Ray once more
before the worker does (about half a second of CPU per worker, the largest
part of what a short run paid over bare Ray tasks), and Ray's packing leaves
out the files `.gitignore` names without saying so.

A task holds a shared lock on its copy's lock file while its job runs. When
a node unpacks a new copy, it deletes the copies that no task holds and none
used for an hour (a task that needs one again unpacks it again: the package
is in the object store while its run lasts). `hold` and `delete_unless_held`
serve the node's run folders too (`node.attempt_task`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mayuri.errors import ConfigError
from mayuri.units import format_size

# Never shipped, at any depth, whatever `exclude` says (the store is added by its own path).
ALWAYS_EXCLUDED = [".git", ".venv", "venv", ".tox", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"]
# More than this is data, which belongs on a path every node has (`exclude` keeps it out).
MAX_PROJECT = 512 << 20
# A copy no task holds and none used this long is deleted when its node unpacks another.
KEEP_UNUSED = 3600.0


@dataclass(frozen=True)
class Package:
    """The project's files to ship: `data` (a deflated tar) and the digest of its paths, modes and bytes."""

    digest: str
    data: bytes
    files: int
    size: int


class Excluded:
    """Gitignore-style globs: `*` and `?` within a name, `**` across folders; a glob with a slash before
    its end is relative to the project root, one without matches a name at any depth; a trailing slash
    matches folders only; `!` before a glob takes back what an earlier one left out (the last glob that
    matches a path decides, and what is inside a folder left out stays out, as in git)."""

    def __init__(self, globs: Sequence[str]) -> None:
        self._rules = [(*_compiled(g.strip().removeprefix("!")), g.strip().startswith("!"))
                       for g in globs if g.strip().removeprefix("!")]

    def __call__(self, rel: str, is_dir: bool) -> bool:
        verdict = False
        for rule, dirs_only, taken_back in self._rules:
            if (is_dir or not dirs_only) and rule.fullmatch(rel):
                verdict = not taken_back
        return verdict


def _compiled(glob: str) -> tuple[re.Pattern[str], bool]:
    dirs_only = glob.endswith("/")
    body = glob.strip().rstrip("/")
    anchored = "/" in body
    body = body.lstrip("/")
    out, i = [], 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        elif body[i] == "[" and (end := body.find("]", i + 2)) != -1:
            inner = body[i + 1:end]
            out.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    return re.compile(("" if anchored else "(?:.*/)?") + "".join(out)), dirs_only


def excluded_globs(project_root: Path, store_root: Path, extra: Sequence[str]) -> list[str]:
    """What is never shipped: the `exclude` globs, then ALWAYS_EXCLUDED and the store (by its path), last
    so that no `!` of `exclude` takes them back."""
    found = [*extra, *ALWAYS_EXCLUDED]
    try:
        found.append("/" + store_root.resolve().relative_to(project_root.resolve()).as_posix())
    except ValueError:
        pass  # the store is not inside the project: nothing of it is shipped anyway
    return found


def pack(project_root: Path, excluded: Callable[[str, bool], bool]) -> Package:
    """The project's files as a Package; exit 2 (ConfigError) when they are too large or one is unreadable."""
    digest = hashlib.sha256()
    raw = io.BytesIO()
    sizes: dict[str, int] = {}
    files = total = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, entry in _walk(project_root, "", excluded):
            info = tarfile.TarInfo(rel)
            if entry.is_symlink():
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.path)
                content = info.linkname.encode()
            else:
                status = entry.stat()
                top = rel.split("/", 1)[0]
                sizes[top] = sizes.get(top, 0) + status.st_size
                total += status.st_size
                if total > MAX_PROJECT:
                    raise _too_large(project_root, sizes)
                content = _read(entry, rel)
                info.size, info.mode, info.mtime = len(content), stat.S_IMODE(status.st_mode), int(status.st_mtime)
                files += 1
            # The digest names what a job could see (paths, modes, bytes, link targets), not when it was written.
            digest.update(f"{info.type!r}\0{rel}\0{info.mode:o}\0{len(content)}\0".encode())
            digest.update(content)
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    # Deflated fast: code compresses well, and a node on another machine gets fewer bytes.
    return Package(digest.hexdigest()[:32], zlib.compress(raw.getvalue(), 1), files, total)


def _walk(root: Path, prefix: str, excluded: Callable[[str, bool], bool]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to the project, entry) of each file and symlink to ship, by name (a stable digest)."""
    with os.scandir(root / prefix if prefix else root) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        rel = prefix + entry.name
        if entry.is_symlink():
            if not excluded(rel, False):
                yield rel, entry
        elif entry.is_dir():
            if not excluded(rel, True) and not os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                yield from _walk(root, rel + "/", excluded)
        elif entry.is_file() and not excluded(rel, False):
            yield rel, entry


def _read(entry: os.DirEntry[str], rel: str) -> bytes:
    try:
        with open(entry.path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot ship the project file {rel} to the Ray nodes: {exc.strerror or exc}.",
                          hint="Make it readable, or leave it out with [executor.ray] exclude.") from None


def _too_large(project_root: Path, sizes: dict[str, int]) -> ConfigError:
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    named = ", ".join(f"{name} ({format_size(size)})" for name, size in largest)
    return ConfigError(
        f"the files of {project_root} to ship to the Ray nodes are more than {format_size(MAX_PROJECT)} "
        f"(the largest: {named}).",
        hint='Leave data out with [executor.ray] exclude (like ["data/**"]) and read it from a path every '
             'node has, or use files = "shared" on a shared filesystem.')


@contextmanager
def node_copy(root: Path, digest: str, package: bytes | memoryview) -> Iterator[Path]:
    """This node's copy of the project `digest` under `root` (unpacked from `package`, Package.data, when it
    is missing), held (a shared lock) until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    held = hold(root / f"{digest}.lock")
    try:
        target = root / digest
        if not target.is_dir():
            _unpack(package, root, target)
            _sweep(root, digest)
        yield target
    finally:
        os.close(held)


def hold(lock: Path) -> int:
    """A descriptor of `lock` under a shared lock (what it guards is in use while the descriptor is open),
    its time of last use now."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            # A sweep may have deleted the lock file between the open and the lock: then lock the new one.
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                os.utime(fd)
                return fd
        except FileNotFoundError:
            pass  # deleted after our lock too: the loop opens the new one
        os.close(fd)


def _unpack(data: bytes | memoryview, root: Path, target: Path) -> None:
    tmp = root / f".{target.name}.{os.getpid()}.{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(zlib.decompress(data)), mode="r") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts:
                    raise ValueError(f"a project package names {member.name!r}")
                path = tmp.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                if member.issym():
                    os.symlink(member.linkname, path)
                elif member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    path.write_bytes(source.read())
                    os.chmod(path, member.mode)
                    os.utime(path, (member.mtime, member.mtime))
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_dir():
            raise  # not a task beside this one having unpacked it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def delete_unless_held(lock: Path, folder: Path, unused_since: float | None = None) -> bool:
    """Delete `folder` and its `lock` when no one holds the lock (and, with `unused_since`, when it was
    last used before then); whether it was deleted."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if unused_since is not None and os.fstat(fd).st_mtime >= unused_since:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        os.unlink(lock)
        return True
    except BlockingIOError:
        return False  # held
    finally:
        os.close(fd)


def _sweep(root: Path, keep: str) -> None:
    """Delete the copies (and half-unpacked folders) that no task holds and none used for KEEP_UNUSED."""
    old = time.time() - KEEP_UNUSED
    for entry in os.scandir(root):
        if entry.name.startswith(".") and entry.is_dir() and entry.stat().st_mtime < old:
            shutil.rmtree(entry.path, ignore_errors=True)
        elif entry.name.endswith(".lock") and entry.name != f"{keep}.lock":
            delete_unless_held(Path(entry.path), root / entry.name.removesuffix(".lock"), old)
