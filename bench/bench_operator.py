"""1,000 Strategy resources applied at once: how long until the operator has given every one
its children and a status, how long until every runner is Ready, and the operator's peak memory.

Baselines, same run, same control plane: the API server writing 1,000 ConfigMaps of the same
size from one ``kubectl apply`` (the floor any controller's writes sit on), and the same 1,000
Strategy objects admitted with no operator and no webhook running (what the CRD's validation,
CEL rules and defaulting cost by themselves).  The ratio says how
many such raw write rounds the whole reconciliation costs; targets are < 60 s and < 200 MB.

Everything is real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok nodes
(Deployments get ReplicaSets, Pods, scheduling and readiness), NATS, the admission webhook.
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
COUNT = int(os.environ.get("KUBETRADE_BENCH_STRATEGIES", "1000"))
WEBHOOK = os.environ.get("KUBETRADE_BENCH_WEBHOOK", "1") == "1"


def _strategy(i: int) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    doc["metadata"] = {"name": f"bench-{i:04d}", "labels": {"kubetrade.io/bench": "operator"}}
    doc["spec"].pop("goalRef", None)
    return doc


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the kernel's high-water mark of the process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _count(kube: Any, predicate: Any) -> int:
    items = json.loads(kube.kubectl("get", "strategies", "-n", "bench", "-o", "json", timeout=300).stdout)["items"]
    return sum(1 for s in items if predicate(s.get("status") or {}))


def run() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "workloads"))
    from kubetrade.embedded import NatsServer
    from kubetrade.embedded.kube import KubeControlPlane
    from kubetrade.embedded.operator import OperatorProcess

    with tempfile.TemporaryDirectory() as tmp, NatsServer() as nats:
        work = Path(tmp)
        kube = KubeControlPlane(work / "kube", nodes=4)
        kube.start()
        try:
            kube.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            kube.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            kube.kubectl("create", "namespace", "bench")
            kube.kubectl("create", "namespace", "baseline")

            # Baseline: raw writes of the same count and size.
            size = len(json.dumps(_strategy(0)))
            cms = [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i:04d}"},
                    "data": {"x": "y" * size},
                }
                for i in range(COUNT)
            ]
            (work / "cms.yaml").write_text(yaml.safe_dump_all(cms))
            t0 = time.perf_counter()
            kube.kubectl("apply", "--server-side", "-n", "baseline", "-f", str(work / "cms.yaml"), timeout=600)
            baseline = time.perf_counter() - t0

            op = OperatorProcess(
                kube.kubeconfig, nats.url, work / "operator", webhook=WEBHOOK, resync_seconds=60, log_level="warning"
            )
            op.start()
            try:
                if WEBHOOK:
                    kube.wait_for(
                        lambda: (
                            kube.kubectl(
                                "get", "validatingwebhookconfiguration", "validate.kubetrade.io", check=False
                            ).returncode
                            == 0
                        ),
                        60,
                        "webhook",
                    )
                policy = yaml.safe_load((REPO / "examples" / "riskpolicy.yaml").read_text())
                docs = [policy] + [_strategy(i) for i in range(COUNT)]
                (work / "strategies.yaml").write_text(yaml.safe_dump_all(docs))
                t0 = time.perf_counter()
                kube.kubectl("apply", "--server-side", "-n", "bench", "-f", str(work / "strategies.yaml"), timeout=900)
                applied = time.perf_counter() - t0
                with_status = ready = None
                deadline = t0 + 900
                while time.perf_counter() < deadline and ready is None:
                    if (
                        with_status is None
                        and _count(
                            kube, lambda s: s.get("phase") in ("Pending", "Paper") and s.get("observedGeneration") == 1
                        )
                        == COUNT
                    ):
                        with_status = time.perf_counter() - t0
                    if with_status is not None and _count(kube, lambda s: s.get("phase") == "Paper") == COUNT:
                        ready = time.perf_counter() - t0
                    time.sleep(1)
                if not op.process.running:
                    keep = REPO / ".kubetrade" / "bench-operator.log"
                    keep.parent.mkdir(exist_ok=True)
                    keep.write_text(op.log())
                    raise RuntimeError(f"the operator exited during the benchmark; its log is in {keep}")
                deployments = len(
                    json.loads(kube.kubectl("get", "deployments", "-n", "bench", "-o", "json", timeout=300).stdout)[
                        "items"
                    ]
                )
                peak = _peak_rss_mb(op.pid or 0)
            finally:
                op.stop()
            # Second baseline: the same Strategy objects admitted by the API server alone (no operator,
            # no webhook): what CRD validation, CEL rules and defaulting cost on this machine.
            kube.kubectl("delete", "validatingwebhookconfiguration", "validate.kubetrade.io", "--ignore-not-found")
            kube.kubectl("create", "namespace", "bare")
            t0 = time.perf_counter()
            kube.kubectl("apply", "--server-side", "-n", "bare", "-f", str(work / "strategies.yaml"), timeout=900)
            bare_apply = time.perf_counter() - t0
        finally:
            kube.cleanup()
    return {
        "strategies": COUNT,
        "admission_webhook": WEBHOOK,
        "apply_seconds": round(applied, 1),
        "seconds_to_children_and_status": None if with_status is None else round(with_status, 1),
        "seconds_to_all_runners_ready": None if ready is None else round(ready, 1),
        "baseline_configmap_apply_seconds": round(baseline, 1),
        "baseline_same_strategies_no_operator_seconds": round(bare_apply, 1),
        "ratio_to_same_strategies_baseline": None if with_status is None else round(with_status / bare_apply, 2),
        "ratio_to_baseline": None if with_status is None else round(with_status / baseline, 1),
        "deployments": deployments,
        "operator_peak_mb": round(peak),
        "targets_met": bool(with_status is not None and with_status < 60 and peak < 200),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
