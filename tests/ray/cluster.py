"""A real Ray cluster on this machine for the tests and the benchmark: a head and a worker node.

Each node is a `ray start --block` process of its own (the head with no
GPU and one CPU, the worker with fake GPUs, `--num-gpus`); stopping one
(SIGTERM to that process, by its pid) stops its Ray processes, which is also
how a test makes a node die. Ray's files go to a short temporary folder
(its socket paths must stay short).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Ray's command line, through this interpreter (a virtualenv that reuses another's packages has no `ray` script).
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: its address, its folder and its node processes by name."""

    address: str
    folder: Path
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def add_worker(self, name: str, *, cpus: int = 2, gpus: int = 2, timeout: float = 120) -> None:
        """Start a worker node and wait until the cluster counts it."""
        before = self.alive_nodes()
        # Its jobs see the fake GPUs by UUID (GPU-fake-0000, ...), as a real node's through NVML.
        self.nodes[name] = _start(self.folder / f"{name}.log", [
            "--address", self.address, "--node-ip-address", "127.0.0.1", f"--num-cpus={cpus}",
            f"--num-gpus={gpus}", '--resources={"worker": 1}'], {"MAYURI_FAKE_GPUS": f"{gpus}x16GiB"})
        self._wait_for(before + 1, timeout)

    def alive_nodes(self) -> int:
        done = subprocess.run([sys.executable, "-c", _COUNT, self.address], capture_output=True, text=True,
                              timeout=120, check=False)
        return int(done.stdout.strip() or 0)

    def _wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_nodes() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster did not reach {count} nodes; see {self.folder}")
            time.sleep(1)

    def stop_node(self, name: str, timeout: float = 60) -> None:
        """Stop one node (its `ray start --block` process stops its Ray processes)."""
        process = self.nodes.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for name in [n for n in self.nodes if n != "head"] + (["head"] if "head" in self.nodes else []):
            self.stop_node(name)
        shutil.rmtree(self.folder, ignore_errors=True)


_COUNT = """
import sys, logging, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
"""


def _start(log: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # The nodes' own temporary files (the run folders of `files: copy`) stay in the cluster's folder.
    scratch = log.parent / "tmp"
    scratch.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        # A session of its own: a stuck node can be killed as a whole group.
        return subprocess.Popen([*RAY, "start", "--block", "--disable-usage-stats", *args], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TMPDIR": str(scratch),
                                     # A ~/.ray/auth_token (left by any local `ray.init()`) would turn token
                                     # authentication on for the nodes but not for the drivers, which then
                                     # cannot connect: this cluster, reached on 127.0.0.1 only, has none.
                                     "RAY_AUTH_MODE": "disabled", **(env or {})})


def start_cluster(worker_gpus: int = 2, worker_cpus: int = 2) -> Cluster:
    """A head (1 CPU, no GPU) and a worker node ("worker": `worker_gpus` fake GPUs)."""
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = _free_port()
    cluster = Cluster(f"127.0.0.1:{port}", folder)
    try:
        cluster.nodes["head"] = _start(folder / "head.log", [
            "--head", "--node-ip-address", "127.0.0.1", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
            "--include-dashboard=false", f"--temp-dir={folder}"])
        cluster._wait_for(1, 120)
        cluster.add_worker("worker", cpus=worker_cpus, gpus=worker_gpus)
    except BaseException:
        cluster.stop()
        raise
    return cluster
