"""The environment a run ran in: Python, platform, imported distributions, git state, GPUs.

Recorded with every run; `[cache] key_env` picks which parts also count in
the fingerprint. Capturing git state costs a subprocess, so it is done once
per scheduler and only when a job actually runs.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def python_info() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine()}


@functools.cache
def _top_levels() -> tuple[tuple[Any, frozenset[str]], ...]:
    """Each installed distribution with the top-level names it provides, as `packages_distributions` finds them.

    The standard library's `importlib.metadata.packages_distributions()` gives the same mapping, but
    parses every distribution's METADATA for its name and makes a path object of every line of every
    RECORD without a top_level.txt (10,000 lines in a data-science environment): 50-60 ms at every
    run that records a Python job. Here the names are read from the RECORD's text, and a
    distribution's METADATA only when one of its names was imported (tests/unit/test_distributions.py
    compares the two).
    """
    from importlib import metadata  # slow to import; a cached run never needs it

    return tuple((dist, frozenset((dist.read_text("top_level.txt") or "").split() or _record_top_levels(dist)))
                 for dist in metadata.distributions())


def _record_top_levels(dist: Any) -> set[str]:
    """The top-level names of the `.py` files a distribution lists (importlib.metadata's `_top_level_inferred`)."""
    import csv

    text = dist.read_text("RECORD")
    if text:
        rows = csv.reader(text.splitlines())
    else:  # an egg-info's SOURCES.txt: paths may hold literal commas
        text = dist.read_text("SOURCES.txt")
        rows = csv.reader(f'"{line}"' for line in (text or "").splitlines())
    names = set()
    for row in rows:
        path = row[0].rstrip("/") if row else ""
        if not path.endswith(".py"):
            continue
        # The parts of PurePosixPath(path): no empty or "." parts, "/" first when absolute.
        parts = (["/"] if path.startswith("/") else []) + [p for p in path.split("/") if p not in ("", ".")]
        if parts[-1] == ".py":  # a dot-file, whose suffix is not ".py"
            continue
        names.add(parts[0] if len(parts) > 1 else parts[0][:-len(".py")])
    return names


def _module_to_distributions(modules: Iterable[str]) -> Mapping[str, list[tuple[str, str]]]:
    """`packages_distributions()` restricted to `modules`: each one's providing distributions, (name, version)."""
    wanted = set(modules)
    mapping: dict[str, list[tuple[str, str]]] = {}
    for dist, names in _top_levels():
        provided = names & wanted
        if provided:
            identity = _name_and_version(dist)
            for module in provided:
                mapping.setdefault(module, []).append(identity)
    return mapping


# (name, version) of each distribution whose metadata was read, by where its metadata file is and
# what that file's stat says: a distribution upgraded or reinstalled while a scheduler runs is read again.
_identities: dict[tuple[Any, ...], tuple[str, str]] = {}


def _name_and_version(dist: Any) -> tuple[str, str]:
    """A distribution's name and version, its METADATA parsed once per process while that file is unchanged.

    Parsing it (the email parser) costs about a millisecond per distribution, for every job that ran
    Python: several milliseconds of a trivial job's end.
    """
    import os

    folder = getattr(dist, "_path", None)  # a PathDistribution's .dist-info or .egg-info folder
    key = None
    if folder is not None:
        for name in ("METADATA", "PKG-INFO"):
            try:
                info = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            key = (str(folder), name, info.st_ino, info.st_mtime_ns, info.st_size)
            break
    found = _identities.get(key) if key is not None else None
    if found is None:
        metadata = dist.metadata
        found = (metadata["Name"], metadata["Version"])
        if key is not None:
            _identities[key] = found
    return found


def distribution_versions(modules: Iterable[str]) -> dict[str, str]:
    """Installed distributions that provide the given top-level modules, with their versions.

    Where two installs of one distribution are found, the first on the path (the one Python imports).
    """
    modules = list(modules)
    mapping = _module_to_distributions(modules)
    found: dict[str, str] = {}
    for module in modules:
        for name, version in mapping.get(module, ()):
            found.setdefault(name, version)
    return dict(sorted(found.items()))


def current_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each named distribution now (None when it is gone)."""
    from importlib import metadata

    result: dict[str, str | None] = {}
    for dist in distributions:
        try:
            result[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            result[dist] = None
    return result


def git_info(root: Path) -> dict[str, Any]:
    """Commit, branch and dirty state of the git work tree at `root` ({} when it is not one)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
    }


def gpu_info() -> list[dict[str, Any]]:
    """Model, memory and driver of each visible GPU (empty without a GPU or driver)."""
    from mayuri.gpu import inventory

    return [{"name": g.name, "uuid": g.uuid, "memory_total": g.memory_total, "driver": g.driver}
            for g in inventory()]


def key_parts(parts: Iterable[str], environment: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a recorded environment that count in a fingerprint (`[cache] key_env`)."""
    selected: dict[str, Any] = {}
    for part in parts:
        if part == "python":
            selected["python"] = environment.get("python", {}).get("version")
        elif part == "platform":
            selected["platform"] = environment.get("platform")
        elif part == "packages":
            selected["packages"] = environment.get("packages", {})
        elif part == "git":
            selected["git"] = environment.get("git", {}).get("commit")
        elif part == "gpu":
            selected["gpu"] = sorted(g.get("name", "") for g in environment.get("gpus", []))
    return selected


def current_key_parts(parts: Iterable[str], recorded: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The same parts as `key_parts`, measured now (packages: the recorded distributions' versions now)."""
    wanted = list(parts)
    now: dict[str, Any] = {}
    if "python" in wanted:
        now["python"] = python_info()
    if "platform" in wanted:
        now["platform"] = platform_info()
    if "packages" in wanted:
        now["packages"] = current_versions(recorded.get("packages", {}))
    if "git" in wanted:
        now["git"] = git_info(root)
    if "gpu" in wanted:
        now["gpus"] = gpu_info()
    return key_parts(wanted, now)


def base_environment(root: Path) -> dict[str, Any]:
    """What every run of a scheduler records about where it ran, before the packages it imported."""
    import socket

    return {"python": python_info(), "platform": platform_info(), "host": socket.gethostname(),
            "git": git_info(root), "gpus": gpu_info()}
