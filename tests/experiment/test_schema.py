"""The JSON Schemas in schema/ are current, and every example validates against them and loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from mayuri.experiment import expand, parse_experiment
from mayuri.experiment.json_schema import config_schema, experiment_schema

ROOT = Path(__file__).resolve().parents[2]
FIX = "run `.venv/bin/python scripts/write_schema.py` and commit the result"
EXAMPLES = sorted((ROOT / "examples").glob("*/exp.yaml"))


@pytest.mark.parametrize(("name", "build"), [("experiment.schema.json", experiment_schema),
                                             ("mayuri-toml.schema.json", config_schema)])
def test_schema_files_are_current(name: str, build: object) -> None:
    assert callable(build)
    on_disk = json.loads((ROOT / "schema" / name).read_text())
    assert on_disk == build(), f"schema/{name} is stale: {FIX}"
    jsonschema.Draft202012Validator.check_schema(on_disk)


def test_the_schema_ships_inside_the_package() -> None:
    code = "from importlib import resources; print(resources.files('mayuri.schema').joinpath('experiment.schema.json').is_file())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.stdout.strip() == "True", done.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_validate_and_load(example: Path) -> None:
    jsonschema.validate(YAML(typ="safe").load(example.read_text()), experiment_schema())
    instances = expand(parse_experiment(example), kinds=("job", "test"))
    assert instances


def test_schema_and_loader_agree_on_an_unknown_key(tmp_path: Path) -> None:
    text = "jobs:\n  a:\n    run: 'true'\n    retires: 3\n"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(YAML(typ="safe").load(text), experiment_schema())
    from mayuri.errors import ExperimentError

    with pytest.raises(ExperimentError):
        parse_experiment(tmp_path / "x.yaml", text)


def test_mayuri_toml_of_init_validates(tmp_path: Path) -> None:
    import tomllib

    import tomlkit

    from mayuri.init_project import default_config

    data = tomllib.loads(tomlkit.dumps(default_config("demo")))
    jsonschema.validate(data, config_schema())
