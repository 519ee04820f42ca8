"""How the dashboard writes values: statuses in colour, times, params, metric numbers.

Pure functions over plain values; no store and no widgets.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from rich.text import Text

from mayuri.states import STYLE
from mayuri.store.shard_queries import ShardProgress

# One look for each state, shared with the CLI (mayuri/states.py).
STATUS_STYLES = STYLE


PREFERRED_METRICS = ("loss", "val_loss", "eval_loss", "train_loss", "accuracy", "eval_accuracy")


def main_metric(keys: list[str]) -> str | None:
    """The metric shown first (list column, charts) until the user picks another."""
    plain = [k for k in keys if not k.startswith("sys/")]
    for candidates in ([k for k in PREFERRED_METRICS if k in plain], plain, keys):
        if candidates:
            return candidates[0]
    return None


def status_style(status: str) -> str:
    return STATUS_STYLES.get(status, "")


def group_status(progress: ShardProgress) -> str:
    """One status for a group of shards: running or queued while any is, else failed if any is, else done."""
    for status in ("running", "queued", "failed", "cancelled"):
        if progress.indices(status):
            return status
    return "succeeded" if progress.done == progress.count else "incomplete"


def status_text(status: str) -> Text:
    return Text(status, style=status_style(status))


def format_time(stamp: float | None) -> str:
    """A timestamp as month-day hour:minute in local time."""
    if stamp is None:
        return "-"
    return time.strftime("%m-%d %H:%M", time.localtime(stamp))


def format_number(value: float | None) -> str:
    """A metric value in at most about 8 characters; NaN and inf spelled out."""
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


def format_value(value: Any) -> str:
    """A param value as a user would type it."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def format_params(params: dict[str, Any], first: tuple[str, ...] = ()) -> str:
    """`k=v` pairs, the keys in `first` (those being filtered on) leading."""
    keys = [k for k in first if k in params] + sorted(k for k in params if k not in first)
    return " ".join(f"{k}={format_value(params[k])}" for k in keys)


def format_gpus(gpus: list[str]) -> str:
    """GPU ids shortened: `GPU-1a2b3c4d-...` becomes `1a2b`, fake ones keep their number."""
    short = []
    for gpu in gpus:
        text = str(gpu)
        if text.startswith("GPU-fake-"):
            short.append(str(int(text.rsplit("-", 1)[1])))
        elif text.startswith(("GPU-", "MIG-")):
            short.append(text[4:8])
        else:
            short.append(text)
    return ",".join(short) or "-"
