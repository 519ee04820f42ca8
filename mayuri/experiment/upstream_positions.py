"""Upstreams named by their place in `depends_on`, not by their name, in what the cache keys on.

A downstream job refers to its upstreams by name: `${mayuri.upstream.prep.data}`
in its params and command, and the plan knows its upstreams' results by
name. What the job does does not depend on what its upstreams are called, so
every key the cache compares (the config without params, the params used, the
upstream results, the upstream files read, the claim) names each upstream by
its position among the job's `depends_on` instead: `#0`, `#1`, ... Renaming an
upstream job then reruns nothing; pointing a param at another upstream's
output changes the position its placeholder names, and reordering
`depends_on` changes the key (a needless rerun, never a false hit: the key
says which position gave which param and which results).

The config recorded on a run keeps the names (what people read in `show`)
and lists them in order under `upstream`, so a recorded config is made
name-free the same way later (`show --why`, the explanation of a miss). Runs
recorded before this keyed their upstreams by name: migration 0018 placed
those with one upstream, and the cache finds the others by their names
(mayuri/cache.py), so they stay hits where they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from mayuri.experiment.interpolate import UPSTREAM_PREFIX

# The config key that lists a job's upstreams in `depends_on` order (not part of any cache key).
UPSTREAM_KEY = "upstream"
PREFIX = "${" + UPSTREAM_PREFIX
# What a reduction's upstreams (its own shards) are keyed as: its job's name is no part of its work.
SHARDS = "shards"

V = TypeVar("V")


def positions(names: Iterable[str]) -> dict[str, str]:
    """Each upstream name's position: `{"prep": "#0", "tok": "#1"}`."""
    return {name: f"#{index}" for index, name in enumerate(names)}


def config_positions(config: Mapping[str, Any]) -> dict[str, str]:
    """The positions of the upstreams a config lists (none for a job without upstreams, or an old run)."""
    names = config.get(UPSTREAM_KEY)
    return positions(names) if isinstance(names, list) else {}


def name_free(value: Any, where: Mapping[str, str]) -> Any:
    """`value` (JSON-like) with each upstream placeholder naming a position instead of a job
    (`where`: name -> position)."""
    if not where:
        return value
    # Names hold no dot, so `${mayuri.upstream.NAME.` cannot be the start of another name's placeholder.
    return _swapped(value, tuple((PREFIX + name + ".", PREFIX + position + ".") for name, position in where.items()))


def _swapped(value: Any, swaps: tuple[tuple[str, str], ...]) -> Any:
    # Plain type checks, not the Mapping ABC: every instance of a warm check walks its config here.
    if isinstance(value, str):
        if PREFIX in value:
            for before, after in swaps:
                value = value.replace(before, after)
        return value
    if isinstance(value, dict):
        return {k: _swapped(v, swaps) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_swapped(v, swaps) for v in value]
    return value


def by_position(upstream: Mapping[str, V], where: Mapping[str, str]) -> dict[str, V]:
    """Upstream results (or folders) keyed by position instead of name."""
    return {where.get(name, name): value for name, value in upstream.items()}


def by_name(upstream: Mapping[str, V], where: Mapping[str, str]) -> dict[str, V]:
    """Upstream results keyed by position (as a run records them) keyed by name again."""
    names = {position: name for name, position in where.items()}
    return {names.get(key, key): value for key, value in upstream.items()}


def reads_by_position(reads: Iterable[tuple[str, int, str, str]], where: Mapping[str, str]
                      ) -> list[tuple[str, int, str, str]]:
    """Upstream files read, `(upstream, index, path, sha512)`, with the upstream named by position."""
    return sorted((where.get(name, name), index, path, digest) for name, index, path, digest in reads)
