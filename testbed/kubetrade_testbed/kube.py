"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, and optionally
kube-controller-manager, kube-scheduler and kwok (simulated nodes).

The binaries are built from the Go module proxy at pinned versions by
``scripts/testbed/build-controlplane.sh`` and cached; :func:`controlplane_bin_dir` finds
(or builds) them.  With all five running, a Deployment really becomes a ReplicaSet,
Pods, a scheduling decision, Running/Ready pods on a kwok node and ``availableReplicas``.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubetrade.localstack.servers.processes import ManagedProcess, Service, free_port, port_open
from kubetrade_testbed.pki import CertificateAuthority, service_account_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "testbed" / "build-controlplane.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


def controlplane_bin_dir(build: bool = True) -> Path:
    """The folder with the control-plane binaries: $KUBETRADE_K8S_BIN, or the build script's cache."""
    explicit = os.environ.get("KUBETRADE_K8S_BIN")
    if explicit:
        return Path(explicit)
    if not BUILD_SCRIPT.exists():
        raise FileNotFoundError(f"{BUILD_SCRIPT} missing; set KUBETRADE_K8S_BIN to a folder with {BINARIES}")
    if not build:
        raise FileNotFoundError("control-plane binaries not built; run scripts/testbed/build-controlplane.sh")
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def kubectl_binary(bin_dir: Path | None = None) -> str:
    """kubectl: $KUBETRADE_KUBECTL, the one built with the control plane, or PATH's."""
    built = bin_dir / "kubectl" if bin_dir else None
    found = os.environ.get("KUBETRADE_KUBECTL") or (str(built) if built and built.exists() else shutil.which("kubectl"))
    if not found:
        raise FileNotFoundError("kubectl not found on PATH (set KUBETRADE_KUBECTL)")
    return found


FAKE_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
    },
    "status": {
        "allocatable": {"cpu": "256", "memory": "1Ti", "pods": "1000"},
        "capacity": {"cpu": "256", "memory": "1Ti", "pods": "1000"},
    },
}


class KubeControlPlane(Service):
    """etcd + kube-apiserver (+ controller manager, scheduler, kwok nodes) on 127.0.0.1."""

    def __init__(
        self,
        workdir: Path | None = None,
        bin_dir: Path | None = None,
        full: bool = True,
        nodes: int = 2,
        apiserver_args: Sequence[str] = (),
        bind_address: str = "127.0.0.1",
        authorization: str = "RBAC",
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kubetrade-kube-"))
        self.bin_dir = bin_dir or controlplane_bin_dir()
        self.full = full
        self.nodes = nodes
        self.apiserver_args = list(apiserver_args)
        self.bind_address = bind_address
        self.authorization = authorization
        """--authorization-mode (a real node needs "Node,RBAC")."""
        """Where the API server listens (a real node's sandbox reaches it at its veth's host end)."""
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.port = free_port()
        self.processes: list[ManagedProcess] = []
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.pki = self.workdir / "pki"

    # --- set-up -----------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://{self.bind_address}:{self.port}"

    def _make_pki(self) -> None:
        ca = self.ca = CertificateAuthority(self.pki)
        self.ca_cert = ca.cert_path
        in_cluster = ("10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                      "kubernetes.default.svc.cluster.local")  # what pods on a real node dial
        hosts = ("127.0.0.1", "localhost", *({self.bind_address} - {"127.0.0.1"}), *in_cluster)
        self.serving = ca.issue("apiserver", "kube-apiserver", server=True, hosts=hosts)
        self.admin = ca.issue("admin", "kubetrade-admin", org="system:masters")
        # the API server's client certificate towards kubelets (logs, exec, port-forward)
        self.kubelet_client = ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                       org="system:masters")
        self.sa_key, self.sa_pub = service_account_keys(self.pki)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "testbed", "cluster": {"server": self.server, "certificate-authority": str(self.ca_cert)}}
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(self.admin[0]), "client-key": str(self.admin[1])},
                }
            ],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
            "current-context": "testbed",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    def _spawn(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        proc = ManagedProcess(name, [str(self.bin_dir / name), *argv], self.workdir / "logs" / f"{name}.log")
        proc.start()
        self.processes.append(proc)
        return proc

    def start(self, timeout: float = 120.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self._make_pki()
        self._write_kubeconfig()
        etcd = self._spawn(
            "etcd",
            [
                "--name=testbed",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=testbed=http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        etcd.wait_ready(lambda: port_open(self.etcd_port), timeout)
        apiserver = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--bind-address={self.bind_address}",
                f"--advertise-address={self.bind_address}",
                f"--kubelet-client-certificate={self.kubelet_client[0]}",
                f"--kubelet-client-key={self.kubelet_client[1]}",
                f"--secure-port={self.port}",
                f"--cert-dir={self.pki}",
                f"--tls-cert-file={self.serving[0]}",
                f"--tls-private-key-file={self.serving[1]}",
                f"--client-ca-file={self.ca_cert}",
                f"--authorization-mode={self.authorization}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.sa_pub}",
                f"--service-account-signing-key-file={self.sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                f"--requestheader-client-ca-file={self.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--v=1",
                *self.apiserver_args,
            ],
        )
        apiserver.wait_ready(self._healthy, timeout, interval=0.25)
        if not self.full:
            return
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={self.sa_key}",
                f"--root-ca-file={self.ca_cert}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-route,-service",
                "--concurrent-deployment-syncs=20",
                "--concurrent-replicaset-syncs=20",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
            ],
        )
        if self.nodes:
            self._start_kwok()
        self.wait_for(self._default_service_account, timeout, "the default ServiceAccount")

    def _start_kwok(self) -> None:
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={Path(__file__).with_name('kwok-stages.yaml')}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.244.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        for i in range(self.nodes):
            node = json.loads(json.dumps(FAKE_NODE))
            node["metadata"]["name"] = f"kwok-node-{i}"
            node["metadata"]["labels"]["kubernetes.io/hostname"] = f"kwok-node-{i}"
            self.kubectl("apply", "-f", "-", input=json.dumps(node))

    def _healthy(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.load_cert_chain(str(self.admin[0]), str(self.admin[1]))
        with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)

    def _default_service_account(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    # --- use --------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; raises with stderr when ``check`` and it fails."""
        proc = subprocess.run(
            [kubectl_binary(self.bin_dir), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    @staticmethod
    def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition", interval: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=15)
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
