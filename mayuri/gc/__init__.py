"""Garbage collection of the store: policy, mark (plan), sweep, and the gc lease.

`collect_garbage` is the one entry point for `mayuri gc` and `mayuri cache
rm`: it plans, asks the caller to approve the plan, and sweeps under the gc
lease. Nothing here prints; the CLI renders plans and results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mayuri.config import Settings
from mayuri.gc.lease import gc_lease
from mayuri.gc.plan import GcPlan, plan_gc
from mayuri.gc.policy import Policy, build_policy
from mayuri.gc.sweep import GcResult, sweep
from mayuri.store.db import Store


@dataclass(frozen=True)
class GcOutcome:
    """The plan shown, and what the sweep freed (None when nothing was swept)."""

    plan: GcPlan
    result: GcResult | None

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_json(),
            "result": self.result.to_json() if self.result else None,
        }


def gc_policy(settings: Settings, flags: Mapping[str, Any]) -> Policy:
    """The policy of `[gc]` in the project's mayuri.toml, overridden by the command's flags."""
    return build_policy(settings.gc, flags)


def collect_garbage(
    store: Store,
    policy: Policy,
    approve: Callable[[GcPlan], bool],
    explicit: set[str] | None = None,
) -> GcOutcome:
    """Plan, let `approve` see the plan and say yes or no, then sweep under the gc lease."""
    plan = plan_gc(store, policy, explicit)
    # `approve` sees even an empty plan, so that the caller can show it.
    if not approve(plan) or plan.empty:
        return GcOutcome(plan, None)
    with gc_lease(store) as lease:
        return GcOutcome(plan, sweep(store, plan, lease))


__all__ = ["GcOutcome", "GcPlan", "GcResult", "Policy", "collect_garbage", "gc_policy", "plan_gc"]
