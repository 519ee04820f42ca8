"""The head's connection to a Ray cluster, and what is refused before anything runs.

`[executor.ray]` in mayuri.toml: `address` (RAY_ADDRESS wins when set;
default "auto": the cluster started on this machine), `files` ("copy" or
"shared") and `exclude` (project globs never shipped). Ray is imported here
only, and only once some job must run on it: a run the cache answers never
gets this far.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from mayuri.errors import ConfigError
from mayuri.units import format_size

EXTRA_HINT = "Install it with `pip install 'mayuri[ray]'` (Ray is pinned to the tested version)."
FILE_MODES = ("copy", "shared")
LABEL_SHARE = 0.001


def options_of(options: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """(address, files mode, exclude globs) from `[executor.ray]`, checked."""
    address = os.environ.get("RAY_ADDRESS") or str(options.get("address") or "auto")
    files = str(options.get("files") or "copy")
    if files not in FILE_MODES:
        raise ConfigError(f"[executor.ray] files must be \"copy\" or \"shared\", not {files!r}.",
                          hint='"copy" ships the project to the nodes; "shared" is for a filesystem every node sees.')
    exclude = options.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(item, str) for item in exclude):
        raise ConfigError("[executor.ray] exclude must be a list of globs, like [\"data/raw/**\"].")
    return address, files, list(exclude)


def import_ray() -> Any:
    """The `ray` module, or exit 2 naming the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs the `ray` package, which is not installed here.",
                          hint=EXTRA_HINT) from None
    return ray


def _reachable(address: str) -> str | None:
    """Why a HOST:PORT address cannot be reached (None: it answers, or it is not HOST:PORT)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def connect(options: Mapping[str, Any]) -> Any:
    """Connect this process to the cluster (once); the `ray` module. Exit 2 when it cannot."""
    address, _, _ = options_of(options)
    ray = import_ray()
    if ray.is_initialized():
        return ray
    hint = ("Start the cluster (`ray start --head` on this machine, `ray start --address HOST:PORT` on the "
            "others), or set [executor.ray] address (RAY_ADDRESS wins) to its address.")
    problem = _reachable(address)
    if problem is not None:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {problem}.", hint=hint)
    try:
        # No runtime environment: copy mode ships the project itself (`project_copy`).
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, namespace="mayuri")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {first}", hint=hint) from None
    return ray


def request_of(resources: Mapping[str, Any]) -> dict[str, Any]:
    """A job's `resources:` as Ray task options."""
    request: dict[str, Any] = {"num_cpus": float(resources.get("cpus", 1) or 0),
                               "num_gpus": float(resources.get("gpus", 0) or 0)}
    if resources.get("memory"):
        request["memory"] = int(resources["memory"])
    if resources.get("labels"):
        # A node's label is a custom resource it was started with (`ray start --resources '{"a100": 1}'`); a
        # sliver of it is asked, so that the label chooses the node without limiting how many jobs it holds.
        request["resources"] = {label: LABEL_SHARE for label in resources["labels"]}
    return request


def _fits(request: Mapping[str, Any], node: Mapping[str, float]) -> bool:
    return (request["num_cpus"] <= node.get("CPU", 0) and request["num_gpus"] <= node.get("GPU", 0)
            and request.get("memory", 0) <= node.get("memory", 0)
            and all(node.get(label, 0) >= share for label, share in request.get("resources", {}).items()))


def _describe(node: Mapping[str, float]) -> str:
    return (f"{node.get('GPU', 0):g} GPU(s), {node.get('CPU', 0):g} CPU(s), "
            f"{format_size(node.get('memory', 0))} memory")


def check_feasible(ray: Any, jobs: Sequence[tuple[str, Mapping[str, Any]]], address: str) -> None:
    """Refuse (exit 2) a job that no node of the cluster could ever hold, naming the largest node."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for name, resources in jobs:
        request = request_of(resources)
        if any(_fits(request, node) for node in nodes):
            continue
        largest: Mapping[str, float] = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0), n.get("memory", 0)), default={})
        wanted = ", ".join([*(f"{k} {v:g}" for k, v in resources.items() if isinstance(v, int | float)),
                            *(f"label {label}" for label in resources.get("labels", []))])
        raise ConfigError(
            f"job '{name}' asks for more than any node of the Ray cluster at {address} has "
            f"({wanted}); the largest node has {_describe(largest)}.",
            hint="Lower its `resources:`, or add a node that can hold it to the cluster.",
        )
