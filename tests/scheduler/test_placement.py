"""GPU inventory (fake sizes, fake JSON with MIG and odd PCI order, degraded queries) and best-fit placement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mayuri.errors import GpuError
from mayuri.gpu import parse_fake
from mayuri.scheduler.placement import Request, check_feasible, choose, usable
from mayuri.store.lease_records import Lease

GiB = 1024**3


def lease(gpu: str, memory: int, exclusive: bool = False) -> Lease:
    return Lease("t", "h", gpu, "s", None, memory, exclusive)


def test_size_list_and_indexed_forms() -> None:
    gpus = parse_fake("4x16GiB")
    assert [g.visible_id for g in gpus] == ["0", "1", "2", "3"]
    assert all(g.memory_total == 16 * GiB for g in gpus)
    mixed = parse_fake("0:16GiB,1:24GiB")
    assert [g.memory_total for g in mixed] == [16 * GiB, 24 * GiB]
    with pytest.raises(GpuError, match="not a GPU list"):
        parse_fake("four gpus")


def write_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps([
        {"index": 0, "uuid": "GPU-bbbb", "pci_bus_id": "00000000:81:00.0", "memory_total": "24GiB"},
        {"index": 1, "uuid": "GPU-aaaa", "pci_bus_id": "00000000:01:00.0", "memory_total": "16GiB",
         "unsupported": ["utilization"]},
        {"index": 2, "uuid": "GPU-mmmm", "pci_bus_id": "00000000:41:00.0", "memory_total": "40GiB",
         "mig": [{"uuid": "MIG-1111", "memory_total": "20GiB"}, {"uuid": "MIG-2222", "memory_total": "20GiB"}]},
    ]))
    return path


def test_json_inventory_is_in_pci_order_with_mig_slices(tmp_path: Path) -> None:
    gpus = parse_fake(str(write_inventory(tmp_path)))
    assert [g.uuid for g in gpus] == ["GPU-aaaa", "MIG-1111", "MIG-2222", "GPU-bbbb"]
    assert [g.visible_id for g in gpus] == ["GPU-aaaa", "MIG-1111", "MIG-2222", "GPU-bbbb"]
    assert gpus[0].utilization is None  # NotSupported degrades to unknown
    assert gpus[1].is_mig and gpus[1].parent_uuid == "GPU-mmmm"


def test_best_fit_prefers_the_tightest_gpu() -> None:
    gpus = parse_fake("0:16GiB,1:24GiB,2:80GiB")
    picked = choose(Request(gpus=1, memory=10 * GiB), gpus, [])
    assert picked is not None and picked[0].gpu_uuid == gpus[0].uuid
    # 16 GiB GPU has 8 GiB reserved: 10 GiB no longer fits there, the 24 GiB one is next best.
    picked = choose(Request(gpus=1, memory=10 * GiB), gpus, [lease(gpus[0].uuid, 8 * GiB)])
    assert picked is not None and picked[0].gpu_uuid == gpus[1].uuid


def test_small_jobs_share_and_exclusive_jobs_do_not() -> None:
    gpus = parse_fake("1x16GiB")
    held = [lease(gpus[0].uuid, 4 * GiB)]
    assert choose(Request(gpus=1, memory=4 * GiB), gpus, held) is not None
    assert choose(Request(gpus=1), gpus, held) is None  # whole GPU wanted, someone is on it
    whole = choose(Request(gpus=1), gpus, [])
    assert whole is not None and whole[0].exclusive and whole[0].memory == 16 * GiB
    assert choose(Request(gpus=1, memory=GiB), gpus, [lease(gpus[0].uuid, GiB, exclusive=True)]) is None


def test_multi_gpu_jobs_never_get_mig_slices(tmp_path: Path) -> None:
    gpus = parse_fake(str(write_inventory(tmp_path)))
    picked = choose(Request(gpus=2, memory=GiB), gpus, [])
    assert picked is not None
    assert {c.gpu_uuid for c in picked} <= {"GPU-aaaa", "GPU-bbbb"}
    single = choose(Request(gpus=1, memory=18 * GiB), gpus, [])
    assert single is not None and len(single) == 1 and single[0].gpu_uuid == "MIG-1111"
    with pytest.raises(GpuError, match="at most one MIG"):
        check_feasible(Request(gpus=3, memory=GiB), gpus, "train")


def test_avoided_gpus_and_selection() -> None:
    gpus = parse_fake("3x16GiB")
    picked = choose(Request(gpus=1, memory=GiB), gpus, [], exclude=frozenset({gpus[0].uuid}))
    assert picked is not None and picked[0].gpu_uuid != gpus[0].uuid
    assert [g.index for g in usable(gpus, "0,2")] == [0, 2]
    assert [g.index for g in usable(gpus, [1])] == [1]
    assert len(usable(gpus, "all")) == 3


def test_infeasible_requests_are_refused() -> None:
    with pytest.raises(GpuError, match="no usable GPU"):
        check_feasible(Request(gpus=1, memory=GiB, source="declared"), [], "train")
    with pytest.raises(GpuError, match="more than the largest"):
        check_feasible(Request(gpus=1, memory=64 * GiB, source="declared"), parse_fake("2x16GiB"), "train")
    check_feasible(Request(), [], "cpu-job")
