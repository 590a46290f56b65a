"""A whole real cluster for tests: control plane + one real node + cluster DNS.

:class:`RealCluster` starts the node's sandbox (its network comes first: the API server
listens on the sandbox's host address), then etcd, kube-apiserver (Node and RBAC
authorization, NodeRestriction), controller manager and scheduler, then containerd,
kubelet and kube-proxy inside the sandbox, imports the images, deploys CoreDNS and waits
for the node and DNS to be Ready.  ``cleanup()`` stops it all and removes its folder; if
the test process dies instead, the watchdog does (see :mod:`kubetrade_testbed.node.sandbox`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubetrade.localstack.servers.processes import Service, StartupError
from kubetrade_testbed.kube import REPO_ROOT, KubeControlPlane, controlplane_bin_dir
from kubetrade_testbed.node import dns
from kubetrade_testbed.node.node import KubeNode
from kubetrade_testbed.node.sandbox import NodeSandbox

BUILD_SCRIPT = REPO_ROOT / "scripts" / "testbed" / "build-node.sh"


def node_bin_dir() -> Path:
    """The folder with the node's binaries: $KUBETRADE_NODE_BIN, or the build script's cache (built if need be)."""
    explicit = os.environ.get("KUBETRADE_NODE_BIN")
    if explicit:
        return Path(explicit)
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


class RealCluster(Service):
    def __init__(self, workdir: Path | None = None, archives: Sequence[Path] = (), max_pods: int = 250) -> None:
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kubetrade-node-"))
        self.archives = list(archives)
        self.max_pods = max_pods
        self.sandbox = NodeSandbox(self.workdir)
        self.plane: KubeControlPlane | None = None
        self.node: KubeNode | None = None
        self.timings: dict[str, float] = {}

    def start(self, timeout: float = 240.0) -> None:
        try:
            self._start(timeout)
        except BaseException as exc:
            try:
                report = self.diagnostics()
            except Exception as again:
                report = f"(no diagnostics: {again})"
            self.cleanup()
            raise StartupError(f"the real cluster did not start: {exc}\n{report}") from exc

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        bin_dir = node_bin_dir()
        self.sandbox.start()
        self.plane = KubeControlPlane(
            self.workdir / "kube",
            bin_dir=controlplane_bin_dir(),
            nodes=0,
            bind_address=self.sandbox.host_ip,
            authorization="Node,RBAC",
            apiserver_args=["--enable-admission-plugins=NodeRestriction", "--enable-aggregator-routing=true",
                            "--kubelet-preferred-address-types=InternalIP"],
        )
        self.plane.start(timeout)
        self.timings["control_plane_s"] = time.monotonic() - t0
        self.node = KubeNode(self.plane, self.sandbox, bin_dir, max_pods=self.max_pods)
        self.node.start(self.archives, timeout)
        self.timings["node_ready_s"] = time.monotonic() - t0
        self.plane.kubectl("apply", "-f", "-", input=dns.manifest_json())
        self.plane.kubectl("rollout", "status", "-n", "kube-system", "deployment/coredns", f"--timeout={int(timeout)}s",
                           timeout=timeout + 10)
        self.timings["dns_ready_s"] = time.monotonic() - t0

    @property
    def kubeconfig(self) -> Path:
        assert self.plane is not None
        return self.plane.kubeconfig

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert self.plane is not None
        return self.plane.kubectl(*args, input=input, check=check, timeout=timeout)

    def get_json(self, *args: str) -> Any:
        assert self.plane is not None
        return self.plane.get_json(*args)

    def diagnostics(self) -> str:
        """Node process logs and pod states, for a failure message."""
        parts = []
        if self.node is not None:
            parts += [f"--- {name}\n{tail}" for name, tail in self.node.logs().items()]
        if self.plane is not None and self.plane.processes:
            parts.append(self.kubectl("get", "nodes,pods", "-A", "-o", "wide", check=False).stdout)
            pods = self.kubectl("get", "pods", "-A", "-o", "json", check=False)
            if pods.returncode == 0:
                for pod in json.loads(pods.stdout)["items"]:
                    ready = any(c["type"] == "Ready" and c["status"] == "True"
                                for c in pod.get("status", {}).get("conditions", []))
                    if not ready:
                        meta = pod["metadata"]
                        parts.append(self.kubectl("describe", "pod", "-n", meta["namespace"], meta["name"],
                                                  check=False).stdout[-3000:])
        return "\n".join(parts)

    def cleanup(self) -> None:
        if self.node is not None:
            self.node.stop()
        self.sandbox.stop()
        if self.plane is not None:
            self.plane.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
