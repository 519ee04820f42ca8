"""GPU inventory: NVML through `pynvml` (from nvidia-ml-py), or a fake for tests and demos.

The only module that touches pynvml. It initialises lazily and degrades to an
empty inventory when there is no driver or GPU, and to "unknown" values when a
query is not supported, so everything works on machines without one.
`MAYURI_FAKE_GPUS=4x16GiB` (or `0:16GiB,1:24GiB`, or the path of a JSON file
describing GPUs with PCI ids, MIG slices and processes) replaces NVML with
that inventory. Placement and leases are not decided here (see
`mayuri.scheduler.placement`); this module only says what hardware exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mayuri.errors import GpuError
from mayuri.units import parse_size

FAKE_ENV = "MAYURI_FAKE_GPUS"
T = TypeVar("T")


@dataclass(frozen=True)
class Gpu:
    """One schedulable device: a whole GPU, or one MIG slice of a GPU in MIG mode."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_free: int
    utilization: int | None = None
    pci_bus_id: str = ""
    driver: str = ""
    processes: tuple[int, ...] = field(default=())
    parent_uuid: str | None = None
    # What CUDA_VISIBLE_DEVICES names it by; the UUID unless the fake says otherwise.
    cuda_id: str = ""
    fake: bool = False

    @property
    def is_mig(self) -> bool:
        return self.parent_uuid is not None

    @property
    def visible_id(self) -> str:
        return self.cuda_id or self.uuid


def _size(value: Any) -> int:
    return parse_size(value) if isinstance(value, str) else int(value)


def _fake_from_json(path: Path) -> list[Gpu]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GpuError(f"{FAKE_ENV}={path} cannot be read as a JSON list of GPUs ({exc}).") from None
    gpus: list[Gpu] = []
    for position, entry in enumerate(entries):
        index = int(entry.get("index", position))
        uuid = str(entry.get("uuid", f"GPU-fake-{index:04d}"))
        total = _size(entry.get("memory_total", "16GiB"))
        unsupported = set(entry.get("unsupported", ()))
        pci = str(entry.get("pci_bus_id", f"00000000:{index + 1:02X}:00.0"))
        common: dict[str, Any] = {
            "name": str(entry.get("name", "Fake GPU")), "pci_bus_id": pci, "driver": "fake", "fake": True,
            "utilization": None if "utilization" in unsupported else int(entry.get("utilization", 0)),
        }
        slices = entry.get("mig") or []
        if slices:
            for number, mig in enumerate(slices):
                size = _size(mig.get("memory_total", total // len(slices)))
                gpus.append(Gpu(index=index, uuid=str(mig.get("uuid", f"MIG-{uuid[4:]}-{number}")),
                                memory_total=size, memory_free=size, parent_uuid=uuid, **common))
            continue
        free = total if "memory_free" not in entry else _size(entry["memory_free"])
        gpus.append(Gpu(index=index, uuid=uuid, memory_total=total, memory_free=free, **common))
    return sorted(gpus, key=lambda g: (g.pci_bus_id, g.uuid))


def parse_fake(spec: str) -> list[Gpu]:
    """The inventory described by a `MAYURI_FAKE_GPUS` value (a size list or a JSON file)."""
    spec = spec.strip()
    if not spec:
        return []
    if spec.endswith(".json"):
        return _fake_from_json(Path(spec))
    counted = re.fullmatch(r"(\d+)\s*x\s*(.+)", spec)
    try:
        if counted:
            sizes = [(i, parse_size(counted.group(2))) for i in range(int(counted.group(1)))]
        else:
            sizes = []
            for part in spec.split(","):
                index, _, size = part.partition(":")
                sizes.append((int(index), parse_size(size)))
    except ValueError as exc:
        raise GpuError(
            f"{FAKE_ENV}={spec!r} is not a GPU list ({exc}).",
            hint="Write e.g. 4x16GiB, 0:16GiB,1:24GiB, or the path of a .json inventory.",
        ) from None
    return [
        Gpu(index=i, uuid=f"GPU-fake-{i:04d}", name="Fake GPU", memory_total=size, memory_free=size,
            utilization=0, pci_bus_id=f"00000000:{i + 1:02X}:00.0", driver="fake", cuda_id=str(i), fake=True)
        for i, size in sizes
    ]


@contextlib.contextmanager
def _nvml() -> Iterator[Any]:
    """pynvml, initialised for the duration of the block; None without a driver."""
    try:
        import pynvml
    except ImportError:
        yield None
        return
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        yield None
        return
    try:
        yield pynvml
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _query(pynvml: Any, default: T, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, or `default` when NVML cannot answer it."""
    # NotSupported, FunctionNotFound (old drivers), NoPermission... degrade to unknown.
    try:
        return call(*args)
    except pynvml.NVMLError:
        return default


def _mig_slices(pynvml: Any, handle: Any) -> list[Any]:
    mode = _query(pynvml, (0, 0), pynvml.nvmlDeviceGetMigMode, handle)
    if not mode or mode[0] != getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return []
    count = _query(pynvml, 0, pynvml.nvmlDeviceGetMaxMigDeviceCount, handle)
    slices = []
    for number in range(count):
        child = _query(pynvml, None, pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, number)
        if child is not None:
            slices.append(child)
    return slices


def _pids(pynvml: Any, handle: Any) -> tuple[int, ...]:
    procs: list[Any] = _query(pynvml, [], pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
    return tuple(p.pid for p in procs)


def _nvml_inventory() -> list[Gpu]:
    with _nvml() as pynvml:
        if pynvml is None:
            return []
        driver = str(_query(pynvml, "", pynvml.nvmlSystemGetDriverVersion))
        gpus = []
        for index in range(_query(pynvml, 0, pynvml.nvmlDeviceGetCount)):
            handle = _query(pynvml, None, pynvml.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            uuid = str(_query(pynvml, f"GPU-index-{index}", pynvml.nvmlDeviceGetUUID, handle))
            name = str(_query(pynvml, "GPU", pynvml.nvmlDeviceGetName, handle))
            pci_info = _query(pynvml, None, pynvml.nvmlDeviceGetPciInfo, handle)
            pci = "" if pci_info is None else str(pci_info.busId)
            rates = _query(pynvml, None, pynvml.nvmlDeviceGetUtilizationRates, handle)
            util = None if rates is None else int(rates.gpu)
            for child in _mig_slices(pynvml, handle) or [None]:
                device = child if child is not None else handle
                memory = _query(pynvml, None, pynvml.nvmlDeviceGetMemoryInfo, device)
                if memory is None:
                    continue
                gpus.append(Gpu(
                    index=index,
                    uuid=uuid if child is None else str(pynvml.nvmlDeviceGetUUID(child)),
                    name=name, memory_total=int(memory.total), memory_free=int(memory.free),
                    utilization=util, pci_bus_id=pci, driver=driver, processes=_pids(pynvml, device),
                    parent_uuid=None if child is None else uuid,
                ))
        return sorted(gpus, key=lambda g: (g.pci_bus_id, g.uuid))


def inventory() -> list[Gpu]:
    """The schedulable GPUs of this machine (fake ones when `MAYURI_FAKE_GPUS` is set), in PCI bus order."""
    fake = os.environ.get(FAKE_ENV)
    if fake is not None:
        return parse_fake(fake)
    return _nvml_inventory()


def process_gpu_memory() -> dict[int, int]:
    """GPU memory used per process id, summed over devices (empty for fakes or without NVML)."""
    if os.environ.get(FAKE_ENV) is not None:
        return {}
    used: dict[int, int] = {}
    with _nvml() as pynvml:
        if pynvml is None:
            return used
        for index in range(_query(pynvml, 0, pynvml.nvmlDeviceGetCount)):
            handle = _query(pynvml, None, pynvml.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            for device in _mig_slices(pynvml, handle) or [handle]:
                procs: list[Any] = _query(pynvml, [], pynvml.nvmlDeviceGetComputeRunningProcesses, device)
                for proc in procs:
                    if proc.usedGpuMemory is not None:
                        used[proc.pid] = used.get(proc.pid, 0) + int(proc.usedGpuMemory)
    return used
