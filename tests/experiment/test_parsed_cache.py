"""The parsed-experiment cache: reused only when everything the parse looked at is the same.

Each test parses once (which keeps an entry), changes one thing the parse
depended on, and checks that the next load parses again and sees the change;
or changes nothing and checks that the parser is not called at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayuri.experiment import parse
from mayuri.experiment.parse import parse_experiment
from mayuri.experiment.parsed_cache import FOLDER, load_experiment

BASE = """
params: {lr: 0.1, layers: [1, 2], flags: {a: true, 3: null}}
"""

EXPERIMENT = """
name: cached
extends: base.yaml
jobs:
  train:
    run: python train.py ${lr}
    inputs: [data/*.csv]
    outputs: [score]
    cache: 3600
    depends_on: prep
  prep:
    run: [python, prep.py]
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    project = tmp_path / "project"
    (project / ".mayuri").mkdir(parents=True)
    (project / "base.yaml").write_text(BASE)
    (project / "exp.yaml").write_text(EXPERIMENT)
    monkeypatch.chdir(project)
    yield project


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Count the parser's calls from now on."""
    calls: list[Path] = []
    real = parse.parse_experiment

    def counting(path: Path, text: str | None = None) -> object:
        calls.append(path)
        return real(path, text)

    monkeypatch.setattr(parse, "parse_experiment", counting)
    return calls


def test_an_unchanged_file_is_not_parsed_again_and_gives_an_equal_spec(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert first == parse_experiment(Path("exp.yaml"))
    assert list((folder / ".mayuri" / FOLDER).iterdir())
    calls = _parses(monkeypatch)
    again = load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert calls == []
    assert again == first
    assert type(again.jobs["train"].inputs) is tuple and again.jobs["train"].params["flags"] == {"a": True, "3": None}


@pytest.mark.parametrize("change", ["file", "base", "base link", "path given", "folder"])
def test_a_change_to_anything_the_parse_looked_at_parses_again(
    folder: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    if change == "base link":
        (folder / "real-base.yaml").write_text(BASE)
        (folder / "base.yaml").unlink()
        (folder / "base.yaml").symlink_to("real-base.yaml")
        (folder / "other-base.yaml").write_text(BASE.replace("0.1", "0.5"))
    given = Path("exp.yaml")
    load_experiment(given, folder / ".mayuri")
    calls = _parses(monkeypatch)
    if change == "file":
        (folder / "exp.yaml").write_text(EXPERIMENT.replace("${lr}", "${lr} --fast"))
    elif change == "base":
        (folder / "base.yaml").write_text(BASE.replace("0.1", "0.5"))
    elif change == "base link":
        (folder / "base.yaml").unlink()
        (folder / "base.yaml").symlink_to("other-base.yaml")
    elif change == "path given":
        given = folder / "exp.yaml"
    else:
        (folder / "sub").mkdir()
        monkeypatch.chdir(folder / "sub")
        given = Path("../exp.yaml")
    spec = load_experiment(given, folder / ".mayuri")
    assert len(calls) == 1
    assert spec == parse_experiment(given)
    if change in ("base", "base link"):
        assert spec.params["lr"] == 0.5


def test_a_change_to_ruamel_or_to_the_python_environment_parses_again(
    folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    (entry_file,) = (folder / ".mayuri" / FOLDER).iterdir()
    entry = json.loads(entry_file.read_text())
    assert entry["stamp"][-1][0].endswith(os.path.join("ruamel", "yaml", "__init__.py"))
    # An entry names the ruamel.yaml it was parsed with; here, a stand-in for it.
    ruamel = tmp_path / "ruamel_init.py"
    ruamel.write_text("version 1")
    info = ruamel.stat()
    entry["stamp"][-1] = [str(ruamel), info.st_size, info.st_mtime_ns]
    entry_file.write_text(json.dumps(entry))
    calls = _parses(monkeypatch)
    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert calls == []

    ruamel.write_text("version 1.1")  # upgraded
    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert len(calls) == 1

    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert len(calls) == 1
    monkeypatch.setattr("sys.prefix", str(tmp_path / "another-venv"))
    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert len(calls) == 2


def test_a_broken_entry_is_parsed_again(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    (entry,) = (folder / ".mayuri" / FOLDER).iterdir()
    entry.write_text("{not json")
    calls = _parses(monkeypatch)
    assert load_experiment(Path("exp.yaml"), folder / ".mayuri") == parse_experiment(Path("exp.yaml"))
    assert len(calls) == 1
    json.loads(entry.read_text())  # and it was written again


def test_a_value_json_cannot_carry_exactly_is_not_kept(folder: Path) -> None:
    (folder / "exp.yaml").write_text(EXPERIMENT.replace("jobs:", "params: {when: 2001-12-14}\njobs:"))
    spec = load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert spec == parse_experiment(Path("exp.yaml"))
    assert not (folder / ".mayuri" / FOLDER).exists() or not list((folder / ".mayuri" / FOLDER).iterdir())


def test_nothing_is_kept_before_the_store_exists(folder: Path) -> None:
    os.rmdir(folder / ".mayuri")
    load_experiment(Path("exp.yaml"), folder / ".mayuri")
    assert not (folder / ".mayuri").exists()
