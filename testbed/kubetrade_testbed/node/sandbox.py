"""The node's own network, mount and PID namespaces, joined to the host by a veth pair.

kubelet, containerd, kube-proxy, the CNI plugins and every container run inside one
sandbox made by ``unshare``:

* a **network namespace**: kube-proxy's iptables rules, the CNI bridge, the pods'
  addresses and the portmap rules live there, never on the host, and two test runs on one
  machine cannot collide.  A veth pair joins it to the host: the host end has
  ``10.250.N.1``, the node end ``10.250.N.2`` (the node's InternalIP), and the host routes
  the run's pod range ``10.244.N.0/24`` through it, so the kube-apiserver on the host
  reaches the kubelet and the pods (webhooks) and the pods reach the API server;
* a **mount namespace** (private propagation) with fresh tmpfs over the few host paths
  the node's parts write to whatever they are told (``/run/containerd``, ``/run/netns``,
  ``/var/lib/cni``, ``/var/log/pods``, ``/var/log/containers``): every mount that kubelet
  and containerd make (overlay root filesystems, secret volumes, pod network namespaces)
  is visible to both of them and to nothing on the host;
* a **PID namespace** whose init is a tiny reaper: when it ends, the kernel kills every
  process in the namespace (containerd's shims and the containers, which outlive
  containerd by design), and with the last of them the network namespace (its veth,
  routes, rules) and the mount namespace (its mounts) are gone.  So a stop, or the
  watchdog after the test process died, leaves nothing behind but empty cgroups (removed
  by :func:`remove_cgroups`, here or at the next start).

Addresses: N is picked per run (0-254) under a file lock, skipping any in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

from kubetrade.localstack.servers.processes import ManagedProcess

PRIVATE_DIRS = ("/run/containerd", "/run/netns", "/var/lib/cni", "/var/log/pods", "/var/log/containers")
"""Host paths that get a tmpfs of their own inside the sandbox."""

CGROUP_ROOT = Path("/sys/fs/cgroup")
LOCK = Path("/tmp/kubetrade-node-network.lock")

INIT = r"""
import os, signal, subprocess, sys, time
for d in sys.argv[1:]:
    os.makedirs(d, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1"),
                   ("net/bridge/bridge-nf-call-ip6tables", "1")):
    try:
        with open("/proc/sys/" + key, "w") as f:
            f.write(value)
    except OSError as exc:
        print(f"sysctl {key}: {exc}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.signal(signal.SIGINT, lambda *_: os._exit(0))
print("sandbox ready", flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
"""
"""PID 1 of the sandbox: private mounts, loopback up, forwarding on; then it reaps orphans
(containerd's shims are re-parented to it) until told to stop - and its end ends them all."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _in_use(index: int) -> bool:
    addrs = _ip("-o", "-4", "addr").stdout
    routes = _ip("-4", "route").stdout
    return f"10.250.{index}." in addrs or f"10.244.{index}." in routes or f"10.250.{index}." in routes


def remove_cgroups(name: str) -> None:
    """Remove the cgroup tree ``/<name>`` from every cgroup hierarchy (leaves first)."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        dirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in dirs:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # tasks still exiting
                    time.sleep(0.1)


def remove_stale_cgroups(prefix: str = "kubetrade-node-") -> None:
    """Cgroup trees of earlier runs whose processes are all gone (their sandbox died)."""
    names: set[str] = set()
    for hierarchy in CGROUP_ROOT.iterdir():
        with contextlib.suppress(OSError):
            names.update(p.name for p in hierarchy.iterdir() if p.name.startswith(prefix) and p.is_dir())
    for name in names:
        busy = False
        for hierarchy in CGROUP_ROOT.iterdir():
            top = hierarchy / name
            if top.is_dir():
                for d, _, files in os.walk(top):
                    if "cgroup.procs" in files and Path(d, "cgroup.procs").read_text().strip():
                        busy = True
                        break
            if busy:
                break
        if not busy:
            remove_cgroups(name)


class NodeSandbox:
    """Network, mount and PID namespaces for one node, and the veth pair into them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.id = uuid.uuid4().hex[:8]
        self.cgroup_name = f"kubetrade-node-{self.id}"
        self.host_veth = f"kt{self.id}"
        self.index = -1
        self.init: ManagedProcess | None = None
        self.pid = 0
        """PID (in the host's namespace) of the sandbox's init."""

    # --- addresses ------------------------------------------------------------------

    @property
    def host_ip(self) -> str:
        return f"10.250.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.250.{self.index}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr)[1])

    # --- life -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        remove_stale_cgroups()
        self.init = ManagedProcess(
            "sandbox",
            ["unshare", "--fork", "--pid", "--mount-proc", "--net", "--mount", "--propagation", "private",
             "--kill-child", "python3", "-I", "-S", "-c", INIT, *PRIVATE_DIRS],
            self.workdir / "logs" / "sandbox.log",
            scratch=self.workdir,
        )
        self.init.start()
        self.init.wait_ready(lambda: "sandbox ready" in self.init.log_path.read_text() if self.init else False,
                             timeout)
        assert self.init.proc is not None
        children = Path(f"/proc/{self.init.proc.pid}/task/{self.init.proc.pid}/children").read_text().split()
        self.pid = int(children[0])
        for hierarchy in CGROUP_ROOT.iterdir():
            if hierarchy.is_dir() and not hierarchy.is_symlink() and (hierarchy / "cgroup.procs").exists():
                (hierarchy / self.cgroup_name).mkdir(exist_ok=True)
        LOCK.touch(exist_ok=True)
        with LOCK.open() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.index = next(i for i in range(255) if not _in_use(i))
            _ip("link", "add", self.host_veth, "type", "veth", "peer", "name", "eth0", "netns", str(self.pid))
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_veth)
            _ip("link", "set", self.host_veth, "up")
            self.run("ip", "addr", "add", f"{self.node_ip}/30", "dev", "eth0")
            self.run("ip", "link", "set", "eth0", "up")
            # no default route: the node reaches the host's end of the veth (its /30) and nothing
            # else; a packet to an address no Service or pod has fails at once instead of leaving
            _ip("route", "add", self.pod_cidr, "via", self.node_ip, "dev", self.host_veth)

    def enter(self) -> list[str]:
        """The command prefix that runs a program inside the sandbox."""
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", "--pid", "--"]

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.enter(), *argv], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        proc = ManagedProcess(name, [*self.enter(), *argv], self.workdir / "logs" / f"{name}.log", env=env)
        proc.start()
        return proc

    def stop(self) -> None:
        """End the sandbox's init: the kernel kills everything inside, the namespaces go with it."""
        if self.init is not None:
            self.init.stop(timeout=15, sig=signal.SIGTERM)
            self.init = None
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.host_veth, check=False)
        remove_cgroups(self.cgroup_name)


def veth_names() -> list[str]:
    """The host ends of node sandboxes that exist now (for tests that check the clean-up)."""
    return re.findall(r"^\d+: (kt[0-9a-f]{8})@", _ip("-o", "link").stdout, re.M)
