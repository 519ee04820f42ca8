"""No work done twice at once: the claim key of a run, and the waits on another run's claim.

A run about to start claims its work in the store (`run_claim`, taken with
the run, freed with it). Another instance whose claim key is taken, in this
`mayuri run` or another one on the same store, does not start: it waits for
that run, then asks the cache again (a hit when the run did the same work)
or claims the work itself. The wait ends when the holder's run ends, or when
its scheduler is found dead (then the claim is freed and the work taken over):
never on a dead scheduler.

The claim key is the cache key as far as it is known before the job runs:
the config without params, the upstream results, and the values of the
params the job is known to use (written into its command, swept in its own
`sweep:`, or read by an earlier run of the same config). Two sweep points
that differ only in a param the job is not known to use share a key: the
second waits for the first and is reused if the job never read it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from mayuri.experiment.expand import JobInstance
from mayuri.experiment.upstream_positions import by_position
from mayuri.hashing import hash_structure
from mayuri.liveness import scheduler_alive
from mayuri.params_used import used_values
from mayuri.store.claim_records import drop_claims_of
from mayuri.store.db import Store
from mayuri.store.scheduler_queries import ClaimHolder, claim_holders, scheduler_row


def claim_key(instance: JobInstance, upstream: Mapping[str, list[str]],
              used_sets: Sequence[list[str] | None]) -> str:
    """The key of the work an instance is about to do (see the module's text); `upstream` by name."""
    names: set[str] | None = set(instance.static_used) | set(instance.job.sweep)
    for used in used_sets:
        if used is None or names is None:
            names = None
            break
        names |= set(used)
    if instance.job.strict:
        names = None
    values = used_values(None if names is None else sorted(names), instance.key_params)
    return hash_structure("claim/v1", [instance.base_hash, by_position(upstream, instance.positions), values])


def waiting_note(holder: ClaimHolder | None, own_key: str | None) -> str:
    """`waiting for run 3f2a91c0 (alice, another mayuri run)`, or for an instance of this run."""
    if own_key is not None:
        return f"waiting for {own_key} (the same work)"
    if holder is None:
        return "waiting for another run of the same work"
    return f"waiting for run {holder.run_id[:8]} ({holder.user}, another mayuri run)"


def settled_waits(store: Store, run_ids: Iterable[str], own_scheduler: str | None) -> set[str]:
    """Those of the awaited runs that no longer hold their claim; frees the claims of dead schedulers' runs."""
    ids = list(run_ids)
    if not ids:
        return set()
    holders = claim_holders(store, ids)
    done = set()
    now = time.time()
    for run_id in ids:
        holder = holders.get(run_id)
        if holder is None or not holder.claimed or holder.status not in ("queued", "running"):
            done.add(run_id)
            continue
        if holder.scheduler_id is None or holder.scheduler_id == own_scheduler:
            continue
        row = scheduler_row(store, holder.scheduler_id)
        if row is None or row.status != "running" or not scheduler_alive(row, now):
            # Its scheduler died with the run unsettled: take the work over.
            drop_claims_of(store, run_id)
            done.add(run_id)
    return done
