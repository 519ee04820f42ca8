"""What a job needs from the GPUs and where it fits: requests, estimates from history, best fit.

Pure decisions over an inventory and the leases already held; taking the
leases (atomically, in the store) is `mayuri.scheduler.leases`'s job. Never
touches NVML or the store itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mayuri.errors import GpuError
from mayuri.experiment.expand import JobInstance
from mayuri.gpu import Gpu
from mayuri.store.lease_records import Claim, Lease
from mayuri.store.scheduler_queries import PeakHistory
from mayuri.units import format_size

# Headroom over the largest peak seen: allocators fragment and inputs vary a little.
MARGIN_FACTOR = 1.2
MARGIN_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class Request:
    """GPUs a job asks for: how many, how much memory on each (None: the whole GPU)."""

    gpus: int = 0
    memory: int | None = None
    fraction: float | None = None
    source: str = ""

    @property
    def exclusive(self) -> bool:
        return self.gpus > 0 and self.memory is None and self.fraction is None

    def describe(self) -> str:
        if self.gpus == 0:
            return "no GPU"
        count = f"{self.gpus} GPU{'s' if self.gpus > 1 else ''}"
        if self.fraction is not None:
            return f"{self.fraction:g} of a GPU"
        if self.memory is None:
            return f"{count} to itself ({self.source})"
        return f"{count}, {format_size(self.memory)} each ({self.source})"


def request_for(instance: JobInstance, history: Callable[[], PeakHistory | None]) -> Request:
    """The GPU request of an instance: declared, estimated from its earlier runs, or exclusive."""
    resources = instance.job.resources
    gpus = resources.gpus
    if gpus <= 0:
        return Request()
    if gpus < 1:
        return Request(gpus=1, fraction=float(gpus), source="declared fraction")
    count = math.ceil(gpus)
    if resources.gpu_memory:
        return Request(gpus=count, memory=resources.gpu_memory, source="declared")
    past = history()
    if past is not None and past.gpu_memory:
        estimate = int(past.gpu_memory * MARGIN_FACTOR) + MARGIN_BYTES
        which = "same config" if past.same_config else "latest runs"
        return Request(gpus=count, memory=estimate,
                       source=f"peak {format_size(past.gpu_memory)} of run {past.run_id[:8]} ({which}) + margin")
    return Request(gpus=count, source="no gpu_memory and no history")


def usable(devices: Sequence[Gpu], selection: str | list[int] | list[str]) -> list[Gpu]:
    """The devices `[scheduler] gpus` lets Mayuri use ("all", "0,2", [0, 2] or UUIDs)."""
    if selection == "all" or selection == "":
        return list(devices)
    wanted = {s.strip() for s in selection.split(",")} if isinstance(selection, str) else {str(s) for s in selection}
    return [d for d in devices if str(d.index) in wanted or d.uuid in wanted or (d.parent_uuid or "") in wanted]


def check_feasible(request: Request, devices: Sequence[Gpu], job: str) -> None:
    """Refuse a request no amount of waiting could satisfy on these devices."""
    if request.gpus == 0:
        return
    if not devices:
        raise GpuError(
            f"job '{job}' asks for {request.gpus} GPU(s), but this machine has no usable GPU "
            "(no NVIDIA driver found, or [scheduler] gpus selects none).",
            hint="Run it on a GPU machine, set `resources: {gpus: 0}` to run on the CPU, or set "
            "MAYURI_FAKE_GPUS=1x16GiB to try the plan with fake GPUs.",
        )
    whole = [d for d in devices if not d.is_mig] if request.gpus > 1 else list(devices)
    if len(whole) < request.gpus:
        raise GpuError(
            f"job '{job}' asks for {request.gpus} GPUs, but only {len(whole)} can be used together here "
            "(a process can use at most one MIG slice).",
            hint="Lower `resources.gpus`, or select more GPUs in [scheduler] gpus.",
        )
    if request.memory is not None and request.source == "declared":
        biggest = max(d.memory_total for d in whole)
        if request.memory > biggest:
            raise GpuError(
                f"job '{job}' asks for {format_size(request.memory)} of GPU memory, more than the largest "
                f"GPU here has ({format_size(biggest)}).",
                hint="Lower `resources.gpu_memory` or spread the job over more GPUs.",
            )


def choose(
    request: Request, devices: Sequence[Gpu], held: Iterable[Lease], exclude: frozenset[str] = frozenset()
) -> list[Claim] | None:
    """Best fit: the GPUs whose free memory (minus what is reserved) exceeds the need by the least."""
    reserved: dict[str, int] = {}
    exclusive: set[str] = set()
    for lease in held:
        reserved[lease.gpu_uuid] = reserved.get(lease.gpu_uuid, 0) + lease.memory
        if lease.exclusive:
            exclusive.add(lease.gpu_uuid)
    candidates: list[tuple[int, Gpu, int]] = []
    for device in devices:
        if device.uuid in exclude or device.uuid in exclusive or (request.gpus > 1 and device.is_mig):
            continue
        taken = reserved.get(device.uuid, 0)
        # Memory used outside Mayuri shows in NVML's free figure; Mayuri's own
        # reservations may not be allocated yet, so take the stricter of the two.
        available = min(device.memory_total - taken, device.memory_free)
        if request.exclusive:
            need = device.memory_total
            if taken:
                continue
        elif request.fraction is not None:
            need = int(device.memory_total * request.fraction)
        else:
            need = request.memory or 0
        if need <= available:
            candidates.append((available - need, device, need))
    if len(candidates) < request.gpus:
        return None
    candidates.sort(key=lambda c: (c[0], c[1].pci_bus_id))
    return [Claim(d.uuid, need, request.exclusive) for _, d, need in candidates[: request.gpus]]
