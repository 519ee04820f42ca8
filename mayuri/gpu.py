"""GPU inventory: NVML through `pynvml` (from nvidia-ml-py), or a fake for tests and demos.

The only module that touches pynvml. It initialises lazily and degrades to an
empty inventory when there is no driver or GPU, so everything works on
machines without one. `MAYURI_FAKE_GPUS=4x16GiB` (or `0:16GiB,1:24GiB`)
replaces NVML with that inventory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from mayuri.errors import GpuError
from mayuri.units import parse_size

FAKE_ENV = "MAYURI_FAKE_GPUS"


@dataclass(frozen=True)
class Gpu:
    """One GPU as the scheduler sees it."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_free: int
    utilization: int | None = None
    pci_bus_id: str = ""
    driver: str = ""
    processes: tuple[int, ...] = field(default=())


def parse_fake(spec: str) -> list[Gpu]:
    """The inventory described by a `MAYURI_FAKE_GPUS` value."""
    spec = spec.strip()
    if not spec:
        return []
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
            hint="Write e.g. 4x16GiB or 0:16GiB,1:24GiB.",
        ) from None
    return [
        Gpu(index=i, uuid=f"GPU-fake-{i:04d}", name="Fake GPU", memory_total=size, memory_free=size,
            utilization=0, pci_bus_id=f"00000000:{i + 1:02X}:00.0", driver="fake")
        for i, size in sizes
    ]


def _nvml_inventory() -> list[Gpu]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilization: int | None = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except pynvml.NVMLError:
                utilization = None
            try:
                procs = tuple(p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
            except pynvml.NVMLError:
                procs = ()
            gpus.append(Gpu(
                index=index,
                uuid=str(pynvml.nvmlDeviceGetUUID(handle)),
                name=str(pynvml.nvmlDeviceGetName(handle)),
                memory_total=int(memory.total),
                memory_free=int(memory.free),
                utilization=utilization,
                pci_bus_id=str(pynvml.nvmlDeviceGetPciInfo(handle).busId),
                driver=str(driver),
                processes=procs,
            ))
        return sorted(gpus, key=lambda g: g.pci_bus_id)
    except pynvml.NVMLError:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def inventory() -> list[Gpu]:
    """The GPUs of this machine (fake ones when `MAYURI_FAKE_GPUS` is set), in PCI bus order."""
    fake = os.environ.get(FAKE_ENV)
    if fake is not None:
        return parse_fake(fake)
    return _nvml_inventory()
