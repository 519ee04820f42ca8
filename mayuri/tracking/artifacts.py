"""Artifacts on disk: saving a job's file or folder into blobs/, and putting one back as files.

Saving hashes first (SHA-512, on every core for big folders) so that content
already in blobs/ is neither read twice nor copied; new content is copied
atomically by `write_blobs`, then the artifact is recorded. Putting back
hard-links the read-only blobs into `runs/<id>/artifacts/<name>` (a copy
where links fail), so a notebook gets real file names.

Must not: follow a symlinked folder (no loops, nothing outside the artifact),
or write anywhere but blobs/ and the run's `artifacts/` folder.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from mayuri.hashing import hash_files
from mayuri.store.artifact_queries import artifact_files
from mayuri.store.artifact_records import ArtifactError, check_relative, record_artifact
from mayuri.store.blobs import blob_path, write_blobs
from mayuri.store.db import Store, open_store
from mayuri.store.gc_records import hold_blobs, release_blobs
from mayuri.store.perms import make_dirs

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


def _files_of(path: Path) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every file in a folder; symlinked folders are not entered."""
    found = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder) / name
            if full.is_file():
                found.append((full.relative_to(path).as_posix(), full))
    return found


def save_artifact(store_root: Path, run_id: str, path: Path, name: str | None, kind: str | None, *,
                  link: bool = False) -> str:
    """Copy a file or folder into blobs/ (once per content) and record it as artifact `name`.

    With `link`, files are kept by reference (hard links) where the filesystem allows.
    """
    name = check_relative(path.name if name is None else name)
    if path.is_file():
        entries, default_kind = [(path.name, path)], "file"
    elif path.is_dir():
        entries, default_kind = _files_of(path), "dir"
    else:
        raise ArtifactError(
            f"cannot save artifact {name!r}: {path} is not a file or folder.", path=path,
            hint="Write the file first, then call mayuri.artifact(path).",
        )
    store = process_store(store_root)
    digests = hash_files([full for _, full in entries])
    held = sorted({digest for digest, _ in digests})
    # Held until recorded: copying a large folder can outlast gc's grace period.
    hold_blobs(store, held, run_id)
    try:
        stored = write_blobs(store, [(full, digest) for (_, full), (digest, _) in zip(entries, digests, strict=True)],
                             link=link)
        files = [(rel, digest, size) for (rel, _), (digest, size) in zip(entries, stored, strict=True)]
        record_artifact(store, run_id, name, kind or default_kind, files)
    finally:
        release_blobs(store, held, run_id)
    return name


def _place(source: Path, target: Path, store_root: Path) -> None:
    make_dirs(target.parent, store_root)
    temporary = target.with_name(f".{target.name}.mayuri-tmp")
    if temporary.exists():
        temporary.unlink()
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def materialize(store: Store, run_id: str, run_dir: Path, name: str) -> Path:
    """The artifact as real files under the run folder (made on first use); its path."""
    name = check_relative(name)
    found = artifact_files(store, run_id, name)
    if found is None:
        raise ArtifactError(f"run {run_id[:8]} has no artifact named {name!r}.",
                            hint="See its artifacts with `mayuri show RUN`.")
    kind, files = found
    base = run_dir / ARTIFACTS_DIR / name
    if kind == "file" and len(files) == 1:
        targets = [(base, files[0])]
    else:
        targets = [(base / check_relative(f.relpath, "path inside the artifact"), f) for f in files]
        make_dirs(base, store.root)
    for target, file in targets:
        if target.is_file() and target.stat().st_size == file.size:
            continue
        source = blob_path(store, file.sha512)
        if not source.is_file():
            raise ArtifactError(
                f"artifact {name!r} of run {run_id[:8]}: the content of {file.relpath} is no longer "
                "in the store (collected by gc).",
            )
        _place(source, target, store.root)
    return base
