"""The fast tier: the real `Scheduler` in-process on a real store, its jobs run by `FakeExecutor`.

No process is started and the clock is fake, so retries, timeouts, cancels
and fencing are checked in milliseconds. What real processes do (signals,
process trees, the shepherd) stays with the integration tier (tests/scheduler/).
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mayuri.config import load_settings
from mayuri.experiment import expand
from mayuri.experiment.parsed_cache import load_experiment
from mayuri.experiment.shard_expand import shard_instances
from mayuri.init_project import init_project
from mayuri.scheduler.events import JobEvent
from mayuri.scheduler.loop import Scheduler
from mayuri.scheduler.plan import Outcome, Planner
from mayuri.store import open_project_store
from tests.scheduler_fast.fake_executor import FakeExecutor


class Events:
    def __init__(self) -> None:
        self.seen: list[JobEvent] = []

    def event(self, event: JobEvent) -> None:
        self.seen.append(event)


@dataclass
class FastProject:
    root: Path

    def run(self, yaml: str, executor: FakeExecutor | None = None,
            before: Callable[[Any], None] | None = None, file: str = "exp.yaml",
            events: Events | None = None) -> tuple[Outcome, FakeExecutor]:
        """Plan and run an experiment in this process (in `file`); returns the outcome and the executor used."""
        path = self.root / file
        path.write_text(textwrap.dedent(yaml), encoding="utf-8")
        settings = load_settings(self.root)
        spec = load_experiment(path, settings.store.path)
        instances = shard_instances(expand(spec, [], {}, configs=settings.configs), settings.root)
        store = open_project_store(settings)
        executor = executor or FakeExecutor()
        try:
            planner = Planner(store, settings, spec.name, instances, events or Events())
            ready = planner.answer_from_cache()
            scheduler = Scheduler(planner, ready, executor=executor, clock=executor.clock)
            if before is not None:
                before(scheduler)
            return scheduler.run(), executor
        finally:
            store.close()

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / ".mayuri" / "mayuri.db") as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture
def fast(tmp_path: Path) -> FastProject:
    root = tmp_path / "proj"
    root.mkdir()
    init_project(root)
    (root / "mayuri.toml").write_text((root / "mayuri.toml").read_text() + "\n", encoding="utf-8")
    return FastProject(root)

