"""What a run gives its downstream jobs, by content: the key of its results.

A downstream run records, for each upstream, the upstream's result key, not
its fingerprint or id: an upstream that reran and produced the same output
values and the same files leaves its downstream jobs cached (early cutoff).
Output values count by their canonical JSON with the upstream's own run
folder written as a placeholder (a path into a new run folder is the same
result); files count by SHA-512, by their path inside the run folder. What
Mayuri itself keeps there (logs, params, outputs, closure records: see
`mayuri.run_contract.is_bookkeeping`) is not a result. A run recorded without a result key (before this existed) stands for
its results by its fingerprint, as it did then. A downstream run that was
fully traced counts only the upstream files it read (mayuri/upstream_reads.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mayuri.hashing import hash_files, hash_structure
from mayuri.run_contract import BOOKKEEPING_DIRS, is_bookkeeping

RUN_DIR_PLACEHOLDER = "${mayuri.upstream_run_dir}"


def normalised(value: Any, run_dir: str) -> Any:
    """`value` with the run folder's path replaced by a placeholder, in every string."""
    if isinstance(value, str):
        return value.replace(run_dir, RUN_DIR_PLACEHOLDER) if run_dir else value
    if isinstance(value, Mapping):
        return {k: normalised(v, run_dir) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalised(v, run_dir) for v in value]
    return value


def is_result_file(relative: str) -> bool:
    """Whether a path inside a run folder is a result (not one of Mayuri's own files)."""
    return not is_bookkeeping(relative)


def result_files(run_dir: Path) -> list[str]:
    """The files a run left in its folder as results, relative to it, sorted."""
    found: list[str] = []
    for folder, dirs, files in os.walk(run_dir):
        relative = os.path.relpath(folder, run_dir)
        if relative == ".":
            dirs[:] = [d for d in dirs if d not in BOOKKEEPING_DIRS]
            files = [f for f in files if is_result_file(f)]
        found.extend(os.path.normpath(os.path.join(relative, f)) for f in files)
    return sorted(found)


def result_key(run_dir: Path, outputs: Mapping[str, Any]) -> str:
    """The content key of a finished run's results: its output values and its files' SHA-512."""
    names = result_files(run_dir)
    digests = hash_files([run_dir / name for name in names]) if names else []
    files = {name: digest for name, (digest, _) in zip(names, digests, strict=True)}
    return hash_structure("results/v1", {"outputs": normalised(dict(outputs), str(run_dir)), "files": files})
