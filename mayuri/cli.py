"""The `mayuri` command: parses arguments, calls one core function per command, prints the result.

No SQL and no scheduling here. Data goes to stdout, messages and errors to
stderr; a MayuriError becomes one clear paragraph and its exit code, and a
traceback is shown only with --debug.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mayuri.collector import before_exit, long_running, pause_for_startup
from mayuri.errors import ExitCode, MayuriError
from mayuri.terminal import LazyConsole

F = TypeVar("F", bound=Callable[..., Any])

out = LazyConsole(highlight=False, soft_wrap=False)
err = LazyConsole(stderr=True, highlight=False)


def _fail(exc: MayuriError) -> None:
    err.print(f"[bold red]{exc.title}:[/] ", end="", markup=True)
    err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    if os.environ.get("MAYURI_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    sys.exit(int(exc.exit_code))


class MayuriGroup(click.Group):
    """Turns Mayuri's errors into messages and exit codes for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MayuriError as exc:
            _fail(exc)
        except BrokenPipeError:
            # `mayuri runs | head`: the reader left; that is not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt:
            # Ctrl-C in a reading command (`logs -f`, a confirmation prompt).
            err.print("interrupted")
            sys.exit(ExitCode.INTERRUPTED)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(func)


def _strict(value: Any) -> Any:
    """`value` with every NaN or infinite float made null: strict JSON parsers refuse them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def print_json(data: Any) -> None:
    click.echo(json.dumps(_strict(data), indent=2, default=str, allow_nan=False))


@click.group(cls=MayuriGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="mayuri")
def cli(debug: bool) -> None:
    """Mayuri: run experiments, reuse what is already done, remember everything.

    \b
    Example:
      mayuri init && mayuri run examples/addition/exp.yaml
    """
    if debug:
        os.environ["MAYURI_DEBUG"] = "1"


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
def init(folder: Path) -> None:
    """Write a commented mayuri.toml and create the store.

    \b
    Example:
      mayuri init            # in the project's root folder
    """
    from mayuri.init_project import init_project

    result = init_project(folder)
    verb = "wrote" if result.created_config else "kept existing"
    err.print(f"{verb} {result.config}\nstore ready at {result.store}")
    if result.gitignore:
        err.print(f"added the store to {result.gitignore}")
    folders, blobs = result.unindexed
    if folders or blobs:
        err.print(f"warning: the store holds {folders} run folders and {blobs} blobs that the new database does "
                  "not index; `mayuri doctor --rebuild --yes` re-indexes them (gc leaves them alone meanwhile).")


def _run_command(file: Path, overrides: tuple[str, ...], force: bool, only: tuple[str, ...],
                 dry_run: bool, tests: bool, fresh: bool = False, executor: str | None = None) -> None:
    from mayuri.run_experiment import RunRequest, run_experiment
    from mayuri.run_view import RunView, print_summary
    from mayuri.scheduler.events import SilentReporter

    request = RunRequest(file=file, overrides=overrides, force=force, only=only, dry_run=dry_run, tests=tests,
                         fresh=fresh, executor=executor)
    began = time.monotonic()
    if dry_run:
        from mayuri.render import plan_tree

        outcome = run_experiment(request, SilentReporter()).outcome
        out.print(plan_tree(outcome))
        will = outcome.count("will run")
        total = len(outcome.slots)
        out.print(f"{total} job{'s' if total != 1 else ''}: {outcome.count('cached')} cached, {will} will run"
                  + (f", {outcome.count('waits')} wait for the same work" if outcome.count("waits") else "")
                  + (f", {outcome.count('blocked')} blocked" if outcome.count("blocked") else ""))
        sys.exit(ExitCode.OK)
    view = RunView(err, [])
    with view:
        result = run_experiment(request, view)
    print_summary(err, result.outcome, time.monotonic() - began)
    if result.shards:
        from mayuri.render import shard_table

        for values in result.shards:
            out.print(shard_table(values))
    if result.verdicts:
        from mayuri.render import verdict_table

        out.print(verdict_table(result.verdicts))
    if result.outcome.interrupted:
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(ExitCode.OK if result.ok else ExitCode.FAILED)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--force", is_flag=True, help="Rerun every job, even those with a cached result.")
@click.option("--only", multiple=True, metavar="JOB", help="Run only this job (and what it needs).")
@click.option("--dry-run", is_flag=True, help="Print the plan with each job's cache status; run nothing.")
@click.option("--fresh", is_flag=True, help="Start from scratch: resume no interrupted run's checkpoint.")
@click.option("--detach", is_flag=True, help="Run in the background; follow it with `mayuri runs`.")
@click.option("--executor", metavar="NAME",
              help="Run the jobs that name no executor there, in place of [executor] default (e.g. local).")
def run(file: Path, overrides: tuple[str, ...], force: bool, only: tuple[str, ...], dry_run: bool,
        fresh: bool, detach: bool, executor: str | None) -> None:
    """Run an experiment file, reusing every job whose result is already in the store.

    OVERRIDES are KEY=VALUE (every job with that param), JOB.KEY=VALUE,
    KEY=a,b,c, KEY=range(0,3) or KEY=choice(a,b) to sweep, GROUP=CHOICE for a
    config group, +KEY=VALUE to add a param, ~KEY to remove one; quote a value
    to keep its commas, inside the shell's quotes: "tag='x,y'".

    \b
    Example:
      mayuri run exp.yaml lr=0.001 --dry-run
      mayuri run exp.yaml model=small,large 'seed=range(0,3)'
    """
    if detach and not dry_run:
        _detach_run(file, overrides, force, only, fresh, executor)
        return
    _run_command(file, overrides, force, only, dry_run, tests=False, fresh=fresh, executor=executor)


def _detach_run(file: Path, overrides: tuple[str, ...], force: bool, only: tuple[str, ...], fresh: bool,
                executor: str | None) -> None:
    from mayuri.config import load_settings
    from mayuri.scheduler.detach import detach

    settings = load_settings()
    args = [str(file), *overrides, *(["--force"] if force else []), *(["--fresh"] if fresh else []),
            *[f"--only={j}" for j in only], *([f"--executor={executor}"] if executor else [])]
    started = detach(args, cwd=Path.cwd(), store_root=settings.store.path)
    if started.code is not None:
        err.print(f"the run finished at once (exit {started.code}); its output is in {started.log}")
        sys.exit(started.code)
    err.print(f"running in the background as pid {started.pid}; output in {started.log}\n"
              f"follow it with `mayuri runs`, stop it with `mayuri cancel --all` or `kill {started.pid}`")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--force", is_flag=True, help="Rerun the tests and what they need.")
def test(file: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Run the tests of an experiment file (and whatever they need); exit 1 if one fails.

    \b
    Example:
      mayuri test examples/addition/exp.yaml
    """
    _run_command(file, overrides, force, (), False, tests=True)


def _store(settings: Any = None, writes: bool = False) -> Any:
    """The project's store, closed when the command ends (SQLite then tidies its -wal and -shm files).

    `writes`: the command changes the store, so a read-only one is refused before anything starts.
    """
    from mayuri.config import load_settings
    from mayuri.store import open_project_store

    store = open_project_store(settings or load_settings())
    click.get_current_context().call_on_close(store.close)
    if writes:
        store.require_writable(f"`mayuri {click.get_current_context().command_path.split(' ', 1)[-1]}`")
    return store


@cli.command()
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option("--job", "-j", help="Only runs of this job.")
@click.option("--status", "-s", help="Only runs with this status (succeeded, failed, running, ...).")
@click.option("--user", "-u", help="Only runs by this user.")
@click.option("--param", "-p", "param_filters", multiple=True, metavar="KEY=VALUE", help="Only runs with this param value.")
@click.option("--limit", "-n", default=50, show_default=True, help="At most this many runs (0: all).")
@click.option("--all-params", is_flag=True, help="Show every param, not only those that differ among the runs listed.")
@json_option
def runs(experiment: str | None, job: str | None, status: str | None, user: str | None,
         param_filters: tuple[str, ...], limit: int, all_params: bool, as_json: bool) -> None:
    """List runs, newest first.

    \b
    Example:
      mayuri runs -e addition -s failed --json
    """
    from mayuri.experiment.overrides import parse_value
    from mayuri.render import runs_table
    from mayuri.store.queries import RunFilter, list_runs

    params = {}
    for item in param_filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"'{item}' is not KEY=VALUE", param_hint="--param")
        params[key] = parse_value(value)
    store = _store()
    rows = list_runs(store, RunFilter(experiment, job, status, user, limit or None, params))
    if as_json:
        print_json([r.to_json() for r in rows])
    elif rows:
        out.print(runs_table(rows, out.width, all_params=all_params))
    elif experiment or job or status or user or params:
        err.print("no runs match these filters: try fewer, or `mayuri runs` for all.")
    else:
        err.print("no runs yet: start one with `mayuri run FILE`.")


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--why", is_flag=True, help="The full fingerprint breakdown, compared with the files now.")
@json_option
def show(run_ref: str, why: bool, as_json: bool) -> None:
    """One run: params, status, attempts, closure with hashes, outputs, lineage, environment.

    \b
    Example:
      mayuri show 3f2a91c0 --why
    """
    from mayuri.config import load_settings
    from mayuri.inspect_runs import run_detail
    from mayuri.inspect_runs import why as why_breakdown
    from mayuri.render import show_detail, why_detail

    settings = load_settings()
    store = _store(settings)
    detail = run_detail(store, run_ref)
    if why:
        breakdown = why_breakdown(store, settings.root, settings.key_env, detail)
        if as_json:
            print_json(breakdown.to_json())
        else:
            out.print(why_detail(breakdown))
    elif as_json:
        print_json(detail.to_json())
    else:
        out.print(show_detail(detail))


@cli.command()
@click.argument("left", metavar="RUN")
@click.argument("right", metavar="RUN")
@click.option("--stat", is_flag=True, help="Name the changed files (with line counts) instead of showing their diffs.")
@json_option
def diff(left: str, right: str, stat: bool, as_json: bool) -> None:
    """Params, closure, output, metric and environment differences of two runs, and a unified diff of
    each changed code or config file.

    \b
    Example:
      mayuri diff 3f2a 8b1c
      mayuri diff 3f2a 8b1c --stat
    """
    from mayuri.inspect_runs import diff_runs
    from mayuri.render import diff_detail

    result = diff_runs(_store(), left, right)
    if as_json:
        print_json(result.to_json())
    else:
        out.print(diff_detail(result, stat=stat))


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the run ends.")
@click.option("--stderr/--no-stderr", "with_stderr", default=True, help="Include stderr (default: yes).")
def logs(run_ref: str, follow: bool, with_stderr: bool) -> None:
    """Print a run's output (stdout, then stderr), or follow it while it runs.

    \b
    Example:
      mayuri logs 3f2a -f
    """
    from mayuri.follow_logs import follow_run_logs

    if follow:
        long_running()
    store = _store()
    for chunk, stream in follow_run_logs(store, run_ref, follow=follow, with_stderr=with_stderr):
        target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        target.write(chunk)
        target.flush()


@cli.command()
@click.argument("run_refs", metavar="RUN...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Cancel every queued or running run in the store.")
@click.option("--wait", default=30.0, show_default=True, help="Seconds to wait for the runs to stop.")
def cancel(run_refs: tuple[str, ...], every: bool, wait: float) -> None:
    """Stop running or queued runs (their whole process trees) and record them cancelled.

    \b
    Example:
      mayuri cancel 3f2a 91c0
      mayuri cancel --all
    """
    from mayuri.cancel import cancel_runs

    if not run_refs and not every:
        raise click.UsageError("name at least one RUN, or use --all.")
    result = cancel_runs(_store(writes=True), run_refs, every=every, wait=wait)
    for run_id in result.cancelled:
        out.print(f"cancelled {run_id[:8]}")
    for run_id in result.already_finished:
        err.print(f"{run_id[:8]} had already finished")
    for run_id in result.still_stopping:
        err.print(f"{run_id[:8]} is still stopping (its scheduler will record it)")
    if not (result.cancelled or result.already_finished or result.still_stopping):
        err.print("nothing to cancel: no run is queued or running.")
    sys.exit(ExitCode.FAILED if result.still_stopping else ExitCode.OK)


@cli.command()
@click.option("--rebuild", is_flag=True, help="Re-index a store whose database is lost from its run folders and blobs.")
@click.option("--yes", "-y", is_flag=True, help="Replace a damaged (or, with --rebuild, existing) database; it is kept aside.")
@click.option("--no-wait", is_flag=True, help="List the jobs of a dead scheduler that still run instead of waiting.")
@json_option
def doctor(rebuild: bool, yes: bool, no_wait: bool, as_json: bool) -> None:
    """Check the store (integrity, dead schedulers, leftover leases, orphaned runs) and repair what is safe.

    A damaged database is opened read-only and a recovered copy written
    beside it; it is replaced only with --yes. Jobs still running after their
    scheduler died are adopted: doctor waits for them and records how they
    ended (Ctrl-C leaves them running). Exits 1 when a problem remains that
    it could not repair.

    \b
    Example:
      mayuri doctor
      mayuri doctor --rebuild
    """
    from mayuri.config import load_settings
    from mayuri.doctor import examine

    def progress(line: str) -> None:
        err.print(line, markup=False, highlight=False)

    report = examine(load_settings(), rebuild=rebuild, yes=yes, progress=None if no_wait else progress)
    if as_json:
        print_json([f.__dict__ for f in report.findings])
    else:
        styles = {"ok": "green", "repaired": "yellow", "warning": "yellow", "problem": "bold red"}
        for f in report.findings:
            out.print(f"[{styles[f.level]}]{f.level:<9}[/] {f.check:<14} ", end="")
            out.print(f.message, markup=False, highlight=False)
    sys.exit(ExitCode.OK if report.ok else ExitCode.FAILED)


def _gc_approver(dry_run: bool, yes: bool, as_json: bool) -> Callable[..., bool]:
    """Show the plan (unless --json) and decide: --dry-run never, --yes always, else ask at a terminal."""
    from mayuri.gc.render import plan_table

    def approve(plan: Any) -> bool:
        if not as_json:
            out.print(plan_table(plan))
        if dry_run or plan.empty:
            return False
        if yes:
            return True
        if as_json or not sys.stdin.isatty():
            # With --json the plan was not shown to a person: never ask blind.
            raise MayuriError("not deleting anything without --yes (with --json, or when not at a terminal).",
                              hint="Look at the plan with --dry-run, then run again with --yes.")
        return click.confirm("Delete all of this?", default=False, err=True)

    return approve


def _gc_finish(outcome: Any, dry_run: bool, as_json: bool) -> None:
    from mayuri.gc.render import result_table

    if as_json:
        print_json(outcome.to_json())
    elif outcome.result is not None:
        out.print(result_table(outcome.result))
    elif not outcome.plan.empty and not dry_run:
        err.print("nothing deleted.")
    # A check-style dry run: non-zero when there is something to free (scripts gate on it).
    sys.exit(ExitCode.FAILED if dry_run and not outcome.plan.empty else ExitCode.OK)


@cli.command()
@click.option("--older-than", metavar="AGE", help="Collect runs last used longer ago than AGE (30d, 12h).")
@click.option("--keep-last", type=int, metavar="N", help="Keep the N newest succeeded runs of each job.")
@click.option("--failed", is_flag=True, default=None, help="Collect only failed or cancelled runs.")
@click.option("--max-size", metavar="SIZE", help="Collect least recently used runs until the store fits (50GiB).")
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option("--metrics", is_flag=True, help="Also delete the metric points of collected runs (summaries stay).")
@click.option("--vacuum", is_flag=True, help="Also VACUUM the database to give free pages back.")
@click.option("--purge", is_flag=True, help="Delete collected runs' records too, not just their files.")
@click.option("--grace", metavar="AGE", help="Never take what was written or used this recently (default 1h).")
@click.option("--dry-run", is_flag=True, help="Show the plan only; exit 1 if there is something to free.")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@json_option
def gc(older_than: str | None, keep_last: int | None, failed: bool | None, max_size: str | None,
       experiment: str | None, metrics: bool, vacuum: bool, purge: bool, grace: str | None,
       dry_run: bool, yes: bool, as_json: bool) -> None:
    """Free space: old or failed runs' folders, unreferenced blobs, leftovers (flags override [gc]).

    Running, queued and pinned runs, and what kept runs need, are never
    collected. A collected run keeps a tombstone (id, fingerprint, params,
    metric summary) unless --purge. The plan is shown first.

    \b
    Example:
      mayuri gc --older-than 30d --keep-last 3 --dry-run
    """
    from mayuri.config import load_settings
    from mayuri.gc import collect_garbage, gc_policy

    settings = load_settings()
    flags = {"older_than": older_than, "keep_last": keep_last, "failed": failed, "max_size": max_size,
             "experiment": experiment, "metrics": metrics, "vacuum": vacuum, "purge": purge, "grace": grace}
    policy = gc_policy(settings, flags)
    outcome = collect_garbage(_store(settings, writes=True), policy, _gc_approver(dry_run, yes, as_json))
    _gc_finish(outcome, dry_run, as_json)


@cli.command()
@click.argument("run_ref", metavar="RUN")
def pin(run_ref: str) -> None:
    """Pin a run: gc and `cache rm` never collect it.

    \b
    Example:
      mayuri pin 3f2a91c0
    """
    from mayuri.cache_admin import pin as pin_run

    run = pin_run(_store(writes=True), run_ref, True)
    err.print(f"pinned {run.short_id} ({run.experiment}/{run.job})")


@cli.command()
@click.argument("run_ref", metavar="RUN")
def unpin(run_ref: str) -> None:
    """Unpin a run, so that gc may collect it again.

    \b
    Example:
      mayuri unpin 3f2a91c0
    """
    from mayuri.cache_admin import pin as pin_run

    run = pin_run(_store(writes=True), run_ref, False)
    err.print(f"unpinned {run.short_id} ({run.experiment}/{run.job})")


@cli.group()
def cache() -> None:
    """Cached results: list them per experiment and job, or remove some.

    \b
    Example:
      mayuri cache ls
    """


@cache.command("ls")
@click.option("--experiment", "-e", help="Only this experiment.")
@json_option
def cache_ls(experiment: str | None, as_json: bool) -> None:
    """Cached results per experiment and job: entries, size, hits, last use.

    \b
    Example:
      mayuri cache ls -e addition --json
    """
    from mayuri.cache_admin import list_cache
    from mayuri.gc.render import cache_table

    entries = list_cache(_store(), experiment)
    if as_json:
        print_json([e.to_json() for e in entries])
    elif entries:
        out.print(cache_table(entries))
    else:
        err.print("no cached results.")


@cache.command("rm")
@click.argument("target", metavar="JOB|RUN")
@click.option("--experiment", "-e", help="The experiment of JOB (when several have a job of that name).")
@click.option("--dry-run", is_flag=True, help="Show the plan only; exit 1 if there is something to remove.")
@click.option("--yes", "-y", is_flag=True, help="Remove without asking.")
@json_option
def cache_rm(target: str, experiment: str | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove the cached results of a job (every one) or of one run; pinned runs stay.

    \b
    Example:
      mayuri cache rm train -e addition --yes
    """
    from mayuri.cache_admin import remove_cached
    from mayuri.config import load_settings
    from mayuri.gc import gc_policy

    settings = load_settings()
    policy = gc_policy(settings, {})
    store = _store(settings, writes=True)
    outcome = remove_cached(store, target, experiment, policy, _gc_approver(dry_run, yes, as_json))
    _gc_finish(outcome, dry_run, as_json)


@cli.command()
def tui() -> None:
    """Open the dashboard over the project's store.

    \b
    Example:
      mayuri tui
    """
    from mayuri.config import load_settings
    from mayuri.tui.app import make_app

    app = make_app(load_settings())
    long_running()
    app.run()
    sys.exit(app.return_code or 0)


def main() -> None:
    """Entry point of the `mayuri` console script."""
    pause_for_startup()
    try:
        cli(prog_name="mayuri")
    finally:
        before_exit()
