"""Upstreams keyed by their position in `depends_on`, not by their name.

Frozen once released. No column is added. The cache now names each upstream
of a job by its position in `depends_on` (`#0`, `#1`, ...) in every key it
compares (mayuri/experiment/upstream_positions.py), and a run's config lists
its upstreams' names in that order under `upstream`. Runs recorded before
hold their upstreams by name.

Here the runs whose upstreams can be placed without doubt are rewritten to
the new keys: a run with one upstream (its only `depends_on` entry is `#0`;
for a sharded job's reduction, whose upstreams are its own shards, `shards`,
with at most one upstream named in its config). Their config gets the list,
and `base_hash`, `used_key`, `upstream` and the upstream files read (in
`closure_info`) are recomputed with the placeholders and keys naming
positions, so these runs are found as new ones are, renames included. A run
with several upstreams keeps its keys by name (its config does not say in
which order they were listed): the cache finds it by those names, as before.
The fingerprint is left as recorded (`fingerprint_version` below 3 says it
named its upstreams; `show --why` recomputes it that way).

The hashing of `mayuri.hashing.hash_structure`, the placeholders' rewriting
and the used params' values are copied as they are today: a migration never
imports code that may change.
"""

import hashlib
import json
import re
from typing import Any

from peewee import Database

PREFIX = "${mayuri.upstream."
_NAMES = re.compile(r"\$\{mayuri\.upstream\.([^.}]+)\.")
_MISSING = object()


def _hash(kind: str, value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha512(kind.encode() + b"\0" + text.encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _name_free(value: Any, where: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, position in where.items():
            value = value.replace(PREFIX + name + ".", PREFIX + position + ".")
        return value
    if isinstance(value, dict):
        return {k: _name_free(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_name_free(v, where) for v in value]
    return value


def _value_at(params: dict[str, Any], name: str) -> Any:
    value: Any = params
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return params.get(name, _MISSING)
        value = value[part]
    return value


def _used_values(used: list[str] | None, params: dict[str, Any]) -> dict[str, Any]:
    if used is None:
        return {"*": dict(params)}
    values = {name: _value_at(params, name) for name in used}
    return {"used": {k: v for k, v in values.items() if v is not _MISSING},
            "absent": sorted(k for k, v in values.items() if v is _MISSING)}


def _base_hash(config: dict[str, Any], where: dict[str, str]) -> str:
    kept = {k: ({n: v for n, v in part.items() if n != "of"} if k in ("shard", "reduction") and isinstance(part, dict)
                else part)
            for k, part in config.items() if k not in ("params", "upstream")}
    return _hash("job-base/v1", _name_free(kept, where))


def _rewritten(config: dict[str, Any], upstream: dict[str, Any], used_text: str | None, info_text: str | None
               ) -> tuple[str, str, str, str, str | None] | None:
    """(config, base_hash, used_key, upstream, closure_info) by position; None when it cannot be placed."""
    if "upstream" in config or len(upstream) != 1:
        return None
    (key, results), = upstream.items()
    named = set(_NAMES.findall(_canonical(config)))
    if "reduction" in config:
        if len(named) > 1:
            return None
        listed, new_key = sorted(named), "shards"
    else:
        if not named <= {key}:
            return None
        listed, new_key = [key], "#0"
    where = {name: f"#{index}" for index, name in enumerate(listed)}
    config = {**config, "upstream": listed}
    used = json.loads(used_text) if used_text is not None else None
    params = config.get("params")
    used_key = _hash("used-params/v1", _used_values(used, _name_free(params if isinstance(params, dict) else {},
                                                                       where)))
    info = json.loads(info_text) if info_text else None
    if isinstance(info, dict) and isinstance(info.get("upstream_reads"), list):
        info["upstream_reads"] = sorted([new_key if read[0] == key else read[0], *read[1:]]
                                        for read in info["upstream_reads"])
    return (_canonical(config), _base_hash(config, where), used_key, _canonical({new_key: results}),
            _canonical(info) if info is not None else info_text)


def up(migrator: object, db: Database) -> None:
    rows = db.execute_sql(
        "SELECT id, config, upstream, params_used, closure_info FROM run "
        "WHERE config IS NOT NULL AND upstream IS NOT NULL AND upstream != '{}'"
    ).fetchall()
    updates = []
    for run_id, config_text, upstream_text, used_text, info_text in rows:
        try:
            config, upstream = json.loads(config_text), json.loads(upstream_text)
            if not isinstance(config, dict) or not isinstance(upstream, dict):
                continue
            new = _rewritten(config, upstream, used_text, info_text)
        except (ValueError, TypeError, IndexError):
            continue  # left by name: the cache still finds it so
        if new is not None:
            updates.append((*new, run_id))
    if updates:
        db.cursor().executemany(
            "UPDATE run SET config = ?, base_hash = ?, used_key = ?, upstream = ?, closure_info = ? WHERE id = ?",
            updates,
        )
