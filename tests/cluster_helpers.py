"""A real multi-node Ray cluster on one machine, started the way jobs/slurm.sbatch starts one:
``ray start --head`` and ``ray start --address`` as separate process groups, with token
authentication on (``RAY_AUTH_MODE=token`` and the same ``RAY_AUTH_TOKEN`` for every node and
for the driver).

Worker nodes get loopback addresses of their own (127.0.0.2, ...), so each trial's ``node_ip``
in result.json says which node ran it, and killing a node's process group is a node lost.
Never ``ray stop`` here: it stops every Ray process on the machine, other sessions' too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
STARTED = "Ray runtime started."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    ip: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """The node is lost: its raylet, agents and trial workers die at once (SIGKILL)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class LocalCluster:
    """Ray nodes as process groups of this machine; ``stop`` kills them all."""

    token: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = field(default_factory=free_port)
    # Unix socket paths under it must stay short (about 100 characters).
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rc", dir="/tmp")))
    nodes: list[Node] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Every node's and the driver's environment: the same token everywhere."""
        return {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_head(self, cpus: int) -> Node:
        head = ["--head", "--port", str(self.port), "--include-dashboard", "false"]
        return self._start(head, "127.0.0.1", cpus)

    def add_worker(self, ip: str, cpus: int) -> Node:
        return self._start(["--address", self.address], ip, cpus)

    def _start(self, role: list[str], ip: str, cpus: int) -> Node:
        log = self.temp_dir / f"node-{len(self.nodes)}.log"
        command = [
            *(RAY, "start", "--block", *role, "--node-ip-address", ip),
            *("--num-cpus", str(cpus), "--num-gpus", "0", "--temp-dir", str(self.temp_dir)),
            *("--resources", json.dumps({f"node_{len(self.nodes)}": 1})),
        ]
        with log.open("w") as out:
            process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = Node(ip, process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + 120
        while STARTED not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
