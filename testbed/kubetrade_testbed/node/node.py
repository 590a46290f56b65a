"""A real Kubernetes node: containerd + runc + CNI + kubelet + kube-proxy in a sandbox.

Joined to a :class:`~kubetrade_testbed.kube.KubeControlPlane` that listens on the
sandbox's host address.  What kubelet 1.36 needs of this host, and how it is given:

* **cgroup v1 (hybrid)**: ``failCgroupV1: false`` (1.35+ refuse v1 by default); the
  ``cgroupfs`` driver (no systemd here), the same in containerd's runc options; every pod's
  cgroup lives under ``/kubetrade-node-<id>`` (``cgroupRoot``) so two nodes never share one.
* **no swap** on these machines; ``failSwapOn: false`` all the same, so a host with swap runs.
* **the node's identity**: a client certificate ``CN=system:node:<name>, O=system:nodes``
  from the control plane's CA; the API server authorizes it with the Node authorizer and
  the NodeRestriction admission plugin (``--authorization-mode=Node,RBAC``), as a real
  cluster does.  kube-proxy is ``system:kube-proxy`` (bound to ``system:node-proxier`` by
  the default RBAC).  The API server calls the kubelet (logs, exec) with a client
  certificate in ``system:masters``; the kubelet checks it against the CA and asks the API
  server (webhook authentication and authorization).
* **service-account token projection**: the API server's issuer and signing key; the
  kubelet mounts the projected tokens and ``kube-root-ca.crt``.
* **cluster DNS**: ``clusterDNS: [10.96.0.10]``, the kube-dns Service of CoreDNS (a pod).
* **Services**: kube-proxy (iptables mode) routes the Service range 10.96.0.0/16 inside the
  sandbox; the API server reaches webhooks by endpoint (``--enable-aggregator-routing``).
* **images**: nothing can be pulled; images are imported into containerd's ``k8s.io``
  namespace (``ctr images import``), image garbage collection is off (it would delete
  what cannot be pulled back), and the sandbox image is the node's own pause.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade_testbed.kube import KubeControlPlane
from kubetrade_testbed.node import images
from kubetrade_testbed.node.sandbox import CGROUP_ROOT, NodeSandbox

SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "me", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "me"}}],
        "current-context": "testbed",
    }, indent=2))
    return path


class KubeNode:
    """One node: start() brings it to Ready; stop() ends the sandbox and everything in it."""

    def __init__(self, plane: KubeControlPlane, sandbox: NodeSandbox, bin_dir: Path, name: str = "node-0",
                 max_pods: int = 250) -> None:
        self.plane = plane
        self.sandbox = sandbox
        self.bin_dir = bin_dir
        self.name = name
        self.max_pods = max_pods
        self.root = sandbox.workdir / "node"
        self.socket = self.root / "containerd.sock"
        self.processes: list[ManagedProcess] = []

    # --- configuration --------------------------------------------------------------

    def _certs(self) -> None:
        ca = self.plane.ca
        pki = self.root / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self.ca_cert = ca.cert_path
        self.kubelet_client = ca.issue(f"kubelet-{self.name}", f"system:node:{self.name}", org="system:nodes")
        self.kubelet_serving = ca.issue(f"kubelet-{self.name}-serving", f"system:node:{self.name}", server=True,
                                        hosts=(self.sandbox.node_ip, self.name))
        self.proxy_client = ca.issue(f"kube-proxy-{self.name}", "system:kube-proxy")
        self.kubelet_kubeconfig = _kubeconfig(pki / "kubelet.kubeconfig", self.plane.server, self.ca_cert,
                                              *self.kubelet_client)
        self.proxy_kubeconfig = _kubeconfig(pki / "kube-proxy.kubeconfig", self.plane.server, self.ca_cert,
                                            *self.proxy_client)

    def _containerd_config(self) -> Path:
        r = self.root
        cni = r / "cni" / "net.d"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-kubetrade.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0",
            "name": "kubetrade",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.sandbox.pod_cidr, "gateway": self.sandbox.pod_gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(r / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }, indent=2))
        config = f"""
version = 4
root = "{r / 'containerd' / 'root'}"
state = "{r / 'containerd' / 'state'}"
imports = []

[plugins.'io.containerd.server.v1.grpc']
  address = "{self.socket}"

[plugins.'io.containerd.server.v1.ttrpc']
  address = "{self.socket}.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "{r / 'containerd' / 'opt'}"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{images.PAUSE}"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # these machines withhold CAP_SYS_RESOURCE even from root: no oom_score_adj below containerd's
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{self.bin_dir / 'runc'}"
        Root = "{r / 'runc'}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{self.bin_dir}"]
    conf_dir = "{cni}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
        path = r / "containerd.toml"
        path.write_text(config)
        return path

    def _kubelet_config(self) -> Path:
        r = self.root
        (r / "resolv.conf").write_text("# no upstream resolver: the test network reaches nothing outside\n")
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.sandbox.cgroup_name}",
            "failSwapOn": False,
            "address": self.sandbox.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(self.kubelet_serving[0]),
            "tlsPrivateKeyFile": str(self.kubelet_serving[1]),
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [CLUSTER_DNS],
            "resolvConf": str(r / "resolv.conf"),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "podLogsDir": str(r / "pod-logs"),
            "maxPods": self.max_pods,
            "serializeImagePulls": False,
            # images cannot be pulled back here: never collect them
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # the host's disk is shared with everything else: evict on real shortage only
            "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                             "nodefs.inodesFree": "2%"},
            "kubeAPIQPS": 50,
            "kubeAPIBurst": 100,
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "0s",
            "staticPodPath": "",
            "protectKernelDefaults": False,
            "localStorageCapacityIsolation": True,
        }
        path = r / "kubelet.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    # --- life -----------------------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str | Path]) -> ManagedProcess:
        env = {**os.environ, "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
        proc = self.sandbox.spawn(name, [str(a) for a in argv], env=env)
        self.processes.append(proc)
        return proc

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.sandbox.run(str(self.bin_dir / "ctr"), f"--address={self.socket}", "--namespace=k8s.io", *args,
                                timeout=timeout)

    def crictl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sandbox.run(str(self.bin_dir / "crictl"), f"--runtime-endpoint=unix://{self.socket}",
                                f"--image-endpoint=unix://{self.socket}", *args, check=check)

    def start(self, archives: Sequence[Path] = (), timeout: float = 180.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._certs()
        self._seed_cpuset()
        containerd = self._spawn("containerd", [self.bin_dir / "containerd", f"--config={self._containerd_config()}",
                                                "--log-level=warn"])
        containerd.wait_ready(lambda: self.ctr("version", timeout=10).returncode == 0, timeout)
        self.import_images([*images.node_images(self.bin_dir), *archives])
        kubelet = self._spawn("kubelet", [
            self.bin_dir / "kubelet",
            f"--config={self._kubelet_config()}",
            f"--kubeconfig={self.kubelet_kubeconfig}",
            f"--root-dir={self.root / 'kubelet'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.sandbox.node_ip}",
            "--v=1",
        ])
        self._spawn("kube-proxy", [
            self.bin_dir / "kube-proxy",
            f"--kubeconfig={self.proxy_kubeconfig}",
            f"--hostname-override={self.name}",
            f"--cluster-cidr={self.sandbox.pod_cidr}",
            "--proxy-mode=iptables",
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--metrics-bind-address=127.0.0.1:10249",
            "--healthz-bind-address=127.0.0.1:10256",
            "--v=1",
        ])
        kubelet.wait_ready(self._ready, timeout, interval=1.0)

    def _seed_cpuset(self) -> None:
        """cgroup v1 cpusets start empty: give the node's root the host's CPUs and memory nodes."""
        top = CGROUP_ROOT / "cpuset" / self.sandbox.cgroup_name
        if top.is_dir():
            for key in ("cpuset.cpus", "cpuset.mems"):
                (top / key).write_text((CGROUP_ROOT / "cpuset" / key).read_text())

    def import_images(self, archives: Sequence[Path]) -> None:
        for archive in archives:
            self.ctr("images", "import", "--platform=linux/amd64", str(archive))

    def _ready(self) -> bool:
        proc = self.plane.kubectl("get", "node", self.name, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=10)
        self.processes.clear()

    def logs(self) -> dict[str, str]:
        """The tail of each node process's log (for a failure message)."""
        return {p.name: p.log_tail(40) for p in self.processes}


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

