"""The filter bar's little language, turned into a store `RunQuery`.

`status:failed,cancelled user:ana exp:addition job:train lr>1e-3 batch_size=64
metric:loss sort:-duration 3f2a` — fields with `name:value[,value]`, params with
a comparison, `metric:KEY` for the metric column, `sort:[-]COLUMN`, and bare
words that match an id prefix, a job or an experiment. Pure: no store, no UI.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from typing import Any

from mayuri.store.browse_queries import SORTABLE, ParamCondition, RunQuery

FIELD_ALIASES = {"status": "status", "user": "user", "exp": "experiment", "experiment": "experiment",
                 "job": "job", "host": "host"}
_CONDITION = re.compile(r"^([A-Za-z_][\w.\-/]*)\s*(<=|>=|!=|=|<|>)\s*(.+)$")


class FilterError(ValueError):
    """The filter text cannot be understood; the message says which part and why."""


def parse_scalar(text: str) -> Any:
    """A number, a boolean or a string, as a param value is compared."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def parse_filter(text: str, base: RunQuery | None = None) -> RunQuery:
    """The query that `text` describes; sort and metric default to those of `base`."""
    query = base or RunQuery()
    query = replace(query, fields={}, params=(), words=())
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"unbalanced quotes ({exc})") from None
    fields: dict[str, tuple[str, ...]] = {}
    params: list[ParamCondition] = []
    words: list[str] = []
    for token in tokens:
        name, colon, value = token.partition(":")
        condition = _CONDITION.match(token)
        if colon and not condition:
            name = name.lower()
            if not value:
                raise FilterError(f"'{token}' needs a value after the colon")
            if name == "metric":
                query = replace(query, metric=value)
            elif name == "sort":
                column = value.lstrip("-")
                if column not in SORTABLE:
                    raise FilterError(f"cannot sort by '{column}' (columns: {', '.join(SORTABLE)})")
                query = replace(query, sort=column, descending=value.startswith("-"))
            elif name in FIELD_ALIASES:
                key = FIELD_ALIASES[name]
                fields[key] = fields.get(key, ()) + tuple(v for v in value.split(",") if v)
            else:
                known = ", ".join(sorted({*FIELD_ALIASES, "metric", "sort"}))
                raise FilterError(f"unknown field '{name}' (fields: {known}; params use lr>1e-3)")
        elif condition:
            key, op, raw = condition.groups()
            params.append(ParamCondition(key, op, parse_scalar(raw)))
        else:
            words.append(token)
    return replace(query, fields=fields, params=tuple(params), words=tuple(words))


def describe(query: RunQuery) -> str:
    """The query written back in the filter language (what the bar shows after a change)."""
    parts = [f"{name}:{','.join(values)}" for name, values in query.fields.items()]
    parts += [f"{c.key}{c.op}{c.value}" for c in query.params]
    parts += list(query.words)
    return " ".join(parts)
