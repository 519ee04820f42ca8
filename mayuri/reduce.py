"""Reducing the shards of a job to one result: `mean`, `sum`, `min`, `max`, `count`, `concat`, `weighted_mean`.

Pure functions over the values each shard recorded (an output, or the last
value of a logged metric). A value that cannot be reduced raises
`ReduceError` with what is wrong and in which shard.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from mayuri.experiment.spec import Reduction


class ReduceError(ValueError):
    """A shard's value cannot be reduced as asked."""


def _number(name: str, index: int, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ReduceError(f"shard {index}: '{name}' is {value!r}, not a number")
    return float(value)


def _numbers(name: str, values: Sequence[tuple[int, Any]]) -> list[float]:
    return [_number(name, index, value) for index, value in values]


def _tidy(value: float) -> int | float:
    # Sums of integers stay integers (`n: sum` of counts prints as 1000, not 1000.0).
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def reduce_values(rule: Reduction, values: Sequence[tuple[int, Any]],
                  weights: Sequence[tuple[int, Any]] = ()) -> Any:
    """The reduced value of (shard index, value) pairs."""
    if rule.kind == "count":
        return len(values)
    if rule.kind == "concat":
        joined: list[Any] = []
        for _, value in values:
            joined.extend(value if isinstance(value, list) else [value])
        return joined
    if not values:
        raise ReduceError(f"no shard recorded '{rule.name}'")
    numbers_ = _numbers(rule.name, values)
    if rule.kind == "sum":
        all_int = all(isinstance(v, int) for _, v in values)
        total = math.fsum(numbers_)
        return _tidy(total) if all_int else total
    if rule.kind == "min":
        return min(v for _, v in values)
    if rule.kind == "max":
        return max(v for _, v in values)
    if rule.kind == "mean":
        return math.fsum(numbers_) / len(numbers_)
    assert rule.kind == "weighted_mean" and rule.weight is not None
    weight_of = dict(weights)
    pairs = []
    for index, value in values:
        if index not in weight_of:
            raise ReduceError(f"shard {index}: weight '{rule.weight}' not recorded")
        pairs.append((_number(rule.name, index, value), _number(rule.weight, index, weight_of[index])))
    total_weight = math.fsum(w for _, w in pairs)
    if total_weight == 0:
        raise ReduceError(f"the weights '{rule.weight}' sum to 0")
    return math.fsum(v * w for v, w in pairs) / total_weight


def lookup(name: str, metric: bool, outputs: Mapping[str, Any], metrics: Mapping[str, float]) -> tuple[bool, Any]:
    """A shard's value of `name`: its output (unless a metric is asked for), else its metric's last value."""
    if not metric and name in outputs:
        return True, outputs[name]
    if name in metrics:
        return True, metrics[name]
    return False, None


def reduce_shards(rules: Sequence[Reduction], outputs: Sequence[Mapping[str, Any]],
                  metrics: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """The job's result from every shard's outputs and last metric values (in shard order)."""
    result: dict[str, Any] = {}
    for rule in rules:
        values, weights, missing = [], [], []
        for index, (outs, mets) in enumerate(zip(outputs, metrics, strict=True)):
            found, value = lookup(rule.name, rule.metric, outs, mets)
            if found:
                values.append((index, value))
            elif rule.kind != "count":
                missing.append(index)
            if rule.weight is not None:
                found, weight = lookup(rule.weight, False, outs, mets)
                if found:
                    weights.append((index, weight))
        if missing:
            shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
            what = "logged metric" if rule.metric else "output or metric"
            raise ReduceError(f"{len(missing)} of {len(outputs)} shards did not record {what} "
                              f"'{rule.name}': {shown}")
        result[rule.name] = reduce_values(rule, values, weights)
    return result
