"""Checks that need a real NVIDIA GPU (skipped elsewhere): NVML inventory, UUID pinning, GPU memory samples."""

from __future__ import annotations

import json

import pytest
from sched_helpers import fake, query

pytestmark = pytest.mark.gpu


def test_nvml_inventory_is_in_pci_order_with_uuids() -> None:
    from mayuri.gpu import inventory

    gpus = inventory()
    assert gpus, "NVML found no GPU"
    assert [g.pci_bus_id for g in gpus] == sorted(g.pci_bus_id for g in gpus)
    assert all(g.visible_id.startswith(("GPU-", "MIG-")) for g in gpus)
    assert all(0 < g.memory_free <= g.memory_total for g in gpus)


def test_jobs_are_pinned_by_uuid(project) -> None:
    from mayuri.gpu import inventory

    record = project.root / "record.jsonl"
    project.write("exp.yaml", f"""
        name: real
        jobs:
          one:
            run: {fake("--record", str(record))}
            resources: {{gpus: 1, gpu_memory: 1GiB}}
        """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    env = json.loads(record.read_text().splitlines()[0])["env"]
    assert env["CUDA_VISIBLE_DEVICES"] in {g.uuid for g in inventory()}
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    [(gpus,)] = query(project.db, "SELECT gpus FROM attempt")
    assert json.loads(gpus) == [env["CUDA_VISIBLE_DEVICES"]]


def test_gpu_memory_of_a_torch_job_is_sampled(project) -> None:
    pytest.importorskip("torch")
    project.write("alloc.py", """
        import time, torch
        x = torch.empty(512 * 1024 * 1024, dtype=torch.uint8, device="cuda")
        time.sleep(2)
        """)
    project.write("exp.yaml", """
        name: real
        jobs:
          alloc:
            run: python alloc.py
            resources: {gpus: 1, gpu_memory: 2GiB}
        """)
    done = project.mayuri("run", "exp.yaml", env={"MAYURI_SAMPLE_INTERVAL": "0.3"})
    assert done.returncode == 0, done.stderr
    [(peak,)] = query(project.db, "SELECT peak_gpu_memory FROM run")
    assert peak >= 512 * 1024 * 1024
