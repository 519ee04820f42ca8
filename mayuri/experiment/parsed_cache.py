"""Parsed experiment files kept between runs, so that a cached `mayuri run` need not parse YAML again.

Parsing is a pure function of what the parse looked at: the current folder,
the path given, the text of every file it read (the file itself, its
`extends:` chain, its `pipeline:` files) and the result of every path it
resolved (symbolic links). An entry records all of these
(`mayuri.experiment.sources`) next to the parsed spec, and is reused only
when every one of them is the same now and the parser's code is unchanged;
anything else parses the file again, and an error is reported as always.
Entries are JSON (never pickle: a store may be shared, and a teammate's file
must never run code) in the store's `parsed/` folder, one per experiment
file, and only the user who wrote an entry reuses it; a value JSON cannot
carry exactly (a YAML timestamp, say) means that file is simply not kept.
Keeping an entry never fails the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import mayuri
from mayuri.experiment import sources
from mayuri.experiment.spec import (
    Dependency,
    ExperimentSpec,
    JobSpec,
    OomRetry,
    Reduction,
    Resources,
    RetryPolicy,
    ShardSpec,
    Where,
)
from mayuri.store.perms import make_dirs, share_like_folder

FOLDER = "parsed"
_CLASSES = {cls.__name__: cls for cls in (Where, Dependency, JobSpec, ExperimentSpec, ShardSpec, Reduction, Resources,
                                          RetryPolicy, OomRetry)}
_PATH_TYPE = type(Path())
_PLAIN = (str, int, float, bool, type(None))
_HERE = Path(__file__).parent
# The code whose behaviour a parsed entry depends on, besides this package and ruamel.yaml.
_ALSO = tuple(str(_HERE.parent / name) for name in ("units.py", "suggest.py", "errors.py"))


class _NotExact(Exception):
    """A value that JSON cannot carry back exactly."""


def load_experiment(path: Path, store_root: Path) -> ExperimentSpec:
    """The parsed experiment file at `path` (as `parse_experiment` returns it), reused when nothing changed."""
    entry_path = _entry_path(store_root, path)
    spec = _reuse(entry_path, path)
    if spec is not None:
        return spec
    from mayuri.experiment.parse import parse_experiment

    with sources.recording() as seen:
        spec = parse_experiment(path)
    _keep(entry_path, store_root, path, seen, spec)
    return spec


def _entry_path(store_root: Path, path: Path) -> Path:
    name = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:32]
    return store_root / FOLDER / f"{name}.json"


def _code_stamp(ruamel_origin: str | None) -> list[Any]:
    """Mayuri's version, the interpreter's environment, and the size and modification time of the
    parser's source files and of ruamel.yaml's (found where an entry says it was, when one does)."""
    stamp: list[Any] = [mayuri.__version__, sys.prefix]
    for file in sorted(p for p in os.listdir(_HERE) if p.endswith(".py")):
        st = os.stat(os.path.join(_HERE, file))
        stamp.append([file, st.st_size, st.st_mtime_ns])
    if ruamel_origin is None:
        # Finding the module costs a search of sys.path; an entry's stamp names the file, and an
        # upgrade or removal of ruamel.yaml changes or removes that file.
        ruamel = importlib.util.find_spec("ruamel.yaml")
        ruamel_origin = ruamel.origin if ruamel else None
    for extra in (*_ALSO, ruamel_origin):
        if extra is not None:
            st = os.stat(extra)
            stamp.append([str(extra), st.st_size, st.st_mtime_ns])
    return stamp


def _reuse(entry_path: Path, path: Path) -> ExperimentSpec | None:
    try:
        with open(entry_path, "rb") as handle:
            # Only an entry this user wrote: in a shared store, a teammate's
            # entry could say anything about what this file means.
            if hasattr(os, "getuid") and os.fstat(handle.fileno()).st_uid != os.getuid():
                return None
            entry = json.loads(handle.read())
        if (entry["stamp"] != _code_stamp(entry["stamp"][-1][0])
                or entry["cwd"] != os.getcwd() or entry["given"] != str(path)
                or any(str(Path(given).resolve()) != got for given, got in entry["resolved"])
                or any(_text(file) != text for file, text in entry["files"])):
            return None
        spec = _decode(entry["spec"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # no entry yet, or one this code cannot read: parse
    return spec if isinstance(spec, ExperimentSpec) else None


def _text(file: str) -> str | None:
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _keep(entry_path: Path, store_root: Path, path: Path, seen: sources.Sources, spec: ExperimentSpec) -> None:
    if not store_root.is_dir():
        return  # the store is made when it is opened, after the file is known to be good
    try:
        encoded = _encode(spec)
        if _decode(json.loads(json.dumps(encoded))) != spec:
            return
    except (_NotExact, ValueError, RecursionError):
        return
    entry = {"stamp": _code_stamp(None), "cwd": os.getcwd(), "given": str(path), "resolved": seen.resolved,
             "files": seen.files, "spec": encoded}
    temporary = entry_path.with_name(f"{entry_path.stem}.{os.getpid()}.tmp")
    try:
        make_dirs(entry_path.parent, store_root)
        temporary.write_text(json.dumps(entry), encoding="utf-8")
        share_like_folder(temporary, store_root)
        os.replace(temporary, entry_path)
    except OSError:
        # A cache only: a store we may not write (read-only snapshot) just keeps none.
        with contextlib.suppress(OSError):
            temporary.unlink()


def _encode(value: Any) -> Any:
    """`value` as JSON that `_decode` turns back into an equal value of the same types."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_encode(v) for v in value]
    if kind is tuple:
        return {"tuple": [_encode(v) for v in value]}
    if kind is dict:
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if kind is _PATH_TYPE:
        return {"path": str(value)}
    if _CLASSES.get(kind.__name__) is kind:
        return {"class": kind.__name__,
                "fields": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    raise _NotExact(kind.__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    if "dict" in value:
        return {_decode(k): _decode(v) for k, v in value["dict"]}
    if "path" in value:
        return Path(value["path"])
    return _CLASSES[value["class"]](**{name: _decode(v) for name, v in value["fields"].items()})


def stale_entries(store_root: Path, written_before: float) -> list[tuple[str, os.stat_result]]:
    """(name, stat) of the files in `parsed/` that no run can use again, last written before `written_before`.

    That is an entry whose experiment file is gone (or that cannot be read),
    and a temporary file left by an interrupted write. `mayuri gc` removes them.
    """
    folder = os.path.join(store_root, FOLDER)
    if not _plain_folder(folder):
        return []
    found = []
    names = sorted(os.listdir(folder))
    for name in names:
        info = _stale(folder, name, written_before)
        if info is not None:
            found.append((name, info))
    return found


def remove_stale_entry(store_root: Path, name: str, written_before: float) -> os.stat_result | None:
    """Delete one file of `parsed/` if it is still stale (see `stale_entries`); its stat when it was deleted."""
    folder = os.path.join(store_root, FOLDER)
    info = _stale(folder, name, written_before) if _plain_folder(folder) else None
    if info is None:
        return None
    try:
        os.unlink(os.path.join(folder, name))
    except OSError:
        return None
    return info


def _plain_folder(folder: str) -> bool:
    """A real folder, not a symbolic link: gc never deletes through a link."""
    try:
        return stat.S_ISDIR(os.lstat(folder).st_mode)
    except OSError:
        return False


def _stale(folder: str, name: str, written_before: float) -> os.stat_result | None:
    if "/" in name or name.startswith(".") or not name.endswith((".json", ".tmp")):
        return None
    path = os.path.join(folder, name)
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_mtime >= written_before:
        return None
    if name.endswith(".tmp"):
        return info
    try:
        with open(path, "rb") as handle:
            entry = json.loads(handle.read())
        experiment_file = os.path.join(entry["cwd"], entry["given"])
    except (OSError, ValueError, KeyError, TypeError):
        return info  # unreadable: never reused, and rewritten by the next parse anyway
    return None if os.path.exists(experiment_file) else info
