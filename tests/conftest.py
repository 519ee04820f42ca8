"""Shared fixtures: a temporary project driven through the real `mayuri` command."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow go first (in their order): xdist hands tests out in this order, and a test
    of half a minute handed out last keeps one worker busy while the other has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the developer's own settings and GPUs."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MAYURI_HOME", str(home))
    monkeypatch.delenv("MAYURI_FAKE_GPUS", raising=False)
    monkeypatch.delenv("MAYURI_RUN_ID", raising=False)
    monkeypatch.delenv("MAYURI_DEBUG", raising=False)


@pytest.fixture(autouse=True)
def strict_states(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, a state change outside mayuri/states.py's tables raises (the store writers check it)."""
    from mayuri import states

    monkeypatch.setattr(states, "STRICT", True)


@dataclass
class Project:
    """A temporary Mayuri project and a way to run the real CLI in it."""

    root: Path

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def mayuri(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["COLUMNS"] = "200"
        return subprocess.run(
            [sys.executable, "-m", "mayuri", *args], cwd=self.root, env=full_env, capture_output=True,
            text=True, timeout=timeout, input=input,
        )

    def read(self, *args: str) -> Any:
        """The JSON that a reading command prints (`runs --json`, `show --json`...), run in this process.

        For reading results back, which is not what a test is about: a process for it cost a tenth of a
        second, hundreds of times. The commands' own output across the process boundary is tested in
        tests/cli/test_commands.py.
        """
        from click.testing import CliRunner

        from mayuri.cli import cli

        with contextlib.chdir(self.root):
            done = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    def runs(self, *filters: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.read("runs", "--json", "--limit", "0", *filters)
        return result

    def show(self, run_id: str, *flags: str) -> dict[str, Any]:
        result: dict[str, Any] = self.read("show", run_id, "--json", *flags)
        return result

    @property
    def db(self) -> Path:
        return self.root / ".mayuri" / "mayuri.db"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """An initialised project in a temporary folder.

    Initialised in-process, by what `mayuri init` calls (a process per test cost a third of a second
    in hundreds of tests); the command itself is tested in tests/ergonomics/test_small_items.py.
    """
    from mayuri.init_project import init_project

    root = tmp_path / "proj"
    root.mkdir()
    init_project(root)
    yield Project(root)
