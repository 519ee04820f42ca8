"""Checking a test's `expect:` against what its run recorded (outputs and logged metrics).

`expect: {accuracy: ">= 0.9", loss.min: "<= 0.5", split: "in [val, test]"}`.
A name is an output set with `mayuri.output`, else a logged metric (its last
value; `.min`, `.max`, `.last` or `.count` pick another summary). Expectations
are judged each time `mayuri test` runs, from what is recorded: tightening a
threshold needs no rerun.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.experiment.overrides import parse_value

_COMPARE = re.compile(r"^\s*(>=|<=|==|!=|>|<|in|not in)\s+(.+?)\s*$")
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
    "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}
SUMMARY_FIELDS = ("last", "min", "max", "count")


@dataclass(frozen=True)
class Expectation:
    """One parsed `name: "op value"` line."""

    name: str
    op: str
    expected: Any
    text: str


@dataclass(frozen=True)
class Verdict:
    """The judgement of one expectation for one test run."""

    test: str
    run_id: str | None
    expectation: Expectation
    actual: Any
    passed: bool
    note: str = ""


def parse_expectation(name: str, text: str) -> Expectation:
    """Parse `">= 0.9"`, `"== 3"`, `"in [a, b]"`; an error says how to write one."""
    match = _COMPARE.match(str(text))
    if not match:
        raise ExperimentError(
            f"expect.{name}: '{text}' is not a comparison.",
            hint="Write e.g. \">= 0.9\", \"<= 0.1\", \"== 3\" or \"in [a, b]\".",
        )
    op, raw = match.group(1), match.group(2)
    expected = parse_value(raw)
    if op in ("in", "not in") and not isinstance(expected, list):
        raise ExperimentError(f"expect.{name}: '{op}' needs a list, like \"in [a, b]\".")
    return Expectation(name, op, expected, str(text))


def _lookup(name: str, outputs: Mapping[str, Any], metrics: Mapping[str, Any]) -> tuple[bool, Any]:
    if name in outputs:
        return True, outputs[name]
    if name in metrics:
        return True, metrics[name].last
    base, dot, field = name.rpartition(".")
    if dot and field in SUMMARY_FIELDS and base in metrics:
        return True, getattr(metrics[base], field)
    return False, None


def judge(
    test: str, run_id: str | None, expectation: Expectation,
    outputs: Mapping[str, Any], metrics: Mapping[str, Any],
) -> Verdict:
    """Compare what a run recorded with one expectation."""
    found, actual = _lookup(expectation.name, outputs, metrics)
    if not found:
        known = sorted({*outputs, *metrics})
        note = "not recorded (outputs and metrics: " + (", ".join(known) or "none") + ")"
        return Verdict(test, run_id, expectation, None, False, note)
    if isinstance(actual, float) and math.isnan(actual):
        return Verdict(test, run_id, expectation, actual, False, "value is NaN")
    try:
        passed = bool(_OPERATORS[expectation.op](actual, expectation.expected))
    except TypeError:
        return Verdict(test, run_id, expectation, actual, False,
                       f"cannot compare {type(actual).__name__} with {type(expectation.expected).__name__}")
    return Verdict(test, run_id, expectation, actual, passed)
