"""Fingerprints and the reasons they differ.

A run's fingerprint is SHA-512 over its config hash, its upstreams'
fingerprints, the digests of the files and listings in its closure, and the
environment parts that `[cache] key_env` selects. Two runs with the same
fingerprint did the same work. The functions that explain a difference in
words live here too, next to what they explain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mayuri.experiment.interpolate import as_text
from mayuri.experiment.overrides import flat_params
from mayuri.hashing import ABSENT, LINK_MARK, hash_structure
from mayuri.params_used import used_values
from mayuri.store.records import ClosureRow


def fingerprint(
    config_hash: str,
    upstream: Mapping[str, list[str]],
    closure: Iterable[ClosureRow],
    env_key: Mapping[str, Any],
    upstream_reads: Sequence[tuple[str, int, str, str]] = (),
) -> str:
    """The cache key of a run (`upstream_reads`: the upstream files it read, when it counts only those)."""
    # Products are what the run made, not what it used: checked on reuse, not part of the key.
    entries = sorted({(row.path, row.kind, row.sha512) for row in closure if row.role != "product"})
    key: dict[str, Any] = {"config": config_hash, "upstream": dict(upstream), "closure": entries, "env": dict(env_key)}
    if upstream_reads:
        key["upstream_reads"] = [list(read) for read in upstream_reads]
    return hash_structure("fingerprint/v1", key)


def used_key(used: list[str] | None, params: Mapping[str, Any]) -> str:
    """The hash of the params a run used (all of them when None): what a cached run must share."""
    return hash_structure("used-params/v1", used_values(used, params))


def config_key(base_hash: str, used: str) -> str:
    """What stands for the config in a fingerprint: the config without params, and the used params."""
    return hash_structure("job-used/v1", [base_hash, used])


# One difference between two configs: (what, name, before, after). `what` is `removed`, `added` or
# `changed` for a param (named by its dotted path), or `other` with the words in `name`. Kept as
# tuples and put in words only where shown: explaining a miss compares a config with up to 50
# earlier ones and shows one.
Difference = tuple[str, str, Any, Any]


def param_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`param lr 0.1 -> 0.2` for every param that differs (added and removed ones too)."""
    return [in_words(d) for d in _param_differences(flat_params(old), flat_params(new))]


def _param_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Difference]:
    differences: list[Difference] = []
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            differences.append(("removed", key, before[key], None))
        elif key not in before:
            differences.append(("added", key, None, after[key]))
        elif before[key] != after[key] or type(before[key]) is not type(after[key]):
            differences.append(("changed", key, before[key], after[key]))
    return differences


def in_words(difference: Difference) -> str:
    """One difference as `config_changes` says it."""
    what, name, before, after = difference
    if what == "removed":
        return f"param {name} removed (was {as_text(before)})"
    if what == "added":
        return f"param {name} added ({as_text(after)})"
    if what == "changed":
        return f"param {name} {as_text(before)} -> {as_text(after)}"
    return name


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], used: list[str] | None = None) -> list[str]:
    """What differs between two job configs, in words, params first (only those the old run used, if known)."""
    return [in_words(d) for d in config_differences(old, new, used)]


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                       used: list[str] | None = None) -> list[Difference]:
    """`config_changes`, not yet in words."""
    old_params, new_params = flat_params(old.get("params", {})), flat_params(new.get("params", {}))
    differences = _param_differences(old_params, new_params)
    if used is not None:
        differences = [d for d in differences if any(d[1] == u or d[1].startswith(f"{u}.") for u in used)]
    for key in ("command", "shell", "env", "inputs", "outputs", "kind", "gather", "shard", "reduction"):
        if old.get(key) == new.get(key):
            continue
        if key == "command" and _same_but_params(old.get(key), new.get(key), old_params, new_params):
            continue
        if key == "shard" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            differences.append(("other", _shard_change(old[key], new[key]), None, None))
            continue
        words = f"{key} changed" if key != "env" else _env_change(old.get("env", {}), new.get("env", {}))
        differences.append(("other", words, None, None))
    return differences


def _same_but_params(old: Any, new: Any, old_params: dict[str, Any], new_params: dict[str, Any]) -> bool:
    """Whether two commands differ only where changed param values were written into them."""
    if not isinstance(old, list) or not isinstance(new, list) or len(old) != len(new):
        return False
    swaps = {
        as_text(new_params[k]): as_text(old_params[k])
        for k in old_params.keys() & new_params.keys()
        if old_params[k] != new_params[k]
    }
    for before, after in zip(old, new, strict=True):
        if before == after:
            continue
        for new_text, old_text in swaps.items():
            after = after.replace(new_text, old_text)
        if before != after:
            return False
    return True


def _shard_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """`files of shard 3 changed (+data/x.jsonl)`, or `shard 3 of 8 -> 3 of 4`."""
    if (old.get("index"), old.get("count")) != (new.get("index"), new.get("count")):
        return f"shard {old.get('index')} of {old.get('count')} -> {new.get('index')} of {new.get('count')}"
    before, after = set(old.get("files") or ()), set(new.get("files") or ())
    moves = [f"+{p}" for p in sorted(after - before)] + [f"-{p}" for p in sorted(before - after)]
    shown = ", ".join(moves[:3]) + (f" (+{len(moves) - 3} more)" if len(moves) > 3 else "")
    return f"files of shard {new.get('index')} changed ({shown})"


def _env_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    names = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return "env " + ", ".join(names) + " changed"


def closure_changes(
    recorded: Iterable[ClosureRow], current: Mapping[tuple[str, str], tuple[str, int]], run: str | None = None
) -> list[str]:
    """`helpers/a.py changed`, `data/x.csv deleted`, `data/ listing changed` for each entry that differs.

    Links say where they point now (`data/current.txt now points to v2.txt`);
    products, files the run made, say `out/model.pt missing` or `... changed
    since run RUN`.
    """
    changes = []
    for row in sorted(recorded, key=lambda r: (r.role != "code", r.path)):
        now = current.get((row.path, row.kind))
        if now is None or now[0] == row.sha512:
            continue
        if row.kind == "listing":
            label = row.path.rstrip("/") + "/"
            changes.append(f"{label} listing changed" if now[0] != ABSENT else f"{label} deleted")
        elif row.kind == "link":
            target = now[0][len(LINK_MARK):] if now[0].startswith(LINK_MARK) else None
            changes.append(f"{row.path} now points to {target}" if target is not None
                           else f"{row.path} is no longer a link")
        elif row.role == "product":
            since = f" since run {run}" if run else ""
            changes.append(f"{row.path} missing" if now[0] == ABSENT else f"{row.path} changed{since}")
        elif now[0] == ABSENT:
            changes.append(f"{row.path} deleted")
        elif row.sha512 == ABSENT:
            changes.append(f"{row.path} created")
        else:
            changes.append(f"{row.path} changed")
    return changes


def env_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The key_env parts that differ: `python 3.11.7 -> 3.11.8`, `packages changed (torch)`."""
    changes = []
    for part in sorted(old.keys() | new.keys()):
        before, after = old.get(part), new.get(part)
        if before == after:
            continue
        if part == "packages" and isinstance(before, dict) and isinstance(after, dict):
            names = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            changes.append("packages changed (" + ", ".join(names) + ")")
        elif isinstance(before, str | None) and isinstance(after, str | None):
            changes.append(f"{part} {before} -> {after}")
        else:
            changes.append(f"{part} changed")
    return changes


def summarize(changes: list[str], limit: int = 3) -> str:
    """At most `limit` changes joined for one line, with a count of the rest."""
    shown = ", ".join(changes[:limit])
    if len(changes) > limit:
        shown += f" (+{len(changes) - limit} more)"
    return shown
