"""The `shards:` and `reduce:` keys of a job, checked as they are parsed.

`shards: 8` or `shards: {files: "data/eval/*.jsonl", count: 8}`;
`reduce: {accuracy: mean, n: sum, errors: concat, acc: {weighted_mean: n}, loss: {metric: mean}}`.
What needs the project's files (a glob that matches nothing) is checked
when the shards are made (`shard_expand.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.experiment.plain import to_plain, type_name
from mayuri.experiment.spec import REDUCE_KINDS, Reduction, ShardSpec
from mayuri.suggest import did_you_mean

# reader.fail of parse.py: (message, node, key, hint) -> the error to raise.
Fail = Callable[..., ExperimentError]
SHARD_KEYS = ("files", "count")


def _count(value: Any, fail: Callable[[str], ExperimentError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"must be a whole number of shards, not {type_name(value)} ({value!r})")
    if value < 1:
        raise fail(f"must be at least 1, not {value}")
    return int(value)


def parse_shards(node: dict[str, Any], fail: Fail) -> ShardSpec:
    """`shards:` of a job node."""
    value = node["shards"]
    if isinstance(value, dict):
        for key in value:
            if key not in SHARD_KEYS:
                raise fail(f"unknown key '{key}' in shards — {did_you_mean(str(key), SHARD_KEYS)}", value, key)
        files = to_plain(value.get("files"))
        if not isinstance(files, str) or not files.strip():
            raise fail("shards.files must be a glob of data files, like \"data/eval/*.jsonl\".",
                       value, "files" if "files" in value else None)
        if "count" not in value:
            raise fail("shards needs a count with files, like {files: \"data/*.jsonl\", count: 8}.", node, "shards")
        count = _count(to_plain(value["count"]), lambda m: fail(f"shards.count {m}.", value, "count",
                                                                 hint="Write shards: {files: GLOB, count: 8}."))
        return ShardSpec(count, files)
    return ShardSpec(_count(to_plain(value), lambda m: fail(f"'shards' {m}.", node, "shards",
                                                            hint="Write shards: 8, or {files: GLOB, count: 8}.")))


def _kind_hint() -> str:
    return "Use one of " + ", ".join(k for k in REDUCE_KINDS if k != "weighted_mean") + \
        ", {weighted_mean: OUTPUT} or {metric: KIND} (the last value of a logged metric)."


def _rule(name: str, value: Any, where: Any, fail: Fail) -> Reduction:
    plain = to_plain(value)
    if isinstance(plain, str):
        if plain not in REDUCE_KINDS or plain == "weighted_mean":
            raise fail(f"reduce.{name}: unknown reduction {plain!r} — {did_you_mean(plain, REDUCE_KINDS)}",
                       where, name, hint=_kind_hint())
        return Reduction(name, plain)
    if isinstance(plain, dict) and len(plain) == 1:
        (kind, arg), = plain.items()
        if kind == "weighted_mean":
            if not isinstance(arg, str) or not arg:
                raise fail(f"reduce.{name}: weighted_mean needs the output that weighs each shard, "
                           "like {weighted_mean: n}.", where, name)
            return Reduction(name, "weighted_mean", weight=arg)
        if kind == "metric":
            inner = _rule(name, arg, where, fail)
            return Reduction(name, inner.kind, inner.weight, metric=True)
    raise fail(f"reduce.{name} must be a reduction, not {type_name(value)} ({plain!r}).", where, name,
               hint=_kind_hint())


def parse_reduce(node: dict[str, Any], outputs: tuple[str, ...], fail: Fail) -> tuple[Reduction, ...]:
    """`reduce:` of a job node; names must be declared outputs when the job declares `outputs:`."""
    value = node["reduce"]
    if not isinstance(value, dict) or not value:
        raise fail("'reduce' must map output names to reductions, like {accuracy: mean, n: sum}.", node, "reduce")
    if "shards" not in node:
        raise fail("'reduce' needs 'shards': it combines the results of a job's shards.", node, "reduce",
                   hint="Add `shards: 8` (or {files: GLOB, count: N}) to the job.")
    rules = tuple(_rule(str(name), rule, value, fail) for name, rule in value.items())
    if outputs:
        for rule in rules:
            for used in (rule.name, rule.weight):
                if used is None or used in outputs or (rule.metric and used == rule.name):
                    continue
                raise fail(f"reduce.{rule.name}: '{used}' is not an output of this job — "
                           f"{did_you_mean(used, outputs)}", value, rule.name,
                           hint=f"Declare it in `outputs:` ({', '.join(outputs)}), or reduce a logged metric "
                                f"with {{metric: {rule.kind}}}.")
    return rules
