"""How the CLI shows things to people: Rich tables and texts (the live view of a run is `run_view.py`).

Formatting only: the data comes from core functions; nothing here touches the
store or the scheduler.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from mayuri.experiment.interpolate import as_text
from mayuri.states import STYLE
from mayuri.units import format_duration, format_size

if TYPE_CHECKING:
    # Annotations only: no command here needs the scheduler or the store loaded.
    from rich.table import Table

    from mayuri.experiment.expectations import Verdict
    from mayuri.inspect_runs import RunDetail, RunDiff, WhyBreakdown
    from mayuri.scheduler.plan import Outcome
    from mayuri.scheduler.reduction import ShardValues
    from mayuri.store.queries import RunRow
    from mayuri.store.text_diff_queries import FileDiff

# One look for each state, shared with the dashboard.
STATUS_STYLE = STYLE


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


_UPSTREAM = re.compile(r"^\$\{mayuri\.upstream\.(.+)\}$")


def param_value(value: Any) -> str:
    """A param for people: an upstream output reads `<- job.output` instead of its placeholder."""
    if isinstance(value, str):
        match = _UPSTREAM.match(value)
        if match:
            return "<- " + match.group(1)
    return as_text(value)


def number(value: Any) -> str:
    """A measured value for people: floats to six significant digits, anything else as written."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return as_text(value)


def short_gpu(uuid: str) -> str:
    """A GPU's UUID cut to what tells GPUs apart in a narrow column."""
    for prefix in ("GPU-", "MIG-"):
        if uuid.startswith(prefix):
            return uuid[len(prefix):len(prefix) + 8]
    return uuid


def short_when(timestamp: float | None) -> str:
    """A start time in a narrow column: the time today, the date otherwise."""
    if timestamp is None:
        return "-"
    moment = dt.datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S" if moment.date() == dt.date.today() else "%Y-%m-%d")


def params_text(params: dict[str, Any], limit: int = 60) -> str:
    """The params of a run on one line, without the ones filled from upstream outputs."""
    text = " ".join(f"{k}={as_text(v)}" for k, v in params.items()
                    if not (isinstance(v, str) and _UPSTREAM.match(v)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict_table(verdicts: Sequence[Verdict]) -> Table:
    """The expectations of `mayuri test`: failing ones first, each with what was recorded."""
    from rich.table import Table

    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("test", "expect", "actual", "result", "run", "note"):
        table.add_column(column)
    for v in sorted(verdicts, key=lambda v: (v.passed, v.test)):
        table.add_row(
            Text(v.test), Text(f"{v.expectation.name} {v.expectation.text}"),
            Text("-" if v.actual is None else number(v.actual)),
            Text("pass", style="green") if v.passed else Text("FAIL", style="bold red"),
            (v.run_id or "")[:8], Text(v.note),
        )
    return table


def shard_table(values: ShardValues, limit: int = 32) -> Table:
    """A sharded test in `mayuri test`: each shard's values (those not settled ok first), then the reduced ones."""
    from rich.table import Table

    table = Table(header_style="bold", box=None, pad_edge=False,
                  title=f"{values.test}: {len(values.shards)} shards", title_justify="left")
    for column in ("shard", "run", "status", *values.names):
        table.add_column(column)
    rows = sorted(values.shards, key=lambda row: (row[2] in ("cached", "succeeded"), row[0]))
    for index, run_id, state, found in rows[:limit]:
        table.add_row(str(index), (run_id or "")[:8], Text(state, style=STATUS_STYLE.get(state, "")),
                      *(number(found[n]) if n in found else "-" for n in values.names))
    if len(rows) > limit:
        table.add_row(f"… {len(rows) - limit} more", "", "", *("" for _ in values.names))
    table.add_row(Text("reduced", style="bold"), "", Text(values.state, style=STATUS_STYLE.get(values.state, "")),
                  *(Text(number(values.reduced[n]), style="bold") if n in values.reduced else "-"
                    for n in values.names))
    return table


def plan_tree(outcome: Outcome) -> Text:
    """The `--dry-run` plan: each instance, indented under its first upstream, with its cache status.

    Built as one Text (not a Table) so that a plan of thousands of jobs prints in milliseconds.
    """
    depth: dict[str, int] = {}
    labels = []
    for slot in outcome.slots:
        ups = slot.instance.upstream_keys
        depth[slot.instance.key] = 1 + max((depth.get(k, 0) for k in ups), default=-1)
        labels.append("  " * depth[slot.instance.key] + ("└─ " if ups else "") + slot.instance.key)
    width = max([len("job"), *(len(label) for label in labels)])
    text = Text()
    text.append(f"{'job':<{width}}  {'status':<9} why\n", style="bold")
    for label, slot in zip(labels, outcome.slots, strict=True):
        text.append(f"{label:<{width}}  ")
        text.append(f"{slot.state:<9}", style=STATUS_STYLE.get(slot.state, ""))
        text.append(f" {slot.reason}\n")
        choices = slot.instance.config.get("choices")
        if choices:
            # With config groups the params are composed from several files: show the result.
            text.append(" " * (width + 2) + "choices: " + params_text(choices, 1000) + "\n", style="dim")
            text.append(" " * (width + 2) + "params: " + params_text(slot.instance.params, 1000) + "\n",
                        style="dim")
    text.rstrip()
    return text


def differing_params(runs: Sequence[RunRow]) -> set[str]:
    """The (dotted) params whose values are not the same in every run (missing counts as a value)."""
    from mayuri.experiment.overrides import flat_params

    flat = [flat_params(run.params) for run in runs]
    keys = {key for params in flat for key in params}
    missing = object()
    return {key for key in keys if len({json.dumps(p.get(key, missing), sort_keys=True, default=id)
                                        for p in flat}) > 1}


def runs_table(runs: Sequence[RunRow], width: int = 200, all_params: bool = False) -> Table:
    """The `mayuri runs` table; on a narrow terminal, user and host make room for params.

    Unless `all_params`, a list of several runs shows only the params that tell them apart
    (dotted names): with many params, every param of every run in one cell is unreadable.
    """
    from rich.table import Table

    from mayuri.experiment.overrides import flat_params

    shown = None if all_params or len(runs) < 2 else differing_params(runs)

    columns = ["id", "experiment", "job", "status", "params", "gpu", "started", "took", "user", "host"]
    if width < 120:
        columns = columns[:-2]
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in columns:
        if column == "params":
            table.add_column("params" if shown is None else "params that differ", overflow="fold", ratio=1,
                             min_width=12)
        elif column in ("experiment", "job"):
            table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=16)
        else:
            table.add_column(column, no_wrap=True, overflow="ellipsis")
    for run in runs:
        cells: list[str | Text] = [
            run.short_id, Text(run.experiment), Text(run.label), status_text(run.status),
            Text(params_text(run.params) if shown is None
                 else params_text({k: v for k, v in flat_params(run.params).items() if k in shown}) or "-"),
            Text(",".join(short_gpu(g) for g in run.gpus) or "-"), short_when(run.started_at), format_duration(run.duration),
            run.user, run.host,
        ]
        table.add_row(*cells[: len(columns)])
    return table


def _kv(title: str, rows: Sequence[tuple[str, Any]]) -> Group:
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(Text(key), value if isinstance(value, Text) else Text(str(value)))
    return Group(Text(title, style="bold"), table)


def origin_text(run: RunRow) -> str:
    """The `mayuri run` command line that started a run, or `-` when it was not recorded."""
    if run.source is None:
        return "-"
    return " ".join(["mayuri run", shlex.quote(run.source), *map(shlex.quote, run.overrides)])


def show_detail(detail: RunDetail) -> Group:
    from rich.table import Table

    from mayuri.hashing import LINK_MARK
    from mayuri.store.coverage_queries import coverage_text

    run = detail.run
    parts: list[Any] = [
        _kv(f"run {run.id}", [
            ("experiment", run.experiment), ("job", run.label), ("from", origin_text(run)),
            ("status", status_text(run.status)),
            ("why it ran", run.reason or "-"), ("error", run.error or "-"),
            ("exit code", "-" if run.exit_code is None else run.exit_code),
            ("started", when(run.started_at)), ("duration", format_duration(run.duration)),
            ("user@host", f"{run.user}@{run.host}"), *((("ran on", run.ran_on),) if run.ran_on else ()),
            ("fingerprint", run.fingerprint or "- (not reusable)"),
            ("cache hits", run.hits), ("run folder", run.run_dir),
            ("stdout", detail.logs["stdout"]), ("stderr", detail.logs["stderr"]),
        ]),
        _kv("params", [(k, param_value(v)) for k, v in sorted(run.params.items())] or [("-", "")]),
    ]
    if detail.script_params:
        parts.append(_kv("script params (mayuri.init)",
                         [(k, param_value(v)) for k, v in sorted(detail.script_params.items())]))
    if run.config.get("choices"):
        parts.append(_kv("config groups", sorted(run.config["choices"].items())))
    if detail.shards is not None:
        from mayuri.store.shard_queries import shard_role

        parts.append(_kv("shards", [("this run", shard_role(run.config)), ("progress", detail.shards.summary())]))
    command = run.config.get("command")
    parts.append(_kv("command", [("run", command if isinstance(command, str) else " ".join(command or []))]))
    attempts = Table(box=None, pad_edge=False)
    noted = any(a.note for a in detail.attempts)
    # Where each attempt ran gets a column only when some ran on another machine (an engine's node).
    remote = any(a.executor not in (None, "local") for a in detail.attempts)
    for column in ("#", "status", "pid", *(("where",) if remote else ()), "started", "ended", "exit", "cause", "gpus",
                   *(("note",) if noted else ())):
        attempts.add_column(column)
    for a in detail.attempts:
        attempts.add_row(str(a.number), status_text(a.status), str(a.pid or "-"), *((a.where,) if remote else ()),
                         when(a.started_at), when(a.ended_at), "-" if a.exit_code is None else str(a.exit_code),
                         a.cause or ("signal %d" % a.signal if a.signal else "-"), ",".join(a.gpus) or "-",
                         *((a.note,) if noted else ()))
    parts.append(Group(Text("attempts", style="bold"), attempts))
    closure = Table(box=None, pad_edge=False)
    for column in ("role", "path", "size", "sha512"):
        closure.add_column(column)
    for c in detail.closure:
        if c.kind == "link":
            closure.add_row(c.role, Text(c.path), "-", Text(c.sha512.replace(LINK_MARK, "-> ", 1)))
            continue
        size = f"{c.size} entries" if c.kind == "listing" else format_size(c.size)
        closure.add_row(c.role, Text(c.path + ("/" if c.kind == "listing" else "")), size, c.sha512[:16])
    parts.append(Group(
        Text("closure (files the job used and made)", style="bold"),
        Text(f"closure: {coverage_text(detail.coverage)}"), closure,
    ))
    if detail.outputs:
        parts.append(_kv("outputs", [(k, json.dumps(v)) for k, v in detail.outputs.items()]))
    if detail.metrics:
        metrics = Table(box=None, pad_edge=False)
        for column in ("metric", "last", "min", "max", "points", "last step"):
            metrics.add_column(column)
        for key, summary in sorted(detail.metrics.items()):
            metrics.add_row(Text(key), number(summary.last), number(summary.min), number(summary.max),
                            str(summary.count), "-" if summary.last_step is None else str(summary.last_step))
        parts.append(Group(Text("metrics", style="bold"), metrics))
    if detail.artifacts:
        artifacts = Table(box=None, pad_edge=False)
        for column in ("artifact", "kind", "files", "size", "saved"):
            artifacts.add_column(column)
        for artifact in detail.artifacts:
            artifacts.add_row(Text(artifact.name), artifact.kind, str(artifact.files), format_size(artifact.size),
                              when(artifact.created_at))
        parts.append(Group(Text("artifacts", style="bold"), artifacts))
    lineage = [(f"upstream {e.name}", f"{e.run_id[:8]} {e.experiment}/{e.job} {e.status}") for e in detail.upstream]
    lineage += [(f"downstream {e.name}", f"{e.run_id[:8]} {e.experiment}/{e.job} {e.status}") for e in detail.downstream]
    if lineage:
        parts.append(_kv("lineage", lineage))
    env = run.environment
    if env:
        rows = [
            ("python", env.get("python", {}).get("version", "-")),
            ("platform", " ".join(str(v) for v in env.get("platform", {}).values())),
        ]
        git = env.get("git") or {}
        if git:
            rows.append(("git", f"{git.get('commit', '')[:12]} {git.get('branch') or ''}"
                                + (" (dirty)" if git.get("dirty") else "")))
        for gpu in env.get("gpus", []):
            rows.append(("gpu", f"{gpu.get('name')} driver {gpu.get('driver')}"))
        packages = env.get("packages", {})
        if packages:
            rows.append(("packages", ", ".join(f"{k}=={v}" for k, v in packages.items())))
        parts.append(_kv("environment", rows))
    return Group(*[p for part in parts for p in (part, Text(""))])


def diff_detail(diff: RunDiff, stat: bool = False) -> Group:
    """Two runs side by side, only where they differ; then each changed file as a unified diff
    (with `stat`, its name and counts of lines added and removed)."""
    from rich.table import Table

    def section(title: str, rows: Sequence[tuple[str, Any, Any]]) -> Group:
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("")
        table.add_column(diff.left.short_id)
        table.add_column(diff.right.short_id)
        for name, a, b in rows:
            table.add_row(Text(name), Text("-" if a is None else as_text(a), style="red"),
                          Text("-" if b is None else as_text(b), style="green"))
        if not rows:
            table.add_row(Text("(same)", style="dim"), "", "")
        return Group(Text(title, style="bold"), table, Text(""))

    head = Text(f"{diff.left.short_id} {diff.left.experiment}/{diff.left.job}  vs  "
                f"{diff.right.short_id} {diff.right.experiment}/{diff.right.job}", style="bold")
    closure = [(path, (a or "absent")[:16] if a else None, (b or "absent")[:16] if b else None)
               for path, a, b in diff.closure]
    parts: list[Any] = [head, Text("")]
    if diff.config:
        parts += [Text("config: " + ", ".join(diff.config)), Text("")]
    parts += [
        section("params", diff.params),
        section("closure (sha512)", closure),
        section("outputs", diff.outputs),
        section("metrics (last value)", diff.metrics),
        section("environment", diff.environment),
    ]
    if diff.files:
        parts.append(Text("files", style="bold"))
        parts += [file_diff_text(f, stat) for f in diff.files]
    return Group(*parts)


def file_diff_text(diff: FileDiff, stat: bool = False) -> Text:
    """One changed file: a coloured unified diff, or with `stat` one line of counts."""
    if diff.left is None or diff.right is None:
        change = "added" if diff.left is None else "removed"
    else:
        change = "changed"
    if stat or not diff.lines:
        counts = f" +{diff.added} -{diff.removed}" if diff.lines else ""
        note = f" ({diff.note})" if diff.note and not stat else ""
        return Text(f"{diff.path}  {change}{counts}{note}")
    text = Text()
    for line in diff.lines:
        style = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                 else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        text.append(line, style=style)
    text.rstrip()
    return text


def why_detail(breakdown: WhyBreakdown) -> Group:
    from rich.table import Table

    from mayuri.hashing import LINK_MARK
    from mayuri.store.coverage_queries import coverage_text

    head = _kv("fingerprint", [
        ("recorded", breakdown.fingerprint or "- (not reusable)"),
        ("recomputed now", breakdown.recomputed),
        ("match", Text("yes", style="green") if breakdown.fingerprint == breakdown.recomputed
         else Text("no", style="red")),
        ("config hash", breakdown.config_hash),
    ])
    config = _kv("config (hashed)", [(k, json.dumps(v)) for k, v in sorted(breakdown.config.items())])
    title = "params that counted" + (" (all: cache: strict, params read whole, or untracked)"
                                     if breakdown.params_used is None else " (the ones the job used)")
    counted = _kv(title, [(k, json.dumps(v)) for k, v in sorted((breakdown.params_counted or {}).items())]
                  or [("-", "none")])
    names = breakdown.upstream_names
    # Upstreams count by their place in depends_on and their results, never by their names.
    upstream = _kv("upstream results" + (" (by position in depends_on, not by name)" if names else ""),
                   [(f"{k} ({names[k]})" if k in names else k, ", ".join(v)) for k, v in breakdown.upstream.items()]
                   or [("-", "none")])
    closure = Table(box=None, pad_edge=False)
    for column in ("role", "path", "sha512 recorded", "now"):
        closure.add_column(column)
    for entry in breakdown.closure:
        if entry.kind == "link":
            closure.add_row(entry.role, Text(entry.path), Text(entry.recorded.replace(LINK_MARK, "-> ", 1)),
                            Text("same", style="green") if entry.same
                            else Text(entry.now.replace(LINK_MARK, "now -> ", 1), style="red"))
            continue
        closure.add_row(entry.role, Text(entry.path + ("/" if entry.kind == "listing" else "")), entry.recorded,
                        Text("same", style="green") if entry.same else Text(entry.now[:16] + "… changed", style="red"))
    untracked = breakdown.coverage.get("untracked") or []
    # Reads outside the project and `[cache] roots`: what the cache does not cover.
    coverage = _kv("closure coverage", [
        ("seen", coverage_text(breakdown.coverage)),
        ("untracked reads", Text("\n".join(untracked)) if untracked else "none"),
        *([("", Text("not in the cache key: add their folders to [cache] roots to count them", style="dim"))]
          if untracked else []),
    ])
    env = _kv("environment in the key ([cache] key_env)",
              [(k, f"{json.dumps(v)}  now: {json.dumps(breakdown.env_key_now.get(k))}")
               for k, v in breakdown.env_key.items()] or [("-", "none")])
    return Group(head, Text(""), config, Text(""), counted, Text(""), upstream, Text(""), Text("closure", style="bold"),
                 closure, Text(""), coverage, Text(""), env)
