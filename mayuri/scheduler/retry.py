"""What to do after an attempt fails: retry (how, with which params, when, where) or give up.

`retry.oom` applies only to GPU out-of-memory; strategies `scale` (multiply
params by a factor, never below a floor), `move` (another GPU), and `wait`
(the same request again after a delay, when memory may have freed).
`retry.failed` covers other failures, host OOM included, each retry after
`retry.delay` (none by default). Timeouts and
cancellations are never retried. Pure policy: no processes, no store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mayuri.experiment.overrides import has_dotted
from mayuri.experiment.spec import OomRetry, RetryPolicy

NEVER_RETRIED = ("timeout", "cancelled", "scheduler_lost")


@dataclass(frozen=True)
class Decision:
    """Retry or not; with the param changes, delay and GPUs to avoid for the next attempt."""

    retry: bool
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    avoid_gpus: frozenset[str] = frozenset()


def _get(params: Mapping[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        value = value[part]
    return value


def _floor(oom: OomRetry, key: str, value: int | float) -> float:
    # Without a floor, integers stop at 1 and floats have none.
    default = 1.0 if isinstance(value, int) else 0.0
    if isinstance(oom.floor, dict):
        return oom.floor.get(key, default)
    return default if oom.floor is None else oom.floor


def scaled(params: Mapping[str, Any], oom: OomRetry) -> dict[str, Any]:
    """The params `retry.oom.scale` gives next (only those that can still shrink)."""
    changes: dict[str, Any] = {}
    for key, factor in oom.scale.items():
        if not has_dotted(dict(params), key):
            continue
        value = _get(params, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        floor = _floor(oom, key, value)
        new: float = max(floor, value * factor)
        if isinstance(value, int):
            new = max(int(math.ceil(floor)), int(value * factor))
        if new < value:
            changes[key] = new
    return changes


def decide(
    retry: RetryPolicy, cause: str, history: Sequence[str], params: Mapping[str, Any],
    gpus: Sequence[str],
) -> Decision:
    """The decision after an attempt ended with `cause`; `history` holds the causes of all attempts so far."""
    if cause in NEVER_RETRIED:
        return Decision(False, f"{cause}: not retried")
    if cause == "gpu_oom":
        oom = retry.oom
        if oom is None:
            return Decision(False, "out of GPU memory; no retry.oom")
        limit = oom.max
        used = sum(1 for c in history if c == "gpu_oom") - 1
        if used >= limit:
            return Decision(False, f"out of GPU memory {used + 1} times (retry.oom.max = {limit})")
        if oom.strategy == "scale":
            changes = scaled(params, oom)
            if not changes:
                return Decision(False, "out of GPU memory with every scaled param at its floor")
            text = ", ".join(f"{k} {_get(params, k)} -> {v}" for k, v in changes.items())
            return Decision(True, f"out of GPU memory: retry with {text}", changes=changes)
        if oom.strategy == "move":
            return Decision(True, "out of GPU memory: retry on another GPU", avoid_gpus=frozenset(gpus))
        return Decision(True, f"out of GPU memory: retry in {oom.wait:g}s", delay=oom.wait)
    limit = retry.failed
    used = sum(1 for c in history if c not in ("gpu_oom",)) - 1
    if used >= limit:
        return Decision(False, "failed" + (f" {used + 1} times (retry.failed = {limit})" if limit else ""))
    after = f" in {retry.delay:g}s" if retry.delay else ""
    return Decision(True, f"{cause}: retry {used + 1} of {limit}{after}", delay=retry.delay)
