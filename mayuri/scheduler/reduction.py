"""The reduction of a sharded job: when it can be decided, why it fails, and its values.

The reduction waits for every shard to settle (a failed shard does not stop
the others: their results are kept, and cached, for the next run). Then it
is failed when a shard failed ("2 of 8 shards failed: 3, 7" and why), or
computed in the scheduler's own process from the shards' outputs and last
metric values (`mayuri.reduce`). No process is launched for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mayuri.experiment.shard_expand import is_reduction, shard_part
from mayuri.reduce import lookup, reduce_shards
from mayuri.run_contract import log_file
from mayuri.store.db import Store
from mayuri.store.records import RunClose

if TYPE_CHECKING:
    from mayuri.scheduler.plan import Outcome, Slot

_UNSETTLED = ("pending", "ready", "running")
_OK = ("cached", "succeeded")
# How many failed shards a message names, and how many of their reasons it quotes.
_NAMED, _QUOTED = 20, 3


def _index(slot: Slot) -> int:
    part = shard_part(slot.instance)
    return int(part["index"]) if part else 0


def shards_state(keys: Sequence[str], slots: Mapping[str, Slot], dry_run: bool) -> tuple[bool, str | None]:
    """(every shard settled ok, why the reduction can never be computed) — like an instance's upstream state.

    `keys`: the shards' instance keys, in shard order; `slots`: the plan's slots by key.
    """
    # Looked at from the end: shards start in order, so the last settle last and, while any runs, one of the
    # first looked at is unsettled (asked every turn, a scan from the start was quadratic in the shards).
    if any(slots[k].state in _UNSETTLED or (dry_run and slots[k].state == "will run") for k in reversed(keys)):
        return False, None
    shards = [slots[k] for k in keys]
    bad = [s for s in shards if s.state not in _OK]
    if not bad:
        return True, None
    return False, failure(shards, bad)


def blocked_as(shards: Sequence[Slot]) -> str:
    """The state of a reduction that cannot be computed: failed when a shard failed, else skipped."""
    return "failed" if any(s.state == "failed" for s in shards) else "skipped"


def failure(shards: Sequence[Slot], bad: Sequence[Slot]) -> str:
    """`2 of 8 shards failed: 3, 7 (shard 3: exited with code 1; ...)`."""
    states = sorted({s.state for s in bad})
    verb = states[0] if len(states) == 1 else "/".join(states)
    indices = [_index(s) for s in bad]
    named = ", ".join(str(i) for i in indices[:_NAMED]) + (" ..." if len(indices) > _NAMED else "")
    reasons = "; ".join(f"shard {_index(s)}: {s.reason}{_last_words(s)}" for s in bad[:_QUOTED] if s.reason)
    return f"{len(bad)} of {len(shards)} shards {verb}: {named}" + (f" ({reasons})" if reasons else "")


def reduction_close(store: Store, slot: Slot, shards: Sequence[Slot]) -> RunClose:
    """How the reduction run of `slot` ends: its reduced outputs and fingerprint, or why it cannot be computed."""
    from mayuri.experiment.upstream_positions import by_position
    from mayuri.fingerprint import config_key, fingerprint, used_key
    from mayuri.reduce import ReduceError

    inst = slot.instance
    try:
        outputs = reduced_values(store, shards, inst.config["reduction"]["reduce"])
    except ReduceError as exc:
        return RunClose("failed", None, f"cannot reduce the shards: {exc}", outputs={})
    # Nothing but the shards went in (no param is used): the same shards give the same fingerprint.
    key = used_key([], inst.key_params)
    upstream = by_position(slot.upstream_fps, inst.positions)
    return RunClose("succeeded", None, None, fingerprint=fingerprint(config_key(inst.base_hash, key), upstream, (), {}),
                    outputs=outputs, params_used=[], used_key=key)


def keep_outputs(run_dir: Path, store_root: Path, outputs: Mapping[str, Any]) -> None:
    """The reduction's outputs.json, as any run has; the store's record is what counts, so a failed write is no error."""
    from mayuri.job import OUTPUTS_FILE
    from mayuri.scheduler.launch import make_run_folder

    try:
        make_run_folder(run_dir, store_root)
        (run_dir / OUTPUTS_FILE).write_text(json.dumps(dict(outputs), indent=2, sort_keys=True), encoding="utf-8")
    except OSError:
        pass


def load_cached_outputs(store: Store, shards: Sequence[Slot]) -> None:
    """Fill in the outputs of shards the cache answered: the planner reads them only when they are needed."""
    from mayuri.store.shard_queries import outputs_of_runs

    wanted = [s.run_id for s in shards if s.state == "cached" and not s.outputs and s.run_id]
    if wanted:
        loaded = outputs_of_runs(store, wanted)
        for shard in shards:
            if shard.state == "cached" and not shard.outputs and shard.run_id in loaded:
                shard.outputs = loaded[shard.run_id]


def _last_words(shard: Slot) -> str:
    """`: <the last line the shard wrote to stderr>`, when it failed and wrote one."""
    if shard.state != "failed" or shard.run_dir is None:
        return ""
    try:
        with open(log_file(shard.run_dir, "stderr"), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 2048))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return f": {lines[-1][:200]}" if lines else ""


def reduced_values(store: Store, shards: Sequence[Slot], rules: Sequence[Any]) -> dict[str, Any]:
    """The reduced outputs of settled shards (raises ReduceError when a value cannot be reduced)."""
    from mayuri.experiment.spec import Reduction
    from mayuri.store.metric_queries import metric_summaries

    reductions = [Reduction(r["name"], r["kind"], r["weight"], r["metric"]) for r in rules]
    if not reductions:
        return {}
    load_cached_outputs(store, shards)
    ordered = sorted(shards, key=_index)
    wanted = {name for r in reductions for name in (r.name, r.weight) if name}
    # Metrics are read only when some shard lacks an output (or a metric is asked for by name).
    need_metrics = any(r.metric for r in reductions) or any(not wanted <= s.outputs.keys() for s in ordered)
    summaries = metric_summaries(store, [s.run_id for s in ordered if s.run_id]) if need_metrics else {}
    metrics = [{k: v.last for k, v in summaries.get(s.run_id or "", {}).items()} for s in ordered]
    return reduce_shards(reductions, [s.outputs for s in ordered], metrics)


@dataclass(frozen=True)
class ShardValues:
    """What `mayuri test` prints for one sharded test: each shard's values and the reduced ones."""

    test: str
    names: tuple[str, ...]
    # (shard index, run id, state, {name: value}) of each shard, in shard order.
    shards: tuple[tuple[int, str | None, str, dict[str, Any]], ...]
    reduced: dict[str, Any]
    state: str


def shard_values(store: Store, outcome: Outcome) -> tuple[ShardValues, ...]:
    """The per-shard and reduced values of every sharded test in an outcome (its reduced names)."""
    from mayuri.store.metric_queries import metric_summaries

    by_key = {s.instance.key: s for s in outcome.slots}
    found = []
    for slot in outcome.slots:
        if slot.instance.job.kind != "test" or not is_reduction(slot.instance):
            continue
        names = tuple(r.name for r in slot.instance.job.reduce)
        shards = sorted((by_key[k] for k in slot.instance.upstream_keys), key=_index)
        load_cached_outputs(store, shards)
        metrics = metric_summaries(store, [s.run_id for s in shards if s.run_id]) if names else {}
        rows = []
        for shard in shards:
            mets = {k: v.last for k, v in metrics.get(shard.run_id or "", {}).items()}
            values = {}
            for rule in slot.instance.job.reduce:
                found_it, value = lookup(rule.name, rule.metric, shard.outputs, mets)
                if found_it:
                    values[rule.name] = value
            rows.append((_index(shard), shard.run_id, shard.state, values))
        found.append(ShardValues(slot.instance.key, names, tuple(rows), dict(slot.outputs), slot.state))
    return tuple(found)
