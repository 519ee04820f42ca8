"""`mayuri run` and `mayuri test`: load the file, expand it, and schedule it against the store.

Everything that can be wrong with the input is found before the store is
opened, so a bad file leaves the store untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mayuri.config import Settings, load_settings
from mayuri.errors import ExperimentError
from mayuri.experiment import expand, parse_experiment, parse_override
from mayuri.scheduler.events import Reporter
from mayuri.scheduler.loop import Outcome, Scheduler
from mayuri.store import Store, open_store


@dataclass(frozen=True)
class RunRequest:
    """What the user asked `mayuri run` (or `mayuri test`) for."""

    file: Path
    overrides: tuple[str, ...] = ()
    force: bool = False
    only: tuple[str, ...] = ()
    dry_run: bool = False
    tests: bool = False


def open_project_store(settings: Settings) -> Store:
    """The store named by the project's settings."""
    return open_store(
        settings.store.path,
        allow_network_fs=settings.store.allow_network_fs,
        busy_timeout=settings.store.busy_timeout,
    )


def run_experiment(request: RunRequest, reporter: Reporter, root: Path | None = None) -> Outcome:
    """Run (or with dry_run, plan) an experiment file; returns what happened to each instance."""
    path = request.file
    if not path.exists():
        raise ExperimentError("experiment file not found.", path=path,
                              hint="Check the path; it is relative to the current folder.")
    settings = load_settings(root)
    spec = parse_experiment(path)
    overrides = [parse_override(text, set(spec.jobs)) for text in request.overrides]
    kinds = ("job", "test") if request.tests else ("job",)
    only = request.only or ((tuple(n for n, j in spec.jobs.items() if j.kind == "test")) if request.tests else ())
    if request.tests and not only:
        raise ExperimentError("the file has no tests.", path=path, hint="Add a `tests:` section with `expect`.")
    instances = expand(spec, overrides, settings.user_overrides, only=only, kinds=kinds)
    store = open_project_store(settings)
    try:
        scheduler = Scheduler(store, settings, spec.name, instances, reporter,
                              force=request.force, dry_run=request.dry_run)
        return scheduler.plan() if request.dry_run else scheduler.run()
    finally:
        store.close()
