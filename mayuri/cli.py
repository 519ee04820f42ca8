"""The `mayuri` command: parses arguments, calls one core function per command, prints the result.

No SQL and no scheduling here. Data goes to stdout, messages and errors to
stderr; a MayuriError becomes one clear paragraph and its exit code, and a
traceback is shown only with --debug.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from mayuri.errors import ExitCode, MayuriError

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


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


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(func)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


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


def _run_command(file: Path, overrides: tuple[str, ...], force: bool, only: tuple[str, ...],
                 dry_run: bool, tests: bool) -> None:
    from mayuri.render import RunView, plan_tree, summary_line
    from mayuri.run_experiment import RunRequest, run_experiment
    from mayuri.scheduler.events import SilentReporter

    request = RunRequest(file=file, overrides=overrides, force=force, only=only, dry_run=dry_run, tests=tests)
    began = time.monotonic()
    if dry_run:
        outcome = run_experiment(request, SilentReporter())
        out.print(plan_tree(outcome))
        will = outcome.count("will run")
        out.print(f"{len(outcome.slots)} jobs: {outcome.count('cached')} cached, {will} will run"
                  + (f", {outcome.count('blocked')} blocked" if outcome.count("blocked") else ""))
        sys.exit(ExitCode.OK)
    view = RunView(err, [])
    with view:
        outcome = run_experiment(request, view)
    err.print(summary_line(outcome, time.monotonic() - began))
    if outcome.interrupted:
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(ExitCode.OK if outcome.ok else ExitCode.FAILED)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--force", is_flag=True, help="Rerun every job, even those with a cached result.")
@click.option("--only", multiple=True, metavar="JOB", help="Run only this job (and what it needs).")
@click.option("--dry-run", is_flag=True, help="Print the plan with each job's cache status; run nothing.")
def run(file: Path, overrides: tuple[str, ...], force: bool, only: tuple[str, ...], dry_run: bool) -> None:
    """Run an experiment file, reusing every job whose result is already in the store.

    OVERRIDES are KEY=VALUE (every job with that param), JOB.KEY=VALUE, or
    KEY=a,b,c to sweep.

    \b
    Example:
      mayuri run exp.yaml lr=0.001 --dry-run
    """
    _run_command(file, overrides, force, only, dry_run, tests=False)


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


def _store() -> Any:
    from mayuri.config import load_settings
    from mayuri.run_experiment import open_project_store

    return open_project_store(load_settings())


@cli.command()
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option("--job", "-j", help="Only runs of this job.")
@click.option("--status", "-s", help="Only runs with this status (succeeded, failed, running, ...).")
@click.option("--user", "-u", help="Only runs by this user.")
@click.option("--param", "-p", "param_filters", multiple=True, metavar="KEY=VALUE", help="Only runs with this param value.")
@click.option("--limit", "-n", default=50, show_default=True, help="At most this many runs (0: all).")
@json_option
def runs(experiment: str | None, job: str | None, status: str | None, user: str | None,
         param_filters: tuple[str, ...], limit: int, as_json: bool) -> None:
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
        out.print(runs_table(rows))
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
    from mayuri.inspect_runs import run_detail, why as why_breakdown
    from mayuri.render import show_detail, why_detail
    from mayuri.run_experiment import open_project_store

    settings = load_settings()
    store = open_project_store(settings)
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

    store = _store()
    for chunk, stream in follow_run_logs(store, run_ref, follow=follow, with_stderr=with_stderr):
        target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        target.write(chunk)
        target.flush()


@cli.command()
def tui() -> None:
    """Open the dashboard over the project's store.

    \b
    Example:
      mayuri tui
    """
    from mayuri.config import load_settings
    from mayuri.tui.app import make_app

    make_app(load_settings()).run()


def main() -> None:
    """Entry point of the `mayuri` console script."""
    cli(prog_name="mayuri")
