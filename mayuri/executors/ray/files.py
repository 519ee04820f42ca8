"""Copy mode's files: the upstream run files a job needs, sent to its node; its closure, brought back.

With `files = "copy"` a node has its copy of the project (`project_copy`)
and a run folder of its own; the head's paths in the job's
command, params and environment are relocated to the node's by the runner.
What the job names in other runs' folders (its upstreams' files, the
checkpoint it resumes from) is read here and sent with the task.

The job's closure records name the node's paths; once they are back on the
head, `relocate_closure` moves them to the head's paths, so that the closure
is hashed against the head's files as for a local run (the same
fingerprint). The identity a record holds (device, inode, times) is the
node's file's and means nothing here: it is dropped, and the head's file
stands for what the node had (the head's files were packed when the run connected).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mayuri.run_contract import CHECKPOINTS_DIR, OUTPUTS_FILE
from mayuri.store.perms import write_text_atomically

# Sent with a task at most (their total): more than this belongs on a shared filesystem.
MAX_SHIPPED = 2 << 30


def _mentions(spec: Mapping[str, Any]) -> list[str]:
    texts = [*spec["argv"], *spec["env"].values()]
    if spec.get("params") is not None:
        texts.append(json.dumps(spec["params"]))
    return texts


def upstream_files(spec: Mapping[str, Any], store_root: Path, run_dir: Path) -> dict[str, bytes]:
    """The files under other runs' folders (and this run's checkpoints) that the job's spec names.

    Keyed by their path relative to the store; a folder named brings all its files.
    """
    runs = os.path.join(str(store_root), "runs", "")
    pattern = re.compile(re.escape(runs) + r"[^\s\"':,;=]+")
    own = os.path.join(str(run_dir), "")
    own_checkpoints = os.path.join(str(run_dir), CHECKPOINTS_DIR, "")
    found: dict[str, bytes] = {}
    total = 0
    for text in _mentions(spec):
        for match in pattern.findall(text):
            path = match.rstrip("/.")
            if (path + "/").startswith(own) and not (path + "/").startswith(own_checkpoints):
                continue
            for file in _files_under(Path(path)):
                rel = os.path.relpath(file, store_root)
                if rel in found:
                    continue
                data = file.read_bytes()
                total += len(data)
                if total > MAX_SHIPPED:
                    from mayuri.errors import ExecutorError

                    raise ExecutorError(
                        f"the upstream files of the job come to more than {MAX_SHIPPED >> 30} GiB, too much to send "
                        "with a Ray task.", hint='Put the store on a filesystem every node sees: files = "shared".')
                found[rel] = data
    return found


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return [Path(folder) / name for folder, _, names in os.walk(path) for name in names]


def _pairs(moves: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(old.rstrip("/"), new.rstrip("/")) for old, new in moves if old and old.rstrip("/") != new.rstrip("/")]


def _moved(value: str, pairs: list[tuple[str, str]]) -> str:
    """`value` with its node folder prefix replaced by the head's (unchanged when it names none)."""
    for old, new in pairs:
        if value == old or value.startswith(old + "/"):
            return new + value[len(old):]
    return value


def relocate_outputs(run_dir: Path, moves: list[tuple[str, str]]) -> None:
    """Rewrite the outputs of a run brought back from a node: a value naming a file of the node's run folder
    or project copy names the head's (a downstream job, anywhere, and the store get the head's path)."""
    path = run_dir / OUTPUTS_FILE
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # none, or not the job's JSON: recorded as it is
    pairs = _pairs(moves)

    def move(value: Any) -> Any:
        if isinstance(value, str):
            return _moved(value, pairs)
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    moved = move(outputs)
    if moved != outputs:
        write_text_atomically(path, json.dumps(moved))


def relocate_closure(run_dir: Path, moves: list[tuple[str, str]]) -> None:
    """Rewrite the closure records of a run brought back from a node: node paths to head paths, no identities."""
    pairs = _pairs(moves)
    for folder, _, names in os.walk(run_dir / "closure"):
        for name in names:
            if name.endswith(".rec"):
                path = Path(folder) / name
                path.write_bytes(_relocated(path.read_bytes(), pairs))


def _relocated(data: bytes, pairs: list[tuple[str, str]]) -> bytes:
    out = []
    chunks = data.split(b"\0")
    for record in chunks[:-1]:
        parts = record.split(b"\t", 2)
        if len(parts) == 3:
            kind, value = parts[0], os.fsdecode(parts[2])
            if kind == b"R":
                cut = value.find("/")
                kind, value = b"r", value[cut:] if cut >= 0 else value
            value = _moved(value, pairs)
            record = b"\t".join([kind, parts[1], os.fsencode(value)])
        out.append(record)
    out.append(chunks[-1])
    return b"\0".join(out)
