"""Fixtures for the dashboard tests: stores made by real `mayuri run`s, and waiting on the app.

`demo` is one project per test module, filled by a real run of a small
pipeline (a data step, a swept training step that logs metrics, a step that
fails); tests that change the store (cancel, live refresh) make their own.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from mayuri.config import load_settings
from mayuri.tui.app import MayuriApp, make_app
from mayuri.tui.screens.runs_screen import RunsScreen
from tests.conftest import Project

EXPERIMENT = """\
name: demo
params: {seed: 0}
jobs:
  prep:
    run: python src/prep.py
    outputs: [data]
  train:
    run: python src/train.py
    params: {lr: 0.001, batch_size: 64}
    sweep: {lr: [0.001, 0.01]}
    depends_on:
      prep: {data: data_path}
  broken:
    run: python src/broken.py
"""

PREP = """\
import mayuri
print("prepared the data")
mayuri.output("data", "data.txt")
"""

TRAIN = """\
import mayuri
from helpers import curve

p = mayuri.params()
for step in range(300):
    mayuri.log(step=step, loss=curve(step, p["lr"]), accuracy=step / 300)
print("trained with lr", p["lr"])
mayuri.output("model", "model-%s" % p["lr"])
"""

HELPERS = """\
def curve(step, lr):
    return 1.0 / (1 + step * lr * 10)
"""

BROKEN = """\
import sys
print("about to fail", file=sys.stderr)
sys.exit(3)
"""


def fill_demo(project: Project) -> Project:
    """Write the demo pipeline and run it for real (the `broken` job fails on purpose)."""
    project.write("exp.yaml", EXPERIMENT)
    project.write("src/prep.py", PREP)
    project.write("src/train.py", TRAIN)
    project.write("src/helpers.py", HELPERS)
    project.write("src/broken.py", BROKEN)
    done = project.mayuri("run", "exp.yaml")
    statuses = sorted((r["job"], r["status"]) for r in project.runs())
    assert statuses == [("broken", "failed"), ("prep", "succeeded"), ("train", "succeeded"),
                        ("train", "succeeded")], done.stderr
    return project


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project whose store holds 3 succeeded runs and 1 failed one, made by `mayuri run`."""
    root = tmp_path_factory.mktemp("demo") / "proj"
    root.mkdir()
    project = Project(root)
    assert project.mayuri("init").returncode == 0
    return fill_demo(project)


# A job in 3 shards, shard 2 of which fails; `extra` adds jobs.
SHARDED = """\
    jobs:
      ev:
        run: python -c "import sys, mayuri; i, n = mayuri.shard(); sys.exit(i == 2)"
        shards: 3
"""


def run_failing_shards(project: Project, extra: str = "") -> None:
    project.write("exp.yaml", SHARDED + extra)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1 and "1 of 3 shards failed: 2" in done.stderr


def app_for(root: Path, poll_interval: float = 0.2) -> MayuriApp:
    return make_app(load_settings(root), poll_interval=poll_interval)


async def wait_until(pilot: Pilot[None], check: Callable[[], bool], timeout: float = 20.0,
                     what: str = "the dashboard") -> None:
    """Let the app work until `check()` holds (thread workers answer on their own time)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            # Failed store reads show up as notifications: say what they were.
            notes = [str(n.message) for n in pilot.app._notifications]
            raise AssertionError(f"timed out waiting for {what}; notifications: {notes}")
        await pilot.pause(0.02)


async def runs_loaded(pilot: Pilot[None]) -> RunsScreen:
    """Wait for the runs screen's first page, and return the screen."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded_generation >= 0,
                     what="the runs screen")
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    return screen


def text_of(static: Static) -> str:
    """What a Static shows, as plain text (its content may be any Rich renderable)."""
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(static.content)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times shown in UTC, so that snapshots do not depend on the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
