"""1,000 Strategy resources applied at once: how long until the operator has given every one
its children and a status, how long until every runner is Ready, and the operator's peak memory.

Baselines, same run, same control plane: the API server writing 1,000 ConfigMaps of the same
size from one ``kubectl apply`` (the floor any controller's writes sit on), and the same 1,000
Strategy objects admitted with no operator and no webhook running (what the CRD's validation,
CEL rules and defaulting cost by themselves).  The ratio says how
many such raw write rounds the whole reconciliation costs; targets are < 60 s and < 200 MB.

Everything is real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok nodes
(Deployments get ReplicaSets, Pods, scheduling and readiness), NATS, the admission webhook.
The test bed is the one the tests use, unchanged (all controllers, default API server flags).

On two cores the time is the CPU every Strategy costs the whole control plane, so the result
also reports the CPU seconds each process spent until all runners were Ready (measured on a
quiet machine: children and status at 54-56 s, about 105 CPU-seconds in all, 60 of them the
API server's, 18 the operator's: the run is CPU-bound).  With
``KUBETRADE_BENCH_AUDIT=1`` the API server keeps an audit log and the result counts the
requests of the measured window per Strategy by client, verb and resource (deterministic,
so a small ``KUBETRADE_BENCH_STRATEGIES`` is enough to compare changes; the audit log costs
CPU, so its timings are not the benchmark's figures).  The API server's own histograms give
the latency of the window, during the apply and after it: admission webhook calls by webhook
and operation, Strategy requests by verb (count, mean, and the bucket bounds p50 and p99 fall
in).
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
AUDIT = os.environ.get("KUBETRADE_BENCH_AUDIT", "0") == "1"
"""Also count the API requests of the measured window by client, verb and resource (an audit log
at Metadata level; it costs the API server some CPU, so timings taken with it are not comparable)."""

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def _client(user_agent: str) -> str:
    """kopf's own requests, the operator's handlers (the kubernetes client), kubectl, the controllers..."""
    agent = user_agent.split("/", 1)[0]
    return "operator-handlers" if agent == "OpenAPI-Generator" else agent


def _request_counts(log: Path, since: float, until: float) -> dict[str, int]:
    """Completed requests in [since, until] (wall clock) by client, verb and resource; watches excluded."""
    from collections import Counter
    from datetime import datetime

    counts: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete" or event.get("verb") == "watch":
            continue
        when = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
        if not since <= when <= until:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", event.get("requestURI", "?").split("?")[0])
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        counts[f"{_client(event.get('userAgent', '?'))} {event['verb']} {resource}"] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


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


def _cpu_seconds(processes: dict[str, int]) -> dict[str, float]:
    """User + system CPU time so far of each process (and its reaped children), by name."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in processes.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
    return out


_HISTOGRAMS = {
    "apiserver_admission_webhook_admission_duration_seconds": ("name", "operation"),
    "apiserver_request_duration_seconds": ("resource", "verb"),
}


def _histograms(kube: Any) -> dict[tuple[str, ...], dict[str, float]]:
    """The API server's admission-webhook and request latency histograms (Strategies only), summed
    over the labels not named in ``_HISTOGRAMS``: {(metric, label, ...): {"le=..": n, "sum": s, "count": n}}."""
    import re

    out: dict[tuple[str, ...], dict[str, float]] = {}
    for line in kube.kubectl("get", "--raw", "/metrics", timeout=60).stdout.splitlines():
        m = re.match(r"(\w+?)_(bucket|sum|count)\{(.*)\} (\S+)$", line)
        if not m or m.group(1) not in _HISTOGRAMS:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3)))
        if m.group(1) == "apiserver_request_duration_seconds" and labels.get("resource") != "strategies":
            continue
        if labels.get("subresource"):
            continue
        key = (m.group(1), *(labels.get(k, "") for k in _HISTOGRAMS[m.group(1)]))
        field = f"le={labels['le']}" if m.group(2) == "bucket" else m.group(2)
        out.setdefault(key, {})
        out[key][field] = out[key].get(field, 0.0) + float(m.group(4))
    return out


def _latencies(
    before: dict[tuple[str, ...], dict[str, float]], after: dict[tuple[str, ...], dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Count, mean and bucket-estimated p50/p99 (ms) of what happened between two scrapes."""
    out: dict[str, dict[str, float]] = {}
    for key, now in after.items():
        prev = before.get(key, {})
        delta = {k: v - prev.get(k, 0.0) for k, v in now.items()}
        count = delta.get("count", 0.0)
        if count <= 0:
            continue
        buckets = sorted((float(k[3:]), v) for k, v in delta.items() if k.startswith("le="))
        p50, p99 = (next((le for le, n in buckets if n >= q * count), float("inf")) for q in (0.5, 0.99))
        out[" ".join(key)] = {
            "count": int(count),
            "mean_ms": round(1000 * delta.get("sum", 0.0) / count, 1),
            "p50_ms_at_most": round(1000 * p50, 1),
            "p99_ms_at_most": round(1000 * p99, 1),
        }
    return dict(sorted(out.items()))


def _count(kube: Any, predicate: Any) -> int:
    items = json.loads(kube.kubectl("get", "strategies", "-n", "bench", "-o", "json", timeout=300).stdout)["items"]
    return sum(1 for s in items if predicate(s.get("status") or {}))


def run() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "workloads"))
    from kubetrade.localstack.servers import NatsServer
    from kubetrade_testbed.kube import KubeControlPlane
    from kubetrade_testbed.operator import OperatorProcess

    with tempfile.TemporaryDirectory() as tmp, NatsServer() as nats:
        work = Path(tmp)
        audit_args: list[str] = []
        if AUDIT:
            (work / "audit-policy.json").write_text(json.dumps(AUDIT_POLICY))
            audit_args = [
                f"--audit-policy-file={work / 'audit-policy.json'}",
                f"--audit-log-path={work / 'audit.log'}",
                "--audit-log-format=json",
                "--audit-log-mode=batch",
                "--audit-log-maxsize=0",
            ]
        kube = KubeControlPlane(work / "kube", nodes=4, apiserver_args=audit_args)
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
                pids = {p.name: p.proc.pid for p in kube.processes if p.proc} | {"operator": op.pid or 0}
                cpu0 = _cpu_seconds(pids)
                hist0 = _histograms(kube)
                t0 = time.perf_counter()
                wall0 = time.time()
                kube.kubectl("apply", "--server-side", "-n", "bench", "-f", str(work / "strategies.yaml"), timeout=900)
                applied = time.perf_counter() - t0
                hist_applied = _histograms(kube)
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
                wall1 = time.time()
                cpu1 = _cpu_seconds(pids)
                cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 1) for k in cpu1}
                hist1 = _histograms(kube)
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
            requests = None
            if AUDIT:
                kube.stop()  # flushes the batched audit log
                requests = _request_counts(work / "audit.log", wall0, wall1)
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
        "cpu_seconds_until_ready": cpu,
        "operator_peak_mb": round(peak),
        "latency_during_apply": _latencies(hist0, hist_applied),
        "latency_after_apply_until_ready": _latencies(hist_applied, hist1),
        "targets_met": bool(with_status is not None and with_status < 60 and peak < 200),
        **(
            {
                "requests_per_strategy": round(sum(requests.values()) / COUNT, 2),
                "requests_by_client_verb_resource": {k: round(v / COUNT, 2) for k, v in requests.items()},
            }
            if requests is not None
            else {}
        ),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
