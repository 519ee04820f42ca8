"""The JSON Schema of experiment files and of mayuri.toml, built from the same key lists the loaders use.

`scripts/write_schema.py` writes them to `schema/`; a test fails (naming that
command) when the files there are stale. Editors use the experiment schema
for completion and checks; Mayuri's own loader gives the precise errors.
"""

from __future__ import annotations

from typing import Any

from mayuri.config import _SCHEMA as TOML_TABLES
from mayuri.config import KEY_ENV_PARTS
from mayuri.experiment.parse import JOB_KEYS, OOM_KEYS, PIPELINE_STEP_KEYS, RESOURCE_KEYS, TOP_KEYS
from mayuri.experiment.shard_keys import SHARD_KEYS
from mayuri.experiment.spec import REDUCE_KINDS

_NAME = "^[A-Za-z_][A-Za-z0-9_-]*$"
_DURATION = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d|w)?\s*$"}]}
_SIZE = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[kmgtpKMGTP]?i?[bB]?\s*$"}]}
_COMMAND = {"oneOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "minItems": 1, "items": {"type": ["string", "number"]}}]}


def _object(properties: dict[str, Any], required: list[str] | None = None, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


_EXECUTOR = {"type": "string", "pattern": _NAME,
             "description": "Where the job runs: an executor's name (local, or one a package registers)."}


def _resources() -> dict[str, Any]:
    props: dict[str, Any] = {"gpus": {"type": "number", "minimum": 0}, "cpus": {"type": "number", "minimum": 0},
                             "gpu_memory": _SIZE, "memory": _SIZE,
                             "labels": {"anyOf": [{"type": "string", "minLength": 1},
                                                  {"type": "array", "items": {"type": "string", "minLength": 1}}],
                                        "description": "What a node must have (Ray custom resources, Slurm "
                                                       "constraints); ignored by the local executor."}}
    assert set(props) == set(RESOURCE_KEYS)
    return _object(props, description="What the job needs to run.")


def _retry() -> dict[str, Any]:
    oom_props: dict[str, Any] = {
        "max": {"type": "integer", "minimum": 0},
        "scale": {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
        "floor": {"type": "object", "additionalProperties": {"type": "number"}},
        "strategy": {"enum": ["wait", "move", "scale"]},
        "wait": _DURATION,
    }
    assert set(oom_props) == set(OOM_KEYS)
    return _object({"oom": {"oneOf": [{"type": "integer", "minimum": 0}, _object(oom_props)]},
                    "failed": {"type": "integer", "minimum": 0}, "delay": _DURATION})


def _shards() -> dict[str, Any]:
    files = _object({"files": {"type": "string", "minLength": 1}, "count": {"type": "integer", "minimum": 1}},
                    ["files", "count"])
    assert set(files["properties"]) == set(SHARD_KEYS)
    return {"oneOf": [{"type": "integer", "minimum": 1}, files],
            "description": "Run the job as this many shards (or over these files), each cached on its own."}


def _reduce() -> dict[str, Any]:
    kinds = [k for k in REDUCE_KINDS if k != "weighted_mean"]
    rule: dict[str, Any] = {"oneOf": [{"enum": kinds},
                                      _object({"weighted_mean": {"type": "string"}}, ["weighted_mean"])]}
    metric = _object({"metric": rule}, ["metric"], "The last value of a logged metric.")
    return {"type": "object", "additionalProperties": {"oneOf": [*rule["oneOf"], metric]},
            "description": "How the shards' outputs (or metrics) combine into the job's result."}


def _depends_on() -> dict[str, Any]:
    mapping = {"type": ["object", "null"], "additionalProperties": {"type": "string"}}
    return {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}},
                      {"type": "object", "additionalProperties": mapping}],
            "description": "Upstream jobs, each mapping its outputs to this job's params."}


def _job(test: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "run": _COMMAND,
        "description": {"type": "string"},
        "params": {"type": "object"},
        "sweep": {"type": "object", "additionalProperties": {"oneOf": [
            {"type": "array", "minItems": 1},
            _object({"range": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "number"}}}, ["range"]),
        ]}},
        "depends_on": _depends_on(),
        "resources": _resources(),
        "retry": _retry(),
        "timeout": _DURATION,
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "cache": {"oneOf": [{"type": "boolean"}, {"const": "strict"}, _DURATION]},
        "outputs": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "expect": {"type": "object", "additionalProperties": {"type": "string",
                   "pattern": r"^\s*(>=|<=|==|!=|>|<|in|not in)\s+.+$"}},
        "pipeline": {"type": "string"},
        "gather": {"type": "boolean"},
        "inputs": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "python": {"type": "string"},
        "shell": {"type": "boolean"},
        "metrics_from": _object({"stdout": {"oneOf": [
            {"type": "string", "minLength": 1}, {"type": "array", "minItems": 1, "items": {"type": "string"}},
        ]}}, description="Regular expressions with named groups (`step` and metric names) "
                         "that turn printed lines into metrics."),
        "shards": _shards(),
        "reduce": _reduce(),
        "executor": _EXECUTOR,
    }
    assert set(props) == set(JOB_KEYS)
    if not test:
        props = {k: v for k, v in props.items() if k != "expect"}
    job = _object(props, ["run"])
    step = _object({k: props[k] for k in PIPELINE_STEP_KEYS if k in props} | {"pipeline": props["pipeline"]},
                   ["pipeline"], "Another experiment file used as one step.")
    return {"oneOf": [job, step]} if not test else job


def experiment_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an experiment file."""
    props: dict[str, Any] = {
        "name": {"type": "string", "pattern": _NAME},
        "description": {"type": "string"},
        "extends": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "defaults": {"type": "object", "propertyNames": {"pattern": _NAME},
                     "additionalProperties": {"type": ["string", "number"]},
                     "description": "Config groups: group -> choice, a file in the configs folder "
                                    "(configs/GROUP/CHOICE.yaml)."},
        "params": {"type": "object", "description": "Defaults inherited by every job."},
        "resources": _resources(),
        "retry": _retry(),
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "executor": _EXECUTOR,
        "jobs": {"type": "object", "propertyNames": {"pattern": _NAME}, "additionalProperties": _job(False)},
        "tests": {"type": "object", "propertyNames": {"pattern": _NAME}, "additionalProperties": _job(True)},
    }
    assert set(props) == set(TOP_KEYS)
    schema = _object(props, description="A Mayuri experiment file.")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "mayuri-experiment", **schema}


def config_schema() -> dict[str, Any]:
    """The JSON Schema of mayuri.toml (for editors with TOML schema support)."""
    def kind(expected: Any) -> dict[str, Any]:
        names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
        types = expected if isinstance(expected, tuple) else (expected,)
        return {"type": sorted({names[t] for t in types})}

    tables: dict[str, Any] = {}
    for table, keys in TOML_TABLES.items():
        if table == "user":
            tables[table] = {"type": "object", "description": "[user.NAME]: personal param overrides."}
            continue
        if table == "keys":
            tables[table] = {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                             "description": "Dashboard key bindings by binding id."}
            continue
        tables[table] = _object({key: kind(expected) for key, expected in keys.items()})
    tables["executor"]["additionalProperties"] = {
        "type": "object", "description": "[executor.NAME]: the options of that executor (ray, slurm, ...)."}
    tables["executor"]["description"] = "Where jobs run: `default` (\"local\", or a registered executor's name)."
    tables["cache"]["properties"]["key_env"] = {"type": "array", "items": {"enum": list(KEY_ENV_PARTS)}}
    tables["cache"]["properties"]["roots"] = {"type": "array", "items": {"type": "string", "minLength": 1}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "mayuri-toml", **_object(tables)}
