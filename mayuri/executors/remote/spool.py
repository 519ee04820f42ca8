"""The job side's spool: on a remote node, what a job would write to the store goes to files instead.

A job runs with MAYURI_SPOOL=1 when its executor runs it on a node that must
never open the SQLite file (a Ray worker, a Slurm node). Then:

- metrics: the job's `MetricBuffer` (`mayuri.tracking.writer`) appends its
  frames (the sink's format: an 8-byte length and a `marshal`led batch of
  points) to `spool/metrics-<pid>.bin` instead of piping them to a sink
  process; one file per process, so that forked workers never interleave;
- artifacts: `mayuri.artifact()` copies (hard-links where it can) the file or
  folder to `spool/artifacts/<n>/` and then appends one JSON line to
  `spool/artifacts.jsonl`, so that a line is only ever read once its files
  are whole; removals (the Hugging Face callback's) are lines too.

The head's `mayuri.executors.remote.ingest` reads these files (from the
run folder the executor brings back, or the shared one) into the store. The
hot path of `mayuri.log` is unchanged: only where a flush writes differs.
This module imports only the standard library and the run contract.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from mayuri.run_contract import RUN_DIR_VAR, SPOOL_VAR, spool_dir

ARTIFACTS_LOG = "artifacts.jsonl"
ARTIFACTS_DIR = "artifacts"
METRICS_PREFIX = "metrics-"
METRICS_SUFFIX = ".bin"


def spooling() -> bool:
    """Whether this job writes to its spool rather than to the store."""
    return os.environ.get(SPOOL_VAR, "") not in ("", "0")


def _spool() -> Path:
    folder = spool_dir(Path(os.environ[RUN_DIR_VAR]))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def metrics_file() -> Path:
    """This process's metrics spool file (made on first use)."""
    return _spool() / f"{METRICS_PREFIX}{os.getpid()}{METRICS_SUFFIX}"


class MetricSpool:
    """Where a spooling `MetricBuffer` writes its frames: this process's spool file, appended to."""

    def __init__(self) -> None:
        # Unbuffered: each frame is one write, so a kill leaves at most one frame cut short (skipped).
        self.stream = open(metrics_file(), "ab", buffering=0)  # noqa: SIM115 - closed by finish()

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def flush(self) -> None:
        """Nothing to flush: every write went straight to the file."""

    def finish(self, timeout: float) -> None:
        self.stream.close()


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _append(line: dict[str, Any]) -> None:
    # One write of one line with O_APPEND: lines of several processes never mix.
    fd = os.open(_spool() / ARTIFACTS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def spool_artifact(path: Path, name: str, kind: str | None, *, folder: bool, link: bool) -> str:
    """Put a (checked) file or folder in the spool as artifact `name`, for the head to store."""
    root = _spool() / ARTIFACTS_DIR
    root.mkdir(exist_ok=True)
    # A fresh numbered folder per call: the same name saved twice keeps both, in order.
    number = len(os.listdir(root))
    while True:
        slot = root / str(number)
        try:
            slot.mkdir()
            break
        except FileExistsError:
            number += 1
    target = slot / path.name
    if folder:
        shutil.copytree(path, target, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(path), str(target))
    _append({"name": name, "kind": kind, "path": target.relative_to(_spool()).as_posix(), "link": link})
    return name


def spool_removal(names: list[str]) -> None:
    """Note that artifacts `names` of this run are to be removed."""
    _append({"remove": sorted(names)})
