"""Fake GPUs with real subprocesses: refusal without GPUs, pinning, no over-commit (one and two
schedulers, test 18), device identity (test 19), OOM scale retries and resume from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from sched_helpers import assert_no_overlap, attempts, fake, query, start_mayuri, store_is_sound


def test_gpu_job_without_gpus_is_refused_before_anything_runs(project) -> None:
    project.write("exp.yaml", f"""
        name: nogpu
        jobs:
          cpu: {{run: {fake()}}}
          train:
            run: {fake()}
            resources: {{gpus: 1}}
        """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2
    assert "asks for 1 GPU(s), but this machine has no usable GPU" in done.stderr
    assert "Traceback" not in done.stderr
    assert project.runs() == []
    cpu_only = project.mayuri("run", "exp.yaml", "--only", "cpu")
    assert cpu_only.returncode == 0, cpu_only.stderr


def test_eight_one_gpu_jobs_on_four_gpus_never_share_one(project) -> None:
    record = project.root / "record.jsonl"
    project.write("exp.yaml", f"""
        name: four
        jobs:
          train:
            run: {fake("--sleep", "0.6", "--record", str(record), "--param", "i=${i}")}
            params: {{i: 0}}
            sweep: {{i: [1, 2, 3, 4, 5, 6, 7, 8]}}
            resources: {{gpus: 1}}
        """)
    project.write("mayuri.toml", "[scheduler]\nmax_parallel = 8\n")
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_FAKE_GPUS": "4x16GiB"})
    assert done.returncode == 0, done.stderr
    rows = attempts(project.db)
    assert len(rows) == 8 and all(len(r["gpus"]) == 1 for r in rows)
    assert_no_overlap(rows)
    starts = [json.loads(line) for line in record.read_text().splitlines()]
    assert {s["env"]["CUDA_VISIBLE_DEVICES"] for s in starts} <= {"0", "1", "2", "3"}
    assert all(s["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for s in starts)
    store_is_sound(project.db)


def test_two_schedulers_share_two_gpus_without_overcommit(project) -> None:
    for name in ("a", "b"):
        project.write(f"{name}.yaml", f"""
            name: {name}
            jobs:
              train:
                run: {fake("--sleep", "0.5", "--param", "i=${i}")}
                params: {{i: 0}}
                sweep: {{i: [1, 2, 3, 4, 5, 6]}}
                resources: {{gpus: 1, gpu_memory: 10GiB}}
                env: {{WHO: {name}}}
            """)
    # (The env differs: the same work in both files would be done once and reused by the other.)
    env = {"MAYURI_FAKE_GPUS": "2x16GiB"}
    first = start_mayuri(project.root, "run", "a.yaml", env=env)
    second = start_mayuri(project.root, "run", "b.yaml", env=env)
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    rows = attempts(project.db)
    assert len(rows) == 12 and all(r["status"] == "succeeded" for r in rows)
    assert_no_overlap(rows)  # 10 GiB each on 16 GiB GPUs: one job per GPU at a time
    store_is_sound(project.db)


def test_small_declared_jobs_share_a_gpu(project) -> None:
    project.write("exp.yaml", f"""
        name: share
        jobs:
          small:
            run: {fake("--sleep", "1.0")}
            params: {{i: 0}}
            sweep: {{i: [1, 2, 3]}}
            resources: {{gpus: 1, gpu_memory: 4GiB}}
        """)
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_FAKE_GPUS": "1x16GiB"})
    assert done.returncode == 0, done.stderr
    rows = attempts(project.db)
    latest_start = max(r["started_at"] for r in rows)
    earliest_end = min(r["ended_at"] for r in rows)
    assert latest_start < earliest_end, "the three 4 GiB jobs should have run side by side"


def test_device_identity_with_mig_and_odd_pci_order(project, tmp_path: Path) -> None:
    inventory = tmp_path / "gpus.json"
    inventory.write_text(json.dumps([
        {"index": 0, "uuid": "GPU-zzzz", "pci_bus_id": "00000000:81:00.0", "memory_total": "16GiB",
         "unsupported": ["utilization"]},
        {"index": 1, "uuid": "GPU-mig0", "pci_bus_id": "00000000:01:00.0", "memory_total": "40GiB",
         "mig": [{"uuid": "MIG-aaaa", "memory_total": "20GiB"}, {"uuid": "MIG-bbbb", "memory_total": "20GiB"}]},
    ]))
    record = project.root / "record.jsonl"
    project.write("exp.yaml", f"""
        name: mig
        jobs:
          one:
            run: {fake("--sleep", "0.3", "--record", str(record))}
            params: {{i: 0}}
            sweep: {{i: [1, 2, 3]}}
            resources: {{gpus: 1, gpu_memory: 18GiB}}
          two:
            run: {fake("--record", str(record))}
            resources: {{gpus: 2, gpu_memory: 1GiB}}
        """)
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_FAKE_GPUS": str(inventory)})
    assert done.returncode == 2 and "at most one MIG slice" in done.stderr
    done = project.mayuri("run", "exp.yaml", "--only", "one", env={"MAYURI_FAKE_GPUS": str(inventory)})
    assert done.returncode == 0, done.stderr
    seen = [json.loads(line)["env"] for line in record.read_text().splitlines()]
    assert all(env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for env in seen)
    assert all(env["CUDA_VISIBLE_DEVICES"] in ("MIG-aaaa", "MIG-bbbb") for env in seen)
    assert_no_overlap(attempts(project.db))


def test_oom_scales_batch_size_until_it_fits(project) -> None:
    project.write("exp.yaml", f"""
        name: oom
        jobs:
          train:
            run: {fake("--param", "batch_size=${batch_size}", "--oom-above", "batch_size=16")}
            params: {{batch_size: 64}}
            resources: {{gpus: 1, gpu_memory: 2GiB}}
            retry: {{oom: {{max: 3, scale: {{batch_size: 0.5}}}}}}
        """)
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_FAKE_GPUS": "1x16GiB"})
    assert done.returncode == 0, done.stderr
    rows = attempts(project.db)
    assert [r["params"]["batch_size"] for r in rows] == [64, 32, 16]
    assert [r["cause"] for r in rows] == ["gpu_oom", "gpu_oom", None]
    assert [r["status"] for r in rows] == ["failed", "failed", "succeeded"]
    run = project.runs()[0]
    assert run["status"] == "succeeded"
    log = (Path(run["run_dir"]) / "stderr.log").read_text()
    assert log.count("CUDA out of memory") == 2  # both failed attempts' output is kept
    store_is_sound(project.db)


def test_oom_gives_up_after_max(project) -> None:
    project.write("exp.yaml", f"""
        name: oom
        jobs:
          train:
            run: {fake("--oom", "jax")}
            retry: {{oom: {{max: 1, strategy: wait, wait: 0}}}}
        """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    rows = attempts(project.db)
    assert [r["cause"] for r in rows] == ["gpu_oom", "gpu_oom"]
    [(error,)] = query(project.db, "SELECT error FROM run")
    assert "retry.oom.max = 1" in error


def test_retry_resumes_from_the_previous_checkpoint(project) -> None:
    project.write("exp.yaml", f"""
        name: resume
        jobs:
          train:
            run: {fake("--checkpoint", "--param", "bs=${bs}", "--oom-above", "bs=8")}
            params: {{bs: 16}}
            retry: {{oom: {{max: 2, scale: {{bs: 0.5}}}}}}
        """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    run = project.runs()[0]
    out = (Path(run["run_dir"]) / "stdout.log").read_text()
    assert out.splitlines() == ["fresh start", "resumed from step 10"]
    assert query(project.db, "SELECT COUNT(*) FROM attempt") == [(2,)]
