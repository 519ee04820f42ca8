"""Artifacts on disk: saving a job's file or folder into blobs/, and putting one back as files.

Saving hashes first (SHA-512, on every core for big folders) so that content
already in blobs/ is neither read twice nor copied; new content is copied
atomically by `write_blobs`, then the artifact is recorded. Putting back
hard-links the read-only blobs into `runs/<id>/artifacts/<name>` (a copy
where links fail), so a notebook gets real file names.

On a remote node (MAYURI_SPOOL set) saving only checks and spools the files;
the head stores them.

Must not: follow any symlink, saving (a link inside an artifact is refused)
or putting back (folders are opened one by one with O_NOFOLLOW), or write
anywhere but blobs/ and the run's `artifacts/` folder.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from mayuri.executors.remote.spool import spool_artifact, spooling
from mayuri.hashing import hash_files
from mayuri.store.artifact_queries import artifact_files
from mayuri.store.artifact_records import ArtifactError, check_relative, record_artifact
from mayuri.store.blobs import blob_path, write_blobs
from mayuri.store.db import Store, open_store
from mayuri.store.gc_records import hold_blobs, release_blobs
from mayuri.store.safe_place import place_blob

ARTIFACTS_DIR = "artifacts"

_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def process_store(root: Path, *, allow_network_fs: bool = True, create: bool = False,
                  busy_timeout: float = 30.0) -> Store:
    """This process's store at `root`, opened once (per-thread connections come with it).

    In a job the defaults apply: the scheduler has already accepted this store.
    """
    with _stores_lock:
        store = _stores.get(root)
        if store is None:
            store = _stores[root] = open_store(
                root, allow_network_fs=allow_network_fs, create=create, busy_timeout=busy_timeout
            )
        return store


def _forget_after_fork() -> None:
    global _stores_lock
    _stores.clear()
    _stores_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _files_of(path: Path, name: str) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every file in a folder; refuses any link inside it.

    A link is never followed: it could publish a private file elsewhere (a
    teammate's key, ~/.ssh) to the whole group, or loop.
    """
    found = []
    links: list[Path] = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        links.extend(Path(folder) / d for d in dirs if os.path.islink(os.path.join(folder, d)))
        for entry in sorted(files):
            full = Path(folder) / entry
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                links.append(full)
            elif stat.S_ISREG(info.st_mode):
                found.append((full.relative_to(path).as_posix(), full))
    if links:
        shown = ", ".join(f"{link.relative_to(path)} -> {os.readlink(link)}" for link in links[:3])
        raise ArtifactError(
            f"cannot save artifact {name!r}: it contains {len(links)} symbolic link(s) ({shown}); Mayuri "
            "never follows a link inside an artifact.", path=path,
            hint="Copy the files the links point to into the folder, or save them as artifacts of their own.",
        )
    return found


def artifact_entries(path: Path, name: str) -> tuple[list[tuple[str, Path]], str]:
    """(relative path, absolute path) of the files of artifact `name` at `path`, and its kind; checks them."""
    if path.is_symlink():
        raise ArtifactError(
            f"cannot save artifact {name!r}: {path} is a symbolic link (to {os.readlink(path)}); Mayuri never "
            "follows links when saving.", path=path,
            hint="Pass the real path (os.path.realpath(path)) if that is the file you mean to keep.",
        )
    if path.is_file():
        return [(path.name, path)], "file"
    if path.is_dir():
        return _files_of(path, name), "dir"
    raise ArtifactError(
        f"cannot save artifact {name!r}: {path} is not a file or folder.", path=path,
        hint="Write the file first, then call mayuri.artifact(path).",
    )


def save_artifact(store_root: Path, run_id: str, path: Path, name: str | None, kind: str | None, *,
                  link: bool = False) -> str:
    """Copy a file or folder into blobs/ (once per content) and record it as artifact `name`.

    With `link`, files are kept by reference (hard links) where the filesystem allows.
    """
    name = check_relative(path.name if name is None else name)
    entries, default_kind = artifact_entries(path, name)
    if spooling():
        # On a remote node: the head stores it (see mayuri.executors.remote.spool).
        return spool_artifact(path, name, kind, folder=default_kind == "dir", link=link)
    store_artifact(process_store(store_root), run_id, name, kind or default_kind, entries, link=link)
    return name


def store_artifact(store: Store, run_id: str, name: str, kind: str, entries: list[tuple[str, Path]], *,
                   link: bool = False) -> None:
    """Write checked files (`artifact_entries`) to blobs/ and record them as artifact `name` of a run."""
    digests = hash_files([full for _, full in entries])
    held = sorted({digest for digest, _ in digests})
    # Held until recorded: copying a large folder can outlast gc's grace period.
    hold_blobs(store, held, run_id)
    try:
        stored = write_blobs(store, [(full, digest) for (_, full), (digest, _) in zip(entries, digests, strict=True)],
                             link=link)
        files = [(rel, digest, size) for (rel, _), (digest, size) in zip(entries, stored, strict=True)]
        record_artifact(store, run_id, name, kind, files)
    finally:
        release_blobs(store, held, run_id)


def materialize(store: Store, run_id: str, name: str) -> Path:
    """The artifact as real files under the run folder (made on first use); its path.

    Made only under `<store>/runs/<run id>/artifacts/`, folder by folder
    without following a link (see `store/safe_place.py`), each file checked
    against its digest: a run folder is writable by its job (and, in a
    shared store, by teammates), so nothing in it is trusted.
    """
    name = check_relative(name)
    found = artifact_files(store, run_id, name)
    if found is None:
        raise ArtifactError(f"run {run_id[:8]} has no artifact named {name!r}.",
                            hint="See its artifacts with `mayuri show RUN`.")
    kind, files = found
    parts = ["runs", check_relative(run_id, "run id"), ARTIFACTS_DIR, *name.split("/")]
    single = kind == "file" and len(files) == 1
    for file in files:
        source = blob_path(store, file.sha512)
        if not source.is_file():
            raise ArtifactError(
                f"artifact {name!r} of run {run_id[:8]}: the content of {file.relpath} is no longer "
                "in the store (collected by gc).",
            )
        inner = [] if single else check_relative(file.relpath, "path inside the artifact").split("/")
        where = [*parts, *inner]
        place_blob(store.root, where[:-1], where[-1], source, file.sha512)
    return store.root.joinpath(*parts)
