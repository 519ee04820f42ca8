"""Retention of the checkpoints a job saves in `mayuri.checkpoint_dir()`: keep the last N and the best M.

`mayuri.checkpoint_dir(keep_last=2, keep_best=1, metric="val_loss")` sets the
policy of this process; each `mayuri.checkpoint_saved(path, val_loss=...)`
notes a checkpoint (a file or a folder in the checkpoint folder) with its
metrics in `.mayuri-checkpoints.json` there, then deletes the noted
checkpoints the policy no longer keeps. Entries never noted are left alone.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEDGER = ".mayuri-checkpoints.json"


@dataclass(frozen=True)
class Policy:
    """How many checkpoints to keep: the `keep_last` newest, and the `keep_best` best by `metric`."""

    keep_last: int | None = None
    keep_best: int | None = None
    metric: str | None = None
    mode: str = "min"

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_best"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"mayuri.checkpoint_dir: {name} must be a whole number >= 0, not {value!r}.")
        if self.keep_best and not self.metric:
            raise ValueError("mayuri.checkpoint_dir: keep_best needs metric=, the name of the metric to rank by.")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mayuri.checkpoint_dir: mode must be 'min' or 'max', not {self.mode!r}.")

    @property
    def active(self) -> bool:
        return self.keep_last is not None or self.keep_best is not None


def _read(folder: Path) -> list[dict[str, Any]]:
    try:
        with open(folder / LEDGER, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError):
        return []
    return loaded if isinstance(loaded, list) else []


def _write(folder: Path, entries: list[dict[str, Any]]) -> None:
    temporary = folder / f"{LEDGER}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(entries, handle, sort_keys=True)
    os.replace(temporary, folder / LEDGER)


def kept(entries: list[dict[str, Any]], policy: Policy) -> set[str]:
    """The names of the entries the policy keeps (all of them without a policy)."""
    names = [e["name"] for e in entries]
    if not policy.active:
        return set(names)
    keep = set(names[len(names) - policy.keep_last:]) if policy.keep_last else set()
    if policy.keep_best and policy.metric:
        scored = [(e["metrics"][policy.metric], e["name"]) for e in entries
                  if isinstance(e.get("metrics", {}).get(policy.metric), (int, float))
                  and not math.isnan(e["metrics"][policy.metric])]
        scored.sort(reverse=policy.mode == "max")
        keep |= {name for _, name in scored[:policy.keep_best]}
    return keep


def note_saved(folder: Path, path: Path, metrics: dict[str, float], policy: Policy) -> list[str]:
    """Note a saved checkpoint, apply the policy; returns the names of the checkpoints deleted."""
    path = Path(path)
    if path.parent.resolve() != folder.resolve():
        raise ValueError(f"mayuri.checkpoint_saved: {path} is not directly in the checkpoint folder {folder}.")
    entries = [e for e in _read(folder) if e.get("name") != path.name]
    entries.append({"name": path.name, "metrics": {k: float(v) for k, v in metrics.items()}})
    keep = kept(entries, policy)
    removed = []
    for entry in entries:
        if entry["name"] in keep:
            continue
        target = folder / entry["name"]
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        removed.append(entry["name"])
    _write(folder, [e for e in entries if e["name"] in keep])
    return removed
