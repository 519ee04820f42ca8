"""`mayuri init`: a commented mayuri.toml (written with tomlkit) and an empty store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomlkit

from mayuri.config import CONFIG_NAME, load_settings
from mayuri.store import open_store
from mayuri.store.db import DB_NAME, database_empty, store_content


@dataclass(frozen=True)
class InitResult:
    config: Path
    store: Path
    created_config: bool
    # The .gitignore that now lists the store (None: not a git repository, store outside it, or listed already).
    gitignore: Path | None = None
    # (run folders, blobs) that a database made by this init does not index (a lost database).
    unindexed: tuple[int, int] = (0, 0)


def default_config(name: str) -> tomlkit.TOMLDocument:
    """The commented mayuri.toml that `mayuri init` writes."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Mayuri project settings. Paths are relative to this file's folder."))
    doc.add(tomlkit.nl())
    project = tomlkit.table()
    project.add("name", name)
    doc.add("project", project)

    store = tomlkit.table()
    store.add(tomlkit.comment("Where runs, blobs and mayuri.db live. Point several projects (or"))
    store.add(tomlkit.comment("teammates, through a group-writable folder) at one path to share it."))
    store.add("path", ".mayuri")
    store.add(tomlkit.comment("SQLite locking is unsafe on NFS/SMB; set true only if you accept that."))
    store.add("allow_network_fs", False)
    store.add(tomlkit.comment("Seconds to wait for another process's write lock before giving up."))
    store.add("busy_timeout", 30)
    doc.add("store", store)

    scheduler = tomlkit.table()
    scheduler.add(tomlkit.comment("How many jobs run at once at most (default: number of CPU cores)."))
    scheduler.add("max_parallel", 4)
    scheduler.add(tomlkit.comment('GPUs Mayuri may use: "all" or a list of indices, e.g. [0, 1].'))
    scheduler.add("gpus", "all")
    scheduler.add(tomlkit.comment("Seconds a job gets to exit after SIGTERM before SIGKILL."))
    scheduler.add("kill_grace", 10)
    doc.add("scheduler", scheduler)

    cache = tomlkit.table()
    cache.add(tomlkit.comment("Parts of the environment that count in the cache key, from"))
    cache.add(tomlkit.comment('"python", "platform", "packages", "git", "gpu". Always recorded.'))
    cache.add("key_env", tomlkit.array())
    cache.add(tomlkit.comment("Folders outside the project whose files count like project files (data"))
    cache.add(tomlkit.comment("read elsewhere is listed as untracked by `mayuri show --why`):"))
    cache.add(tomlkit.comment('roots = ["/data/shared", "~/datasets"]'))
    doc.add("cache", cache)

    gc = tomlkit.table()
    gc.add(tomlkit.comment("Default policy of `mayuri gc` (flags override it); see docs/gc.md."))
    gc.add(tomlkit.comment('older_than = "30d"     # runs not used (run or reused) for that long'))
    gc.add(tomlkit.comment("keep_last = 3          # but keep the newest N succeeded runs of each job"))
    gc.add(tomlkit.comment('max_size = "50GiB"     # then least recently used first until the store fits'))
    gc.add("grace", "1h")
    doc.add("gc", gc)

    doc.add(tomlkit.nl())
    doc.add(tomlkit.comment("Personal overrides of params, applied to your runs only:"))
    doc.add(tomlkit.comment("[user.yourname]"))
    doc.add(tomlkit.comment("batch_size = 16          # every job that has batch_size"))
    doc.add(tomlkit.comment("train.lr = 0.001         # only job 'train'"))
    return doc


def init_project(root: Path) -> InitResult:
    """Write mayuri.toml (unless there is one) and create the store it names."""
    root = root.resolve()
    config = root / CONFIG_NAME
    created = not config.exists()
    if created:
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(tomlkit.dumps(default_config(root.name)), encoding="utf-8")
    settings = load_settings(root)
    lost = database_empty(settings.store.path / DB_NAME)
    unindexed = store_content(settings.store.path) if lost else (0, 0)
    store = open_store(
        settings.store.path,
        allow_network_fs=settings.store.allow_network_fs,
        busy_timeout=settings.store.busy_timeout,
        # `mayuri init` may make the database even over a store with history (the user asked for it;
        # the command warns, and gc distrusts a database younger than the run folders).
        fresh=True,
    )
    store.close()
    return InitResult(config=config, store=settings.store.path, created_config=created,
                      gitignore=ignore_store(root, settings.store.path), unindexed=unindexed)


def _git_top(folder: Path) -> Path | None:
    """The top folder of the git work tree holding `folder` (where `.git` is), or None."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def ignore_store(root: Path, store: Path) -> Path | None:
    """Add the store to the .gitignore of the git work tree around `root`, when the store is inside it.

    Returns the .gitignore written, or None when there was nothing to do.
    """
    top = _git_top(root)
    if top is None:
        return None
    try:
        relative = store.resolve().relative_to(top).as_posix()
    except ValueError:
        return None  # a store outside the repository (a shared folder) is no business of git's
    entry = f"/{relative}/"
    gitignore = top / ".gitignore"
    text = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
    listed = {line.strip().strip("/") for line in text.splitlines()}
    if relative in listed:
        return None
    prefix = "" if not text or text.endswith("\n") else "\n"
    with open(gitignore, "a", encoding="utf-8") as handle:
        handle.write(f"{prefix}# Mayuri's store (runs, blobs, database): not for git.\n{entry}\n")
    return gitignore
