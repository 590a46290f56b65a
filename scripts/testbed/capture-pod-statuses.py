"""Capture real pod statuses of broken runners from the real test node, as test fixtures.

    .venv/bin/python scripts/testbed/capture-pod-statuses.py [OUT_DIR]

Starts a :class:`~kubetrade_testbed.node.cluster.RealCluster` (control plane + one real node:
kubelet, containerd, runc) with the kubetrade and NATS images, makes each fault below happen for
real - runner Deployments exactly as the operator builds them (``builders.strategy_children``),
run by the image's own ``kubetrade runner``, plus a few busybox pods for what a runner rarely
does on its own (running out of memory, a readiness that comes and goes) - and saves each pod,
as the API server returned it at the moment named (``managedFields`` dropped), to
``OUT_DIR/<case>--<moment>.json`` (default ``tests/operator/pods``), with a README that says
where they came from.  The pure mapping (``kubetrade_operator.runnerpods``) is tested on them
(tests/operator/test_runnerpods.py).  Takes 3-5 minutes with the images built.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "workloads"), str(REPO / "operator"), str(REPO / "testbed")]

from kubetrade.resources import StrategySpec  # noqa: E402
from kubetrade_operator import builders  # noqa: E402
from kubetrade_operator.config import OperatorConfig  # noqa: E402
from kubetrade_testbed.images import build_images  # noqa: E402
from kubetrade_testbed.node.cluster import RealCluster, node_bin_dir  # noqa: E402
from kubetrade_testbed.node.images import BUSYBOX  # noqa: E402

NS = "capture"
Pod = dict[str, Any]
Moment = Callable[[Pod], bool]


def _state(pod: Pod) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0]


def waiting(reason: str) -> Moment:
    return lambda p: ((_state(p).get("state") or {}).get("waiting") or {}).get("reason") == reason


def terminated(p: Pod) -> bool:
    return bool((_state(p).get("state") or {}).get("terminated"))


def backoff_after_exit(p: Pod) -> bool:
    s = _state(p)
    return ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff" and bool(
        (s.get("lastState") or {}).get("terminated"))


def running_after_exit(p: Pod) -> bool:
    s = _state(p)
    return bool((s.get("state") or {}).get("running")) and bool((s.get("lastState") or {}).get("terminated"))


def _ready(p: Pod) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions") or [])


def running_not_ready_for(seconds: float) -> Moment:
    def moment(p: Pod) -> bool:
        started = ((_state(p).get("state") or {}).get("running") or {}).get("startedAt")
        if not started or _ready(p):
            return False
        age = time.time() - datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        return age > seconds
    return moment


def unschedulable(p: Pod) -> bool:
    return any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
               for c in (p.get("status") or {}).get("conditions") or [])


@dataclass
class Case:
    name: str
    about: str
    objects: list[dict[str, Any]]
    moments: dict[str, Moment]
    after: dict[str, list[str]] = field(default_factory=dict)
    """kubectl arguments run once a moment has been saved (to lead the pod to the next one)."""
    found: dict[str, Pod] = field(default_factory=dict)


GENOME = {
    "direction": "long",
    "entry": {"combine": "all", "rules": [{"left": {"indicator": "ema", "params": {"period": 3}}, "op": "crossesAbove",
                                             "right": {"indicator": "ema", "params": {"period": 8}}}]},
    "exit": {"combine": "any", "rules": [{"left": {"indicator": "ema", "params": {"period": 3}}, "op": "crossesBelow",
                                           "right": {"indicator": "ema", "params": {"period": 8}}}]},
    "positionPct": 0.1,
}


def runner(name: str, cfg: OperatorConfig, genome: dict[str, Any] = GENOME) -> list[dict[str, Any]]:
    """A Strategy's ConfigMap and Deployment as the operator builds them (no owner: no Strategy here)."""
    spec = {"mode": "paper", "symbols": ["BTC/USDT"], "timeframe": "5m",
            "capital": {"amount": 1000, "currency": "USDT"}, "riskPolicyRef": {"name": "default"}, "genome": genome,
            "warmupBars": 0}
    objs = builders.strategy_children(name, NS, f"00000000-0000-0000-0000-{abs(hash(name)) % 10**12:012d}", 1,
                                      StrategySpec.model_validate(spec), cfg)
    for obj in objs:
        obj["metadata"].pop("ownerReferences", None)  # the garbage collector would take them: no such owner
    return list(objs)


def busybox(name: str, script: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"capture": name}},
            "spec": {"containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", script],
                                     "terminationMessagePolicy": "FallbackToLogsOnError", **container}]}}


def cases(kubetrade_image: str, nats_image: str) -> list[Case]:
    base = OperatorConfig(image=kubetrade_image, image_pull_policy="Never", nats_url=f"nats://nats.{NS}.svc:4222",
                          database_secret="kt-db-present")  # noqa: S106 - a Secret's name
    present = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kt-db-present", "namespace": NS},
               "stringData": {"url": "postgresql://kubetrade@127.0.0.1:9/kubetrade"}}  # nothing listens there
    repo = kubetrade_image.rsplit(":", 1)[0]
    wrong_environment = runner("wrong-env", base)
    for env in wrong_environment[1]["spec"]["template"]["spec"]["containers"][0]["env"]:
        if env["name"] == "KUBETRADE_ENVIRONMENT":
            env["value"] = "live"
    unschedulable_runner = runner("too-big", base)
    dep = unschedulable_runner[1]
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": "4000Gi"}}
    return [
        Case("runner-image-never-pull",
             f"the operator's runner image set to a tag the node does not have ({repo}:no-such-tag), "
             "imagePullPolicy Never (how the test node runs)",
             runner("image-tag", OperatorConfig(**{**base.__dict__, "image": f"{repo}:no-such-tag"})),
             {"waiting": waiting("ErrImageNeverPull")}),
        Case("runner-image-pull",
             "a runner image from a registry that does not resolve, imagePullPolicy IfNotPresent",
             runner("image-registry", OperatorConfig(**{**base.__dict__, "image": "registry.invalid/kubetrade:0.0.0",
                                                         "image_pull_policy": "IfNotPresent"})),
             {"errimagepull": waiting("ErrImagePull"), "backoff": waiting("ImagePullBackOff")}),
        Case("runner-secret-missing",
             "a strategy namespace without the database Secret (kt-db) the runner's KUBETRADE_DATABASE_URL reads",
             runner("no-secret", OperatorConfig(**{**base.__dict__, "database_secret": "kt-db"})),
             {"waiting": waiting("CreateContainerConfigError")}),
        Case("runner-secret-key-missing",
             "the database Secret is there but has no key 'url'",
             [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kt-db-nokey", "namespace": NS},
               "stringData": {"dsn": "postgresql://nobody@127.0.0.1:9/none"}},
              *runner("no-key", OperatorConfig(**{**base.__dict__, "database_secret": "kt-db-nokey"}))],
             {"waiting": waiting("CreateContainerConfigError")}),
        Case("runner-wrong-environment",
             "a paper Strategy's runner deployed with KUBETRADE_ENVIRONMENT=live: kubetrade runner exits 2 and "
             "writes why to /dev/termination-log",
             wrong_environment,
             {"terminated": terminated, "backoff": backoff_after_exit, "restarted": running_after_exit}),
        Case("runner-database-unreachable",
             "NATS is there, the database Secret points at a port nothing listens on: the runner exits 1 "
             "('database unreachable: ...')",
             runner("db-down", base),
             {"backoff": backoff_after_exit}),
        Case("runner-nats-unreachable",
             "the runner's NATS URL names no server: it runs, retries and stays not ready",
             runner("nats-down", OperatorConfig(**{**base.__dict__, "nats_url": f"nats://nowhere.{NS}.svc:4222"})),
             {"running": running_not_ready_for(20)}),
        Case("runner-unschedulable", "a runner asking for 4000Gi of memory: no node has it",
             unschedulable_runner, {"pending": unschedulable}),
        Case("oomkilled", "a container that allocates past its 32Mi memory limit",
             [busybox("oom", "tail /dev/zero", resources={"limits": {"memory": "32Mi"}})],
             {"terminated": terminated, "backoff": backoff_after_exit}),
        Case("crash-logs-only", "a container that prints why and exits 3 without writing a termination message "
             "(FallbackToLogsOnError: the log's end is the message)",
             [busybox("logs-only", "echo starting; echo 'fatal: /etc/app/config.yaml: no such file'; exit 3")],
             {"backoff": backoff_after_exit}),
        Case("configmap-missing", "an env variable read from a ConfigMap that does not exist",
             [busybox("no-configmap", "sleep 3600",
                      env=[{"name": "SETTING", "valueFrom": {"configMapKeyRef": {"name": "app-settings",
                                                                                  "key": "level"}}}])],
             {"waiting": waiting("CreateContainerConfigError")}),
        Case("ready-then-not", "an httpd whose readiness file is removed once it is Ready",
             [busybox("flaky", "mkdir -p /tmp/www && touch /tmp/www/ok && exec httpd -f -p 8080 -h /tmp/www",
                      readinessProbe={"httpGet": {"path": "/ok", "port": 8080}, "periodSeconds": 1,
                                      "failureThreshold": 1})],
             {"ready": _ready, "not-ready": lambda p: running_not_ready_for(0)(p) and _condition_changed(p)},
             after={"ready": ["exec", "-n", NS, "flaky", "--", "rm", "/tmp/www/ok"]}),
        Case("nats", "(the NATS server, the database Secret and the service account the runners need; not saved)",
             [present, builders.namespace_accounts(NS, base)[0],
              {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "nats", "namespace": NS, "labels": {"app": "nats"}},
               "spec": {"containers": [{"name": "nats", "image": nats_image, "imagePullPolicy": "Never",
                                        "args": ["--port", "4222"], "ports": [{"containerPort": 4222}]}]}},
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nats", "namespace": NS},
               "spec": {"selector": {"app": "nats"}, "ports": [{"port": 4222}]}}], {}),
    ]


def _condition_changed(p: Pod) -> bool:
    """Ready went False after the container started (it was Ready once in this run)."""
    started = ((_state(p).get("state") or {}).get("running") or {}).get("startedAt") or ""
    ready = next((c for c in p["status"].get("conditions") or [] if c["type"] == "Ready"), {})
    return ready.get("status") == "False" and str(ready.get("lastTransitionTime")) > started


def _pod_of(pods: list[Pod], obj: dict[str, Any]) -> Pod | None:
    if obj["kind"] == "Pod":
        return next((p for p in pods if p["metadata"]["name"] == obj["metadata"]["name"]), None)
    if obj["kind"] == "Deployment":
        owner = obj["spec"]["selector"]["matchLabels"][builders.OWNER_NAME]
        mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(builders.OWNER_NAME) == owner]
        return max(mine, key=lambda p: p["metadata"]["creationTimestamp"]) if mine else None
    return None


def capture(out: Path, timeout: float = 420.0) -> None:
    images = build_images(["kubetrade", "nats"])
    kt, nats = images["kubetrade"], images["nats"]
    cluster = RealCluster(archives=[kt.archive, nats.archive])
    cluster.start()
    try:
        cluster.kubectl("create", "namespace", NS)
        todo = cases(kt.reference, nats.reference)
        # what the pods read exists before they start
        first = {"Secret": 0, "ServiceAccount": 0, "Service": 1, "ConfigMap": 2}
        docs = sorted((o for c in todo for o in c.objects), key=lambda o: first.get(o["kind"], 3))
        cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(len(c.found) < len(c.moments) for c in todo):
            pods = cluster.get_json("pods", "-n", NS)["items"]
            for case in todo:
                for moment, matches in case.moments.items():
                    if moment in case.found:
                        continue
                    pod = next((p for o in case.objects if (p := _pod_of(pods, o)) is not None), None)
                    if pod is not None and matches(pod):
                        pod["metadata"].pop("managedFields", None)
                        case.found[moment] = pod
                        print(f"captured {case.name}--{moment}", flush=True)
                        if moment in case.after:
                            cluster.kubectl(*case.after[moment])
            time.sleep(0.3)
        missing = [f"{c.name}--{m}" for c in todo for m in c.moments if m not in c.found]
        out.mkdir(parents=True, exist_ok=True)
        for case in todo:
            for moment, pod in case.found.items():
                (out / f"{case.name}--{moment}.json").write_text(json.dumps(pod, indent=1, sort_keys=True) + "\n")
        _readme(out, todo, node_bin_dir().name, kt.reference)
        if missing:
            print(f"not reached within {timeout:.0f}s: {missing}\n{cluster.diagnostics()[-4000:]}", file=sys.stderr)
            raise SystemExit(1)
    finally:
        cluster.cleanup()


def _readme(out: Path, todo: list[Case], node: str, image: str) -> None:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
    lines = [
        "# Real pod statuses (fixtures of tests/operator/test_runnerpods.py)",
        "",
        "Captured by `scripts/testbed/capture-pod-statuses.py` (run it again to refresh them) from the real",
        f"test node (`{node}`: kubelet, containerd, runc built by scripts/testbed/build-node.sh), on",
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, at commit {commit}, with the kubetrade image `{image}`.",
        "Each file is one pod as `kubectl get pod -o json` returned it (managedFields dropped) at the",
        "moment its name says; runner pods come from Deployments built by the operator's own",
        "`builders.strategy_children` and run the image's `kubetrade runner`. Nothing here is edited by hand.",
        "",
        "| file | what was done |",
        "|---|---|",
    ]
    for case in todo:
        for moment in case.found:
            lines.append(f"| `{case.name}--{moment}.json` | {case.about} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    capture(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "operator" / "pods")
