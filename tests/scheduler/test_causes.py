"""Test 17 (GPU-OOM classifier + retry policy) and the cause of every kind of ending (tests 15, 16)."""

from __future__ import annotations

import signal

import pytest
from fakejob import SIGNATURES

from mayuri.experiment.spec import OomRetry, RetryPolicy
from mayuri.scheduler.causes import classify
from mayuri.scheduler.retry import decide, scaled

GPU_OOM = ["torch", "cublas", "cudnn", "cudnn_exec", "cudnn_unsupported", "jax", "nccl", "tf"]
NOT_OOM = ["illegal", "assert", "shape", "value", "nccl_timeout"]


@pytest.mark.parametrize("name", GPU_OOM)
def test_every_gpu_oom_signature_is_classified(name: str) -> None:
    tail = "Traceback (most recent call last):\n  File \"train.py\", line 3\n" + SIGNATURES[name] + "\n"
    assert classify(1, tail, oom_kills_before=None, oom_kills_after=None)[0] == "gpu_oom"


@pytest.mark.parametrize("name", NOT_OOM)
def test_other_errors_are_not_oom(name: str) -> None:
    assert classify(1, SIGNATURES[name], oom_kills_before=None, oom_kills_after=None)[0] == "exit"


def test_host_memory_and_signals() -> None:
    assert classify(1, SIGNATURES["host"], oom_kills_before=None, oom_kills_after=None)[0] == "host_oom"
    assert classify(1, "Traceback...\nMemoryError\n", oom_kills_before=None, oom_kills_after=None)[0] == "host_oom"
    kill = -signal.SIGKILL
    assert classify(kill, "", oom_kills_before=0, oom_kills_after=1)[0] == "host_oom"
    assert classify(kill, "", oom_kills_before=0, oom_kills_after=0)[0] == "host_oom_suspected"
    assert classify(-signal.SIGSEGV, "", oom_kills_before=None, oom_kills_after=None) == ("signal", "killed by SIGSEGV")


def test_oom_retries_only_oom_and_at_most_max() -> None:
    retry = RetryPolicy(oom=OomRetry(max=2, strategy="wait", wait=0))
    assert decide(retry, "gpu_oom", ["gpu_oom"], {}, []).retry
    assert decide(retry, "gpu_oom", ["gpu_oom"] * 2, {}, []).retry
    assert not decide(retry, "gpu_oom", ["gpu_oom"] * 3, {}, []).retry
    for cause in ("exit", "signal", "host_oom", "host_oom_suspected", "timeout", "cancelled"):
        assert not decide(retry, cause, [cause], {}, []).retry, cause


def test_failed_retries_count_separately() -> None:
    retry = RetryPolicy(failed=1, oom=OomRetry(max=1, strategy="wait", wait=0))
    assert decide(retry, "exit", ["exit"], {}, []).retry
    assert not decide(retry, "exit", ["exit", "exit"], {}, []).retry
    assert decide(retry, "host_oom", ["gpu_oom", "host_oom"], {}, []).retry
    assert not decide(retry, "timeout", ["timeout"], {}, []).retry


def test_scale_halves_down_to_the_floor_then_gives_up() -> None:
    oom = OomRetry(max=10, strategy="scale", scale={"batch_size": 0.5, "opt.lr": 0.5}, floor={"batch_size": 16})
    assert scaled({"batch_size": 64, "opt": {"lr": 0.1}}, oom) == {"batch_size": 32, "opt.lr": 0.05}
    assert scaled({"batch_size": 20, "opt": {"lr": 0.1}}, oom)["batch_size"] == 16
    first = decide(RetryPolicy(oom=oom), "gpu_oom", ["gpu_oom"], {"batch_size": 16, "opt": {"lr": 1.0}}, [])
    assert first.retry and first.changes == {"opt.lr": 0.5}
    stuck = decide(RetryPolicy(oom=OomRetry(strategy="scale", scale={"batch_size": 0.5}, floor=16)), "gpu_oom",
                   ["gpu_oom"],
                   {"batch_size": 16}, [])
    assert not stuck.retry and "floor" in stuck.reason


def test_move_avoids_the_gpus_it_ran_on() -> None:
    choice = decide(RetryPolicy(oom=OomRetry(strategy="move")), "gpu_oom", ["gpu_oom"], {}, ["GPU-a"])
    assert choice.retry and choice.avoid_gpus == frozenset({"GPU-a"})
