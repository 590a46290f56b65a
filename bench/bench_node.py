"""kubetrade on a real node: ``helm install`` to every pod Ready and to the first paper fill,
the image sizes, each role's pod memory idle and while trading, and how many paper runner
pods one node holds.

Baseline, same run, same node: a bare busybox pod from ``kubectl run`` to Ready (what any pod
costs the control plane, kubelet, containerd and runc here), and its memory.  Warm: the images
are imported into containerd before the clock starts (nothing is ever pulled here).

Memory is the pod's cgroup (``memory.usage_in_bytes`` minus page cache, the working set the
kubelet reports), read on the node.  Runner pods: 10 then 20 then 40 paper Strategies, the
node's memory use after each, and the capacity extrapolated linearly from the slope to the
node's allocatable memory (KUBETRADE_BENCH_RUNNERS=10,20,40).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = [int(x) for x in os.environ.get("KUBETRADE_BENCH_RUNNERS", "10,20,40").split(",") if x]


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _working_set(cgroup_root: str, pod_uid: str) -> int | None:
    """The pod's working set on the node (cgroup v1 memory, usage minus inactive file pages)."""
    base = Path("/sys/fs/cgroup/memory") / cgroup_root / "kubepods"
    for path in base.rglob(f"pod{pod_uid}"):
        usage = int((path / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (path / "memory.stat").read_text().splitlines())
        return usage - int(stat.get("total_inactive_file", 0))
    return None


def _pods_memory(cluster: Any, namespace: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for pod in cluster.get_json("pods", "-n", namespace)["items"]:
        role = pod["metadata"].get("labels", {}).get("app.kubernetes.io/component") or pod["metadata"]["name"]
        ws = _working_set(cluster.sandbox.cgroup_name, pod["metadata"]["uid"])
        if ws is not None:
            out[role] = out.get(role, 0) + ws
    return out


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def run() -> dict[str, Any]:
    from tests.node.conftest import CHART, Helm, _helm_binary, image_values, persistent_volumes

    from kubetrade_testbed.node.cluster import RealCluster
    from kubetrade_testbed.node.images import BUSYBOX

    listed = os.environ.get("KUBETRADE_TEST_IMAGES")
    if listed:
        from types import SimpleNamespace

        images: dict[str, Any] = {n: SimpleNamespace(**d) for n, d in json.loads(Path(listed).read_text()).items()}
    else:
        from kubetrade_testbed.images import build_images

        images = dict(build_images())
    res: dict[str, Any] = {}
    for name, img in images.items():
        size = getattr(img, "uncompressed_size", None) or Path(img.archive).stat().st_size
        res[f"image_{name}_mb"] = round(size / 2**20, 1)
    cluster = RealCluster(archives=[Path(a.archive) for a in images.values()])
    cluster.start()
    try:
        res["cluster_start_s"] = round(cluster.timings["dns_ready_s"], 1)
        # --- baseline: a bare pod to Ready -------------------------------------------------
        t0 = time.monotonic()
        cluster.kubectl("run", "bare", f"--image={BUSYBOX}", "--image-pull-policy=Never", "--command", "--",
                        "sleep", "3600")
        cluster.kubectl("wait", "--for=condition=Ready", "pod/bare", "--timeout=120s", timeout=130)
        bare_s = time.monotonic() - t0
        res["baseline_busybox_pod_ready_s"] = round(bare_s, 2)
        bare = cluster.get_json("pod", "bare")
        res["baseline_busybox_pod_mb"] = round((_working_set(cluster.sandbox.cgroup_name, bare["metadata"]["uid"])
                                                or 0) / 2**20, 1)
        # --- helm install to all Ready -------------------------------------------------------
        ns = "kubetrade"
        cluster.kubectl("create", "namespace", ns)
        tmp = Path(tempfile.mkdtemp(prefix="bench-node-"))
        persistent_volumes(cluster, tmp / "pv", ["10Gi", "20Gi"])
        helm = Helm(_helm_binary(), tmp / "helm", cluster.kubeconfig)
        args = ["install", "kt", str(CHART), "--namespace", ns, "--wait", "--timeout", "600s"]
        for v in [*image_values(images), "executors.live.enabled=false"]:
            args += ["--set", v]
        t0 = time.monotonic()
        helm.run(*args, timeout=700)
        install_s = time.monotonic() - t0
        res["helm_install_all_ready_s"] = round(install_s, 1)
        res["helm_install_vs_bare_pod"] = round(install_s / bare_s, 1)
        time.sleep(60)
        for role, ws in sorted(_pods_memory(cluster, ns).items()):
            res[f"rss_idle_{role}_mb"] = round(ws / 2**20, 1)
        # --- first paper fill ------------------------------------------------------------------
        manifests = REPO / "tests" / "node" / "manifests"
        cluster.kubectl("apply", "-n", ns, "-f", str(manifests))

        def fills() -> int:
            out = cluster.kubectl("exec", "-n", ns, "statefulset/kt-timescaledb", "--", "psql", "-U", "kubetrade",
                                  "-d", "kubetrade", "-XAtc", "SELECT count(*) FROM fills", check=False).stdout
            return int(out.strip() or 0) if out.strip().isdigit() else 0

        _wait(lambda: fills() > 0, 600, "the first paper fill", interval=1.0)
        res["helm_install_to_first_fill_s"] = round(time.monotonic() - t0 - 60, 1)  # less the idle minute
        # --- memory while trading ---------------------------------------------------------------
        time.sleep(60)
        for role, ws in sorted(_pods_memory(cluster, ns).items()):
            res[f"rss_trading_{role}_mb"] = round(ws / 2**20, 1)
        # --- runner pods per node -------------------------------------------------------------
        strategy = next(d for d in yaml.safe_load_all((manifests / "strategies.yaml").read_text()) if d)
        node_alloc = cluster.get_json("node", "node-0")["status"]["allocatable"]["memory"]
        alloc = int(node_alloc.removesuffix("Ki")) * 1024
        used: list[tuple[int, int]] = []
        made = 0
        for step in STEPS:
            docs = []
            for i in range(made, step):
                d = json.loads(json.dumps(strategy))
                d["metadata"] = {"name": f"bench-{i:03d}"}
                docs.append(d)
            made = step
            cluster.kubectl("apply", "-n", ns, "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs),
                            timeout=300)

            def runners_ready(n: int = step) -> bool:
                pods = [p for p in cluster.get_json("pods", "-n", ns)["items"]
                        if p["metadata"]["name"].startswith("strategy-bench-")]
                return len(pods) >= n and all(_ready(p) for p in pods)

            _wait(runners_ready, 900, f"{step} runner pods Ready", interval=2.0)
            time.sleep(20)
            pods = [p for p in cluster.get_json("pods", "-n", ns)["items"]
                    if p["metadata"]["name"].startswith("strategy-")]
            per = [(_working_set(cluster.sandbox.cgroup_name, p["metadata"]["uid"]) or 0) for p in pods]
            used.append((len(per), sum(per)))
            res[f"runners_{step}_total_mb"] = round(sum(per) / 2**20, 1)
        (n1, m1), (n2, m2) = used[0], used[-1]
        slope = (m2 - m1) / max(1, n2 - n1)
        res["runner_pod_mb_marginal"] = round(slope / 2**20, 1)
        res["node_allocatable_mb"] = round(alloc / 2**20)
        others = sum(_pods_memory(cluster, ns).values()) - m2
        res["runner_pods_per_node_extrapolated"] = int((alloc - others - (m2 - slope * n2)) / slope) if slope else None
        return res
    finally:
        cluster.cleanup()
