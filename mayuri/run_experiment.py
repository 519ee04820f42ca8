"""`mayuri run` and `mayuri test`: load the file, expand it, and schedule it against the store.

Everything that can be wrong with the input is found before the store is
opened, so a bad file leaves the store untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mayuri.config import Settings, load_settings
from mayuri.errors import ConfigError, ExperimentError
from mayuri.experiment import expand, parse_override
from mayuri.experiment.expand import JobInstance
from mayuri.experiment.parsed_cache import load_experiment
from mayuri.experiment.shard_expand import shard_instances, shard_part
from mayuri.scheduler.events import Reporter
from mayuri.scheduler.plan import SETTLED_OK, Outcome, Planner
from mayuri.scheduler.reduction import ShardValues, shard_values
from mayuri.store import Store, open_project_store
from mayuri.store.db import StoreReadOnly
from mayuri.store.perms import share_umask
from mayuri.store.records import RunOrigin
from mayuri.store.scheduler_queries import any_unfinished

if TYPE_CHECKING:
    from mayuri.experiment.expectations import Verdict


@dataclass(frozen=True)
class RunRequest:
    """What the user asked `mayuri run` (or `mayuri test`) for."""

    file: Path
    overrides: tuple[str, ...] = ()
    force: bool = False
    only: tuple[str, ...] = ()
    dry_run: bool = False
    tests: bool = False
    fresh: bool = False
    # `--executor NAME`: in place of `[executor] default` for this run (a job's own `executor:` still wins).
    executor: str | None = None


@dataclass(frozen=True)
class RunResult:
    """What `mayuri run`/`mayuri test` did: each instance's outcome, and the tests' verdicts."""

    outcome: Outcome
    verdicts: tuple[Verdict, ...] = ()
    # The per-shard values of each sharded test, next to its reduced values.
    shards: tuple[ShardValues, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome.ok and all(v.passed for v in self.verdicts)


def run_experiment(request: RunRequest, reporter: Reporter, root: Path | None = None) -> RunResult:
    """Run (or with dry_run, plan) an experiment file; returns what happened to each instance."""
    path = request.file
    if not path.exists():
        raise ExperimentError("experiment file not found.", path=path,
                              hint="Check the path; it is relative to the current folder.")
    settings = load_settings(root)
    spec = load_experiment(path, settings.store.path)
    overrides = [parse_override(text, set(spec.jobs)) for text in request.overrides]
    kinds = ("job", "test") if request.tests else ("job",)
    only = request.only or ((tuple(n for n, j in spec.jobs.items() if j.kind == "test")) if request.tests else ())
    if request.tests and not only:
        raise ExperimentError("the file has no tests.", path=path, hint="Add a `tests:` section with `expect`.")
    instances = shard_instances(expand(spec, overrides, settings.user_overrides, only=only, kinds=kinds,
                                       configs=settings.configs, max_plan=settings.scheduler.max_plan),
                                settings.root)
    _check_executors(settings, request.executor, instances)
    store = open_project_store(settings)
    if store.read_only and not request.dry_run:
        store.close()
        raise StoreReadOnly(
            "the store is read-only for you: `mayuri run` records its runs there and cannot.",
            path=store.root,
            hint="`--dry-run` shows the plan; to run, use a store you may write ([store] path in mayuri.toml).",
        )
    try:
        planner = Planner(store, settings, spec.name, instances, reporter,
                          force=request.force, dry_run=request.dry_run,
                          origin=RunOrigin(_source(path, settings.root), tuple(request.overrides)),
                          executor=request.executor)
        if request.dry_run:
            return RunResult(planner.plan())
        share_umask(store.root)
        if any_unfinished(store):
            # Jobs this plan would start may still run under a dead scheduler: adopted, never started twice.
            from mayuri.scheduler.adoption import adopt

            adopt(store, settings, spec.name, instances, reporter)
        ready = planner.answer_from_cache()
        if ready or planner.undecided:
            # Loaded only when something must run: a cached run needs none of it.
            from mayuri.scheduler.loop import Scheduler

            outcome = Scheduler(planner, ready, fresh=request.fresh, default_executor=request.executor).run()
        else:
            outcome = planner.all_cached()
        if not request.tests:
            return RunResult(outcome)
        return RunResult(outcome, judge_tests(store, outcome), shard_values(store, outcome))
    finally:
        store.close()


def _check_executors(settings: Settings, chosen: str | None, instances: Sequence[JobInstance]) -> None:
    """Refuse (exit 2) an executor name that nothing is registered under, before anything is planned."""
    from mayuri.executors import UNKNOWN_HINT, is_known, unknown

    default = chosen or settings.executor.default
    if not is_known(default):
        origin = "--executor" if chosen else "[executor] default"
        raise ConfigError(f"{origin}: {unknown(default)}", path=None if chosen else settings.config_path,
                          hint=UNKNOWN_HINT)
    for inst in instances:
        name = inst.job.executor
        if name is not None and name != default and not is_known(name):
            spot = inst.job.at("executor")
            raise ExperimentError(f"job '{inst.name}': {unknown(name)}", path=spot.path, line=spot.line,
                                  column=spot.column, hint=UNKNOWN_HINT)


def _source(path: Path, root: Path) -> str:
    """The experiment file as a run records it: relative to the project folder when it is inside it."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(root).as_posix()  # the settings' root is resolved already
    except ValueError:
        return str(absolute)


def judge_tests(store: Store, outcome: Outcome) -> tuple[Verdict, ...]:
    """The verdict of every expectation of every test instance in the outcome."""
    from mayuri.experiment.expectations import Verdict, judge, parse_expectation
    from mayuri.store.metric_queries import metric_summaries

    # A sharded test is judged on its reduction, never on one shard.
    tests = [s for s in outcome.slots if s.instance.job.kind == "test" and shard_part(s.instance) is None]
    ran = [s.run_id for s in tests if s.run_id and s.state in SETTLED_OK]
    summaries = metric_summaries(store, ran) if ran else {}
    verdicts = []
    for slot in tests:
        for name, text in slot.instance.job.expect.items():
            expectation = parse_expectation(name, text)
            if slot.state not in SETTLED_OK or slot.run_id is None:
                verdicts.append(Verdict(slot.instance.key, slot.run_id, expectation, None, False,
                                        f"test {slot.state}: {slot.reason}"))
                continue
            verdicts.append(judge(slot.instance.key, slot.run_id, expectation, slot.outputs,
                                  summaries.get(slot.run_id, {})))
    return tuple(verdicts)
