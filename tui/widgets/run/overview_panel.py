"""The overview tab of a run: status, closure coverage, params, attempts (GPUs, causes), outputs, artifacts, metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mayuri.inspect_runs import RunDetail
from mayuri.store.artifact_queries import ArtifactRow
from mayuri.store.coverage_queries import coverage_text
from mayuri.store.metric_queries import Summary
from mayuri.store.shard_queries import shard_role
from mayuri.tui.formatting import format_gpus, format_number, format_time, format_value, status_text
from mayuri.units import format_duration, format_size


@dataclass(frozen=True)
class Overview:
    """Everything the overview tab shows, read in one go by the run screen."""

    detail: RunDetail
    artifacts: list[ArtifactRow]
    metrics: dict[str, Summary]
    peaks: tuple[int | None, int | None]


def _facts(view: Overview) -> Table:
    run = view.detail.run
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    status = status_text(run.status)
    if run.reason:
        status.append(f"  ({run.reason})", style="dim")
    rows: list[tuple[str, RenderableType]] = [
        ("run", run.id),
        ("experiment / job", f"{run.experiment} / {run.label}" + (f" [{run.kind}]" if run.kind != "job" else "")),
        ("status", status),
        ("started", f"{format_time(run.started_at)}   took {format_duration(run.duration)}"),
        ("user@host", f"{run.user}@{run.host}"),
        ("fingerprint", run.fingerprint or "-"),
        ("cache", f"{run.hits} hits, last used {format_time(run.last_used_at)}"
                  + ("  pinned" if run.pinned else "")),
    ]
    shards = view.detail.shards
    if shards is not None:
        rows.append(("shards", f"{shard_role(run.config)} · {shards.summary()}"))
    closure = _closure_line(view.detail)
    if closure:
        rows.append(("closure", closure))
    rss, gpu = view.peaks
    if rss or gpu:
        rows.append(("peak memory", f"RSS {format_size(rss or 0)}, GPU {format_size(gpu or 0)}"))
    if run.error:
        rows.append(("error", Text(run.error, style="red")))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _closure_line(detail: RunDetail) -> str | None:
    """How the closure was learned, with its links, products and untracked reads (None: not recorded)."""
    if not detail.coverage:
        return None
    links = sum(1 for c in detail.closure if c.kind == "link")
    products = sum(1 for c in detail.closure if c.role == "product")
    untracked = len(detail.coverage.get("untracked") or [])
    return (f"{coverage_text(detail.coverage)}; {links} links, {products} products, "
            f"{untracked} untracked reads (mayuri show --why)")


def _params(view: Overview) -> Table:
    table = Table(title="params", title_justify="left", expand=True, show_edge=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in sorted(view.detail.run.params):
        table.add_row(key, format_value(view.detail.run.params[key]))
    return table


def _attempts(view: Overview) -> Table:
    table = Table(title="attempts", title_justify="left", expand=True, show_edge=False)
    # The note (resumed from, leftovers stopped) gets a column only when some attempt has one.
    noted = any(a.note for a in view.detail.attempts)
    # Where each attempt ran, only when some ran on an engine's node (Ray): `ray:NODE`.
    remote = any(a.executor not in (None, "local") for a in view.detail.attempts)
    for name in ("#", "status", *(("where",) if remote else ()), "gpus", "exit", "cause", "took", "params changed",
                 *(("note",) if noted else ())):
        table.add_column(name)
    base = view.detail.run.params
    for a in view.detail.attempts:
        took = (a.ended_at - a.started_at) if a.started_at and a.ended_at else None
        changed = {k: v for k, v in a.params.items() if base.get(k) != v}
        exit_text = str(a.exit_code) if a.exit_code is not None else (f"signal {a.signal}" if a.signal else "-")
        cause = Text(a.cause or "-", style="bold red" if a.cause and "oom" in a.cause.lower() else "")
        table.add_row(str(a.number), status_text(a.status), *((a.where,) if remote else ()), format_gpus(a.gpus),
                      exit_text, cause,
                      format_duration(took), json.dumps(changed) if changed else "", *((a.note,) if noted else ()))
    return table


def _outputs_and_artifacts(view: Overview) -> Table:
    table = Table(title="outputs and artifacts", title_justify="left", expand=True, show_edge=False)
    table.add_column("name", style="bold")
    table.add_column("value or size")
    for name, value in view.detail.outputs.items():
        table.add_row(name, format_value(value))
    for art in view.artifacts:
        table.add_row(f"{art.name} ({art.kind})", f"{format_size(art.size)} in {art.files} files")
    return table


def _metrics(view: Overview) -> Table:
    table = Table(title="metrics", title_justify="left", expand=True, show_edge=False)
    for name in ("key", "last", "min", "max", "points"):
        table.add_column(name)
    for key, s in view.metrics.items():
        table.add_row(key, format_number(s.last), format_number(s.min), format_number(s.max), f"{s.count:,}")
    return table


class OverviewPanel(VerticalScroll):
    """Facts, params, attempts, outputs, artifacts and metric summaries of one run."""

    def compose(self) -> ComposeResult:
        yield Static("loading …", id="overview-body")

    def show(self, view: Overview) -> None:
        parts: list[RenderableType] = [_facts(view), Text(""), _params(view), Text("")]
        if view.detail.attempts:
            parts += [_attempts(view), Text("")]
        if view.detail.outputs or view.artifacts:
            parts += [_outputs_and_artifacts(view), Text("")]
        if view.metrics:
            parts.append(_metrics(view))
        self.query_one("#overview-body", Static).update(Group(*parts))
