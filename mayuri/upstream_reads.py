"""Early cutoff by what a downstream job read of its upstreams' files.

A downstream run whose every process was traced (the preload tracer, no
statically linked program) records, per upstream, only the key of the
output values it received (`outputs_key`), and, among its closure info, each
file it read or looked at in an upstream's run folder: the upstream's name
and index, the path inside that folder and the file's SHA-512 (ABSENT for a
file it looked for and did not find). An upstream that reran keeps such a
downstream run reusable when its output values are the same and every file
the run read is the same in the new upstream's folder (`reads_changed`);
files it never read do not count. Otherwise (not traced, an upstream folder
listed, a parent not found) the run records its upstreams' whole result
keys (mayuri/results.py), as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mayuri.filestate import current_digests
from mayuri.hashing import hash_structure
from mayuri.results import is_result_file, normalised
from mayuri.store.db import Store
from mayuri.store.queries import outputs_of, run_dirs, upstream_parents

if TYPE_CHECKING:  # the warm cache check imports this module, not the closure collector
    from mayuri.closure import Closure

# Where a run's closure info keeps the upstream files it read: [[upstream, index, path, sha512], ...].
READS_KEY = "upstream_reads"

Read = tuple[str, int, str, str]


def outputs_key(run_dir: str, outputs: Mapping[str, Any]) -> str:
    """The key of an upstream's output values alone (its files count by what is read of them)."""
    return hash_structure("upstream-outputs/v1", normalised(dict(outputs), run_dir))


@dataclass(frozen=True)
class UpstreamRuns:
    """An instance's current upstream runs, by upstream name: their output keys and their folders.

    `digests` holds the SHA-512 of upstream files already hashed in this plan, by path, shared
    by every instance of the plan (a finished run's folder does not change under it).
    """

    keys: dict[str, list[str]]
    dirs: dict[str, list[str]]
    digests: dict[str, str] = field(default_factory=dict)


class UpstreamMemo:
    """What one plan learned of its upstream runs: folder and output key by run id, file digests."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runs: dict[str, tuple[str, str]] = {}
        self.digests: dict[str, str] = {}

    def current(self, runs: Mapping[str, list[tuple[str | None, str | None, Mapping[str, Any]]]]
                ) -> UpstreamRuns | None:
        """The output keys and folders of these upstream runs ((run id, folder if known, outputs) by name);
        None if one is unknown."""
        found = [entry for listed in runs.values() for entry in listed]
        if not found or any(run_id is None for run_id, _, _ in found):
            return None
        missing = {run_id for run_id, folder, _ in found if folder is None and run_id not in self.runs}
        folders = run_dirs(self.store, sorted(m for m in missing if m is not None)) if missing else {}
        for run_id, folder, outputs in found:
            folder = folder or folders.get(run_id or "")
            if run_id is not None and run_id not in self.runs and folder is not None:
                self.runs[run_id] = (folder, outputs_key(folder, outputs))
        if any(run_id not in self.runs for run_id, _, _ in found):
            return None
        known = {name: [self.runs[run_id] for run_id, _, _ in listed if run_id is not None]
                 for name, listed in runs.items()}
        return UpstreamRuns({name: [key for _, key in pairs] for name, pairs in known.items()},
                            {name: [folder for folder, _ in pairs] for name, pairs in known.items()}, self.digests)


def partial_upstream(store: Store, run_id: str, upstream: Mapping[str, list[str]], closure: Closure
                     ) -> tuple[dict[str, list[str]], list[Read]] | None:
    """(output keys by upstream, the upstream files read with their digests) of a traced run; None: count all."""
    parents = upstream_parents(store, run_id)
    keys: dict[str, list[str]] = {}
    wanted: list[tuple[str, int, str, str]] = []
    for name, full in upstream.items():
        keys[name] = []
        for index in range(len(full)):
            parent = parents.get(name if len(full) == 1 else f"{name}[{index}]")
            if parent is None or parent[0] in closure.runs_listed:
                return None  # a folder listed: which files are there counts, so all of them do
            parent_id, folder = parent
            keys[name].append(outputs_key(folder, outputs_of(store, parent_id)))
            wanted.extend((name, index, folder, path) for path in closure.run_reads.get(parent_id, ())
                          if is_result_file(path))
    digests = current_digests(store, Path("/"), [(os.path.join(folder, path), "file")
                                                 for _, _, folder, path in wanted])
    reads = {(name, index, path, digests[(os.path.join(folder, path), "file")][0])
             for name, index, folder, path in wanted}
    return keys, sorted(reads)


def reads_changed(store: Store, reads_text: str | None, dirs: Mapping[str, list[str]], memo: dict[str, str],
                  names: Mapping[str, str]) -> list[str]:
    """`upstream prep: b.txt changed` for each upstream file an earlier run read (`reads_text`, as
    recorded in its closure info) that differs now.

    `dirs`: the current upstream folders, keyed as the reads are (by position; by name in runs recorded
    before that); `names`: the upstream names of those keys, for the words; `memo`: digests of upstream
    files by path, filled in here.
    """
    recorded = json.loads(reads_text) if reads_text else None
    if not isinstance(recorded, list):
        return ["upstream files read not recorded"]
    entries: list[tuple[str, str, str]] = []
    for name, index, path, digest in recorded:
        folders = dirs.get(name, [])
        if not isinstance(index, int) or index >= len(folders):
            return [f"upstream {names.get(name, name)} changed"]
        entries.append((names.get(name, name), os.path.join(folders[index], path), digest))
    missing = [(full, "file") for _, full, _ in entries if full not in memo]
    if missing:
        memo.update((full, digest) for (full, _), (digest, _) in current_digests(store, Path("/"), missing).items())
    return [f"upstream {name}: {path} changed"
            for (name, full, digest), (_, _, path, _) in zip(entries, recorded, strict=True) if memo[full] != digest]
