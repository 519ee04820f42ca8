"""How `mayuri gc` and `mayuri cache` show things: Rich tables of plans, results and cache entries.

Formatting only, in the style of `mayuri/render.py`; the data comes from
`mayuri.gc` and `mayuri.cache_admin`.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mayuri.cache_admin import CacheEntry
from mayuri.gc.plan import GcPlan
from mayuri.gc.sweep import GcResult
from mayuri.render import when
from mayuri.units import format_duration, format_size


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in columns:
        table.add_column(
            column,
            justify="left" if column in ("what", "experiment", "job", "kept because") else "right",
        )
    return table


def plan_table(plan: GcPlan, limit: int = 20) -> Group:
    """The plan: bytes per category, the runs that go, and why others stay."""
    parts: list[Table | Text] = []
    summary = _table("what", "items", "bytes")
    for name, items, size in plan.categories():
        summary.add_row(name, str(items), format_size(size))
    summary.add_row(Text("total", style="bold"), "", Text(format_size(plan.bytes), style="bold"))
    parts.append(summary)
    if plan.runs:
        runs = _table("run", "experiment", "job", "status", "last used", "bytes")
        for run in plan.runs[:limit]:
            runs.add_row(
                run.id[:8],
                run.experiment,
                run.job,
                run.status,
                when(run.last_use),
                format_size(run.bytes),
            )
        parts.extend([Text(""), runs])
        if len(plan.runs) > limit:
            parts.append(
                Text(
                    f"... and {len(plan.runs) - limit} more runs (--json lists them all)",
                    style="dim",
                )
            )
    reasons = Counter(_reason_kind(why) for why in plan.kept.values())
    if reasons:
        kept = _table("kept because", "runs")
        for why, count in reasons.most_common():
            kept.add_row(why, str(count))
        parts.extend([Text(""), kept])
    if plan.leftovers_withheld:
        parts.append(Text(f"\nleftovers kept: {plan.leftovers_withheld}", style="bold yellow"))
    if plan.empty:
        parts.append(
            Text(
                f"\nnothing to free (grace period {format_duration(plan.policy.grace)}).",
                style="green",
            )
        )
    return Group(*parts)


def _reason_kind(why: str) -> str:
    # "needed by run 1a2b3c4d" is one reason however many runs need something.
    return "needed by a kept run" if why.startswith("needed by run ") else why


def result_table(result: GcResult) -> Group:
    """What a sweep freed, and what it skipped because it changed since the plan."""
    table = _table("what", "items", "bytes")
    for name, (items, size) in result.freed.items():
        table.add_row(name, str(items), format_size(size))
    table.add_row(
        Text("freed", style="bold green"), "", Text(format_size(result.bytes), style="bold green")
    )
    parts: list[Table | Text] = [table]
    for item, why in result.skipped:
        parts.append(Text(f"skipped {item}: {why}", style="yellow"))
    return Group(*parts)


def cache_table(entries: list[CacheEntry]) -> Table:
    """Cached results per experiment and job."""
    table = _table("experiment", "job", "entries", "pinned", "size", "hits", "last used")
    for entry in entries:
        table.add_row(
            entry.experiment,
            entry.job,
            str(entry.entries),
            str(entry.pinned or ""),
            format_size(entry.bytes),
            str(entry.hits),
            when(entry.last_use),
        )
    return table
