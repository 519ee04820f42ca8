"""Sweep points of a job: grids over lists and ranges, zipped groups, CLI sweeps.

`sweep: {lr: [1e-3, 3e-4], seed: {range: [0, 3]}}` is a grid (every
combination); a key naming several params separated by commas zips them:
`"lr,batch_size": [[1e-3, 32], [3e-4, 64]]` gives two points, not four.
"""

from __future__ import annotations

import itertools
from typing import Any

from mayuri.errors import ExperimentError


def _range_values(spec: Any, key: str) -> list[Any]:
    bounds = spec.get("range") if isinstance(spec, dict) else None
    if (
        not isinstance(bounds, list)
        or not 1 <= len(bounds) <= 3
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    ):
        raise ExperimentError(f"sweep.{key}: a range is written {{range: [start, stop, step]}}.")
    return range_values(bounds, f"sweep.{key}")


def range_values(bounds: list[Any], where: str) -> list[Any]:
    """The values of a range of one to three numbers (stop; start, stop; start, stop, step)."""
    start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds, 1)[:3]
    if step == 0 or (stop - start) / step < 0:
        raise ExperimentError(f"{where}: the range {bounds} is empty.", hint="Check start, stop and step.")
    values, value, index = [], start, 0
    while (value < stop) if step > 0 else (value > stop):
        values.append(value)
        index += 1
        value = start + index * step
        if index > 100_000:
            raise ExperimentError(f"{where}: the range {bounds} has more than 100,000 values.")
    return values


def _axis(key: str, spec: Any) -> list[dict[str, Any]]:
    names = [n.strip() for n in key.split(",")]
    if isinstance(spec, dict):
        values = _range_values(spec, key)
    elif isinstance(spec, list):
        values = spec
    else:
        raise ExperimentError(
            f"sweep.{key} must be a list of values or {{range: [start, stop, step]}}, not {spec!r}."
        )
    if not values:
        raise ExperimentError(f"sweep.{key} is empty: a sweep needs at least one value.",
                              hint="Add values, or remove the key from `sweep`.")
    if len(names) == 1:
        return [{names[0]: v} for v in values]
    points = []
    for value in values:
        if not isinstance(value, list) or len(value) != len(names):
            raise ExperimentError(
                f"sweep.{key} zips {len(names)} params: each entry must be a list of {len(names)} values, not {value!r}."
            )
        points.append(dict(zip(names, value, strict=True)))
    return points


def sweep_points(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """All points of a sweep (one empty point when there is no sweep)."""
    axes = [_axis(key, spec) for key, spec in sweep.items()]
    points = []
    for combo in itertools.product(*axes):
        point: dict[str, Any] = {}
        for part in combo:
            point.update(part)
        points.append(point)
    return points or [{}]


def sweep_axes(sweep: dict[str, Any]) -> dict[str, int]:
    """The number of values of each axis of a sweep (the grid is their product), without making points."""
    return {key: len(_axis(key, spec)) for key, spec in sweep.items()}
