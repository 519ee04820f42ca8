"""Whether the files a remote job used were the head's: their digests on the node, compared on the head.

A node in copy mode runs on its own copy of the project. Its runner hashes
the code and input files of the job's closure there (`node_digests`, into
`closure-digests-N.json` of the run folder); once that file reached the
head, `differing` names the files whose content on the head is not what the
node had. Such a run is recorded (with its closure as the head sees it) but
never reused: its fingerprint would describe files it did not run on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from mayuri.hashing import hash_files


def digests_file(run_dir: Path, attempt: int) -> Path:
    """Where the node's digests of attempt `attempt`'s closure files are written."""
    return run_dir / f"closure-digests-{attempt}.json"


def node_digests(closure_dir: Path, project_root: Path, exclude: list[Path]) -> tuple[dict[str, str], list[str]]:
    """The SHA-512 of each code and input file of the closure recorded in `closure_dir`, by project path;
    and the project paths of the files the job made there (its products, which the head must get back)."""
    from mayuri.closure import collect_closure

    closure = collect_closure(closure_dir, project_root, exclude)
    paths = sorted(p for p in closure.code | closure.inputs if not os.path.isabs(p)
                   and (project_root / p).is_file())
    digests = {path: digest for path, (digest, _) in zip(paths, hash_files([project_root / p for p in paths]),
                                                             strict=True)}
    products = sorted(p for p in closure.products if not os.path.isabs(p) and (project_root / p).is_file())
    return digests, products


def write_digests(run_dir: Path, attempt: int, digests: Mapping[str, str]) -> None:
    tmp = digests_file(run_dir, attempt).with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(digests), sort_keys=True), encoding="utf-8")
    os.replace(tmp, digests_file(run_dir, attempt))


def differing(run_dir: Path, attempt: int, project_root: Path) -> list[str]:
    """The project files whose content on the head differs from what the node used (empty: none, or unknown)."""
    try:
        digests = json.loads(digests_file(run_dir, attempt).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    paths = sorted(digests)
    present = [p for p in paths if (project_root / p).is_file()]
    head = dict(zip(present, (d for d, _ in hash_files([project_root / p for p in present])), strict=True))
    return [p for p in paths if head.get(p) != digests[p]]
