"""The Slurm executor's pure parts: `[executor.slurm]`, the sbatch request, Slurm's states, the preflight."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mayuri.errors import ConfigError, ExecutorError, ExperimentError
from mayuri.executors import slurm as slurm_executor
from mayuri.executors.slurm import SlurmHandle, preflight
from mayuri.executors.slurm.node import node_env
from mayuri.executors.slurm.options import parse_settings, sbatch_parameters, slurm_time
from mayuri.executors.slurm.states import JobState, parse_sacct, parse_squeue
from mayuri.experiment.parse import parse_experiment


def test_settings_read_and_checked() -> None:
    settings = parse_settings({"partition": "gpu", "time": "4h", "setup": "module load cuda",
                               "additional": {"mail-type": "END"}, "array": True})
    assert settings.partition == "gpu" and settings.time == 4 * 3600
    assert settings.setup == ("module load cuda",) and settings.array
    with pytest.raises(ConfigError, match="unknown key 'partiton' in mayuri.toml — did you mean 'partition'"):
        parse_settings({"partiton": "gpu"})
    with pytest.raises(ConfigError, match="time"):
        parse_settings({"time": "soon"})
    with pytest.raises(ConfigError, match="array must be true or false"):
        parse_settings({"array": "yes"})


def test_resources_become_the_request() -> None:
    settings = parse_settings({"partition": "gpu", "account": "lab", "qos": "high", "time": "2h",
                               "setup": ["source venv/bin/activate"], "additional": {"mail-type": "END"}})
    params = sbatch_parameters(settings, {"gpus": 2, "cpus": 8, "memory": 16 * 2**30, "labels": ["a100", "ib"]},
                               None, "train")
    assert params["partition"] == "gpu" and params["account"] == "lab" and params["qos"] == "high"
    assert params["gpus_per_node"] == 2 and params["cpus_per_task"] == 8 and params["mem"] == "16384M"
    assert params["constraint"] == "a100&ib"
    assert params["setup"] == ["source venv/bin/activate"]
    assert params["additional_parameters"] == {"mail-type": "END", "time": "120:00", "signal": "B:URG@1"}
    assert params["job_name"] == "mayuri-train"


def test_a_jobs_timeout_wins_over_the_tables_time() -> None:
    params = sbatch_parameters(parse_settings({"time": "4h"}), {}, 30.0, "train")
    # The head stops it on time; Slurm's limit is the backstop, a minute later.
    assert params["additional_parameters"]["time"] == "1:30"
    assert slurm_time(0.2) == "0:01"
    assert sbatch_parameters(parse_settings({}), {}, None, "x")["additional_parameters"] == {"signal": "B:URG@1"}


def test_squeue_states_mapped_onto_mayuris() -> None:
    found = parse_squeue("12|PENDING|Resources||0|\n13_2|RUNNING|None|node1|0|\n14|TIMEOUT|TimeLimit|n|15|\n"
                         "15|PREEMPTED|None|n|0|\n16|NODE_FAIL|None|n|0|\n17|OUT_OF_MEMORY|OutOfMemory|n|0|\n"
                         "18|FAILED|NonZeroExitCode|n|768|\n")
    assert found["12"].queued and found["12"].reason == "Resources" and found["12"].alive
    assert found["13_2"].alive and not found["13_2"].queued and found["13_2"].node == "node1"
    assert found["14"].cause() == ("timeout", "reached its Slurm time limit") and found["14"].exit_code() == -15
    assert found["15"].cause()[0] == "node_lost"  # type: ignore[index]
    assert found["16"].cause()[0] == "node_lost"  # type: ignore[index]
    assert found["17"].cause()[0] == "host_oom"  # type: ignore[index]
    assert found["18"].cause() is None and found["18"].exit_code() == 3 and not found["18"].alive


def test_sacct_lines_of_the_job_not_its_steps() -> None:
    found = parse_sacct("20|COMPLETED|n1|0:0\n20.batch|COMPLETED|n1|0:0\n21|CANCELLED by 0|n1|0:15\n")
    assert set(found) == {"20", "21"}
    assert found["21"] == JobState("CANCELLED", "", "n1", 15)
    assert found["21"].cause()[0] == "cancelled"  # type: ignore[index]


def test_slurms_allocation_reaches_the_job() -> None:
    env = node_env({"CUDA_VISIBLE_DEVICES": "", "PATH": "/bin"},
                   {"CUDA_VISIBLE_DEVICES": "1", "SLURM_JOB_ID": "7", "HOME": "/node"})
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "PATH": "/bin", "SLURM_JOB_ID": "7"}
    # A job Slurm gave no GPU keeps the head's "none visible".
    assert node_env({"CUDA_VISIBLE_DEVICES": ""}, {})["CUDA_VISIBLE_DEVICES"] == ""


def test_preflight_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "submitit" else real(name))
    with pytest.raises(ExecutorError, match="needs submitit") as caught:
        preflight.check(None)
    assert "mayuri[slurm]" in (caught.value.hint or "")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    if real("submitit") is not None:
        with pytest.raises(ExecutorError, match="`sbatch` is not on the PATH"):
            preflight.check(None)


def test_labels_are_a_resource_of_the_experiment_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("jobs:\n  train:\n    run: python -c pass\n    resources: {gpus: 1, labels: [a100, ib]}\n")
    assert parse_experiment(good).jobs["train"].resources.labels == ("a100", "ib")
    good.write_text("jobs:\n  train:\n    run: python -c pass\n    resources: {labels: a100}\n")
    assert parse_experiment(good).jobs["train"].resources.labels == ("a100",)
    good.write_text("jobs:\n  train:\n    run: python -c pass\n    resources: {labels: [1]}\n")
    with pytest.raises(ExperimentError, match="resources.labels: must be a name or a list of names"):
        parse_experiment(good)


def _handle(tmp_path: Path, job_id: str) -> SlurmHandle:
    return SlurmHandle(job_id, run_dir=tmp_path, attempt=1)


def test_how_an_attempt_ended_from_its_record_and_slurms_state(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    states: dict[str, JobState] = {}
    monkeypatch.setattr(slurm_executor, "query", lambda ids: {i: states[i] for i in ids if i in states})
    monkeypatch.setattr(slurm_executor, "RECORD_WAIT", 0.0)
    executor = slurm_executor.SlurmExecutor({})
    # Still queued: not ended, and said so with Slurm's reason.
    states["1"] = JobState("PENDING", "Priority")
    queued = _handle(tmp_path, "1")
    executor._watched["1"] = queued
    assert executor.poll(queued) is None
    assert executor.waiting(queued) == "queued in Slurm (job 1: pending, Priority)"
    # The node died: no exit record, Slurm says NODE_FAIL -> node_lost (retried like a failure).
    states["1"] = JobState("NODE_FAIL", "", "n7")
    executor._asked_at = float("-inf")
    lost = executor.poll(queued)
    assert lost is not None and (lost.cause, lost.node) == ("node_lost", "n7")
    # The runner wrote its record (killed by SIGTERM) and Slurm says TIMEOUT -> timeout.
    (tmp_path / "exit-1.json").write_text('{"exit_code": -15, "node": "n8", "cause": "stopped"}')
    states["2"] = JobState("TIMEOUT", "TimeLimit", "n8", 15)
    timed = executor.poll(_handle(tmp_path, "2"))
    assert timed is not None and (timed.code, timed.cause, timed.node) == (-15, "timeout", "n8")
    # A plain exit code: the record alone says it (the stderr tail then tells a CUDA OOM, as locally).
    (tmp_path / "exit-1.json").write_text('{"exit_code": 3, "node": "n8"}')
    failed = executor.poll(_handle(tmp_path, "3"))
    assert failed is not None and (failed.code, failed.cause) == (3, None)
