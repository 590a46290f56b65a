"""The test node itself: real containers, real probes, cluster DNS, Services, clean-up.

The baseline image is Debian's static busybox (``kubetrade_testbed.node.images``), so these
tests say what the node does before any kubetrade image is involved.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubetrade_testbed.node.cluster import RealCluster
from kubetrade_testbed.node.images import BUSYBOX
from kubetrade_testbed.node.sandbox import veth_names

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _web(cluster: RealCluster, ns: str, name: str, ready_path: str = "/index.html") -> None:
    """A busybox httpd Deployment whose readiness probe fetches ``ready_path``, and its Service."""
    pod = {
        "containers": [{
            "name": "web", "image": BUSYBOX, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "mkdir -p /tmp/www && echo \"hello from $(hostname)\" > /tmp/www/index.html"
                                    " && exec httpd -f -p 8080 -h /tmp/www"],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": ready_path, "port": 8080}, "periodSeconds": 1},
        }],
    }
    docs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def _run(cluster: RealCluster, ns: str, script: str) -> subprocess.CompletedProcess[str]:
    """A one-off busybox pod running ``script``; its output (kubectl logs) and exit."""
    name = f"run-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("run", name, "-n", ns, f"--image={BUSYBOX}", "--image-pull-policy=Never", "--restart=Never",
                    "--command", "--", "sh", "-c", script)
    phase = _wait(lambda: cluster.get_json("pod", name, "-n", ns)["status"].get("phase") in ("Succeeded", "Failed")
                  and cluster.get_json("pod", name, "-n", ns)["status"]["phase"], 120, f"pod {name} to finish")
    logs = cluster.kubectl("logs", name, "-n", ns)
    return subprocess.CompletedProcess(logs.args, 0 if phase == "Succeeded" else 1, logs.stdout, logs.stderr)


def test_a_deployment_runs_real_containers_ready_through_their_probe(cluster: RealCluster) -> None:
    ns = f"n-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    _web(cluster, ns, "web")
    cluster.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s", timeout=130)
    pod = cluster.get_json("pods", "-n", ns, "-l", "app=web")["items"][0]
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["containerID"].startswith("containerd://")
    assert pod["status"]["podIP"].startswith(cluster.sandbox.pod_cidr.rsplit(".", 2)[0])
    # the process really runs: exec into it, and containerd on the node lists it
    out = cluster.kubectl("exec", "-n", ns, pod["metadata"]["name"], "--", "cat", "/tmp/www/index.html").stdout
    assert out.strip() == f"hello from {pod['metadata']['name']}"
    assert cluster.node is not None
    listed = cluster.node.crictl("ps", "--name", "web", "-o", "json").stdout
    assert status["containerID"].removeprefix("containerd://") in listed


def test_cluster_dns_and_a_service_reach_the_pod_and_nothing_else(cluster: RealCluster) -> None:
    ns = f"n-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    _web(cluster, ns, "web")
    cluster.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s", timeout=130)
    got = _run(cluster, ns, "wget -qO- http://web/ && nslookup kubernetes.default.svc.cluster.local"
                            " && ! nslookup example.com && ! wget -qO- -T 3 http://10.96.255.254/")
    assert got.returncode == 0, got.stdout
    assert "hello from web-" in got.stdout
    assert "Address: 10.96.0.1" in got.stdout  # the kubernetes Service, from CoreDNS
    assert "NXDOMAIN" in got.stdout  # no upstream resolver is asked


def test_a_failing_readiness_probe_keeps_the_pod_out_and_describe_says_why(cluster: RealCluster) -> None:
    ns = f"n-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    _web(cluster, ns, "sick", ready_path="/missing")
    pod = _wait(lambda: [p for p in cluster.get_json("pods", "-n", ns, "-l", "app=sick")["items"]
                         if p["status"].get("phase") == "Running"], 120, "the pod to run")[0]["metadata"]["name"]
    def described_failure() -> str | None:
        d = cluster.kubectl("describe", "pod", "-n", ns, pod).stdout
        return d if "Readiness probe failed: HTTP probe failed with statuscode: 404" in d else None

    _wait(described_failure, 60, "the probe failure in the pod's events")
    assert not cluster.get_json("pod", pod, "-n", ns)["status"]["containerStatuses"][0]["ready"]
    endpoints = cluster.get_json("endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=sick")["items"]
    assert all(not (e.get("conditions") or {}).get("ready") for s in endpoints for e in s.get("endpoints") or [])


def test_a_crashing_container_shows_its_exit_code_and_restarts(cluster: RealCluster) -> None:
    """The container fails once (a marker on an emptyDir says so), then runs: its restart, exit code
    and previous logs stay put to be read (a container that keeps crashing is garbage-collected
    under the reader's feet)."""
    ns = f"n-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash", "namespace": ns},
           "spec": {"containers": [{"name": "crash", "image": BUSYBOX, "imagePullPolicy": "Never",
                                    "command": ["sh", "-c", "if [ -e /state/failed ]; then exec sleep 3600; fi; "
                                                "touch /state/failed; echo about to fail; exit 3"],
                                    "volumeMounts": [{"name": "state", "mountPath": "/state"}]}],
                    "volumes": [{"name": "state", "emptyDir": {}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def restarted_and_running() -> bool:
        st = (cluster.get_json("pod", "crash", "-n", ns)["status"].get("containerStatuses") or [{}])[0]
        return st.get("restartCount", 0) >= 1 and "running" in st.get("state", {})

    _wait(restarted_and_running, 120, "a restart")
    status = cluster.get_json("pod", "crash", "-n", ns)["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1, status
    last = status["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error", last
    described = cluster.kubectl("describe", "pod", "crash", "-n", ns).stdout
    assert "Last State:     Terminated" in described and "Exit Code:    3" in described, described
    assert "about to fail" in cluster.kubectl("logs", "crash", "-n", ns, "--previous").stdout


PARENT = r"""
import json, sys, time
from kubetrade_testbed.node.cluster import RealCluster
c = RealCluster()
c.start()
print(json.dumps({"workdir": str(c.workdir), "veth": c.sandbox.host_veth, "init": c.sandbox.pid,
                  "cgroup": c.sandbox.cgroup_name}), flush=True)
time.sleep(3600)
"""


def test_a_killed_test_process_leaves_no_node_behind(tmp_path: Path) -> None:
    """SIGKILL the process that started a cluster: the watchdog ends the sandbox, and with it
    every container, the veth pair, the node's network namespace and its folder."""
    env = {**os.environ, "KUBETRADE_NODE_BIN": os.environ.get("KUBETRADE_NODE_BIN") or ""}
    if not env["KUBETRADE_NODE_BIN"]:
        del env["KUBETRADE_NODE_BIN"]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env,
                              stderr=(tmp_path / "parent.log").open("w"))
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, (tmp_path / "parent.log").read_text()[-3000:]
    info = json.loads(line)
    assert info["veth"] in veth_names()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    _wait(lambda: info["veth"] not in veth_names(), 60, "the veth pair to go")
    _wait(lambda: not Path(f"/proc/{info['init']}").exists(), 60, "the sandbox's init to end")
    _wait(lambda: not Path(info["workdir"]).exists(), 60, "the node's folder to be removed")
