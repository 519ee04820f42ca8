"""Write schema/experiment.schema.json and schema/mayuri-toml.schema.json from the code.

Run after changing the keys the loaders accept:  .venv/bin/python scripts/write_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

from mayuri.experiment.json_schema import config_schema, experiment_schema

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    ROOT / "schema" / "experiment.schema.json": experiment_schema,
    ROOT / "schema" / "mayuri-toml.schema.json": config_schema,
}


def render(build: object) -> str:
    assert callable(build)
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for path, build in FILES.items():
        path.write_text(render(build), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
