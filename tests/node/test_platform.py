"""kubetrade on a real node: what a user does after ``helm install``, against real containers.

One install per session (the ``platform`` fixture), shared by these tests in order.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.node.conftest import CHART, Platform

# a real install, real pods and a real evolution run on two shared cores: minutes, not seconds
pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(1500)]

COMPONENTS = ("operator", "api", "risk-manager", "goal-manager", "executor-paper", "nats", "timescaledb")


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def test_helm_install_brings_every_pod_ready_through_real_probes(platform: Platform) -> None:
    for component in COMPONENTS:
        pods = platform.pods(component)
        assert pods and all(_ready(p) for p in pods), (component, [p["status"] for p in pods])
        for pod in pods:
            for status in pod["status"]["containerStatuses"]:
                # a real container: containerd's id, the image we built, started by the kubelet
                assert status["containerID"].startswith("containerd://"), status
                assert status["state"].get("running"), status
    # the namespace enforces the restricted Pod Security standard: a pod without it is refused
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    refused = platform.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(bare), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    # least privilege, asked of the API server's own RBAC authorizer (moved here from tests/chart)
    operator_sa = f"system:serviceaccount:{platform.namespace}:{platform.release}-operator"
    api_sa = f"system:serviceaccount:{platform.namespace}:{platform.release}-api"
    goals_sa = f"system:serviceaccount:{platform.namespace}:{platform.release}-goal-manager"
    allowed = {
        (operator_sa, "create", "deployments.apps", None): "yes",
        (operator_sa, "patch", "strategies.kubetrade.io/status", None): "yes",
        (operator_sa, "create", "cronjobs.batch", None): "yes",
        (operator_sa, "patch", "validatingwebhookconfigurations", "validate.kubetrade.io"): "yes",
        (operator_sa, "bind", "clusterroles.rbac.authorization.k8s.io", "kubetrade-evolution"): "yes",
        (operator_sa, "bind", "clusterroles.rbac.authorization.k8s.io", "cluster-admin"): "no",
        (operator_sa, "create", "strategies.kubetrade.io", None): "no",  # only evolution jobs create them
        (operator_sa, "get", "secrets", None): "no",
        (operator_sa, "watch", "pods", None): "yes",  # why a runner pod cannot run, on its Strategy
        (operator_sa, "delete", "pods", None): "no",
        (operator_sa, "delete", "namespaces", None): "no",
        (api_sa, "list", "strategies.kubetrade.io", None): "yes",
        (api_sa, "patch", "strategies.kubetrade.io", None): "no",
        (api_sa, "get", "secrets", None): "no",
        (goals_sa, "list", "goals.kubetrade.io", None): "yes",
        (goals_sa, "list", "strategies.kubetrade.io", None): "yes",
        (goals_sa, "patch", "goals.kubetrade.io/status", None): "no",  # its figures go through the operator
        (goals_sa, "patch", "strategies.kubetrade.io", None): "no",
        (goals_sa, "get", "secrets", None): "no",
    }
    for (who, verb, resource, name), expected in allowed.items():
        target = f"{resource}/{name}" if name else resource
        got = platform.kubectl("auth", "can-i", verb, target, f"--as={who}", check=False).stdout
        assert got.strip() == expected, f"{who} {verb} {target}: {got.strip()}, expected {expected}"


MANIFESTS = Path(__file__).with_name("manifests")


def _strategy(platform: Platform, name: str) -> dict[str, Any]:
    return platform.get("strategy", name).get("status") or {}


UNSETTLED = "SELECT count(*) FROM orders WHERE status NOT IN ('filled', 'cancelled', 'rejected', 'expired')"
BOOKS = {
    # every order's filled quantity is the sum of its fills: nothing lost, nothing doubled
    "orders whose fills do not add up": """
        SELECT count(*) FROM orders o LEFT JOIN
          (SELECT client_order_id, sum(quantity) AS q FROM fills GROUP BY 1) f USING (client_order_id)
        WHERE abs(o.filled_quantity - coalesce(f.q, 0)) > 1e-9""",
    # every position is the signed sum of its fills
    "positions that are not the sum of their fills": """
        SELECT count(*) FROM positions p FULL JOIN
          (SELECT environment, namespace, strategy, symbol,
                  sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) AS q
           FROM fills GROUP BY 1, 2, 3, 4) f USING (environment, namespace, strategy, symbol)
        WHERE abs(coalesce(p.quantity, 0) - coalesce(f.q, 0)) > 1e-9""",
    # one fill per exchange trade
    "fills recorded twice": """
        SELECT count(*) FROM (SELECT 1 FROM fills GROUP BY environment, exchange, symbol, trade_id
                              HAVING count(*) > 1) d""",
}


def _books_add_up(platform: Platform) -> None:
    _wait(lambda: platform.psql(UNSETTLED) == [["0"]], 120, "every order to settle")
    bad = {what: platform.psql(sql)[0][0] for what, sql in BOOKS.items()}
    assert all(v == "0" for v in bad.values()), bad


def _fills(platform: Platform) -> int:
    return int(platform.psql("SELECT count(*) FROM fills")[0][0])


def _kill_and_trade_on(platform: Platform, pod_selector: str, owner_ready: str) -> None:
    """Delete the pods ``kubectl get pods -l pod_selector`` names while orders flow; the
    controller replaces them, trading goes on, and the books add up."""
    before = _fills(platform)
    old = {p["metadata"]["uid"] for p in platform.get("pods", "-l", pod_selector)["items"]}
    assert old, pod_selector
    platform.kubectl("delete", "pod", "-l", pod_selector, "--wait=false")
    _wait(lambda: (pods := platform.get("pods", "-l", pod_selector)["items"]) and all(
        p["metadata"]["uid"] not in old and _ready(p) for p in pods), 300, f"new Ready pods for {pod_selector}")
    platform.kubectl("rollout", "status", owner_ready, "--timeout=300s", timeout=310)
    _wait(lambda: _fills(platform) > before + 2, 300, "fills after the restart")
    _books_add_up(platform)


def test_kubectl_apply_starts_runner_pods_that_paper_trade_into_postgres(platform: Platform) -> None:
    """A replay Collector, a RiskPolicy and two paper Strategies: the runner pods take candles
    from NATS, orders and fills reach PostgreSQL through the risk manager and executor pods,
    and ``kubectl get strategies`` shows the trades and PnL the pods report."""
    platform.kubectl("apply", "-f", str(MANIFESTS))
    names = ("btc-fast", "eth-fast")

    def traded() -> bool:
        return all((_strategy(platform, n).get("trades") or 0) >= 1 for n in names)

    _wait(traded, 420, "both strategies to report a closed trade")
    pods = platform.get("pods")["items"]
    for n in names:
        runners = [p for p in pods if p["metadata"]["name"].startswith(f"strategy-{n}-")]
        assert runners and all(s["containerID"].startswith("containerd://")
                               for p in runners for s in p["status"]["containerStatuses"]), f"no runner pod for {n}"
    rows = {r[0]: int(r[1]) for r in platform.psql("SELECT strategy, count(*) FROM fills GROUP BY strategy")}
    for n in names:
        status = _strategy(platform, n)
        # a closed trade is an entry and an exit: at least two fills in the database
        assert rows.get(n, 0) >= 2 * status["trades"] - 1, (n, rows, status)
        assert isinstance(status.get("pnl"), (int, float)) and status["pnl"] != 0, status
    table = platform.kubectl("get", "strategies").stdout
    assert all(n in table for n in names), table


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_deleting_the_executor_pod_while_orders_flow_loses_and_doubles_nothing(platform: Platform) -> None:
    _kill_and_trade_on(platform, "app.kubernetes.io/component=executor-paper",
                       f"deployment/{platform.release}-executor-paper")


def test_deleting_a_runner_pod_loses_and_doubles_nothing(platform: Platform) -> None:
    _kill_and_trade_on(platform, "kubetrade.io/owner-kind=Strategy,kubetrade.io/owner-name=btc-fast",
                       "deployment/strategy-btc-fast")


def test_deleting_the_nats_pod_loses_and_doubles_nothing(platform: Platform) -> None:
    _kill_and_trade_on(platform, "app.kubernetes.io/component=nats", f"statefulset/{platform.release}-nats")


def test_deleting_a_strategy_closes_its_position_through_the_executor_pod(platform: Platform) -> None:
    held = "SELECT coalesce(sum(abs(quantity)), 0) FROM positions WHERE strategy = 'eth-fast'"
    _wait(lambda: float(platform.psql(held)[0][0]) > 0, 300, "eth-fast to hold a position")
    platform.kubectl("delete", "strategy", "eth-fast", "--timeout=180s", timeout=200)
    assert float(platform.psql(held)[0][0]) == 0.0
    last = platform.psql("SELECT side, status FROM orders WHERE strategy = 'eth-fast' ORDER BY created_at DESC LIMIT 1")
    assert last == [["sell", "filled"]], last
    _wait(lambda: not [p for p in platform.get("pods")["items"]
                       if p["metadata"]["name"].startswith("strategy-eth-fast-")],
          120, "the runner pod to go with its Strategy")
    _books_add_up(platform)


def _run_evolution_by_hand(platform: Platform, manifest: str, goal: str, job: str) -> tuple[dict[str, Any],
                                                                                       dict[str, Any]]:
    """Apply the Goal, run its CronJob's job by hand, wait for it to complete: (its verdict, the job's pod)."""
    platform.kubectl("apply", "-f", str(Path(__file__).with_name(manifest)))
    cron = _wait(lambda: [c["metadata"]["name"] for c in platform.get("cronjobs")["items"]
                          if goal in c["metadata"]["name"]], 120, "the Goal's evolution CronJob")[0]
    platform.kubectl("create", "job", f"--from=cronjob/{cron}", job)

    def finished() -> str | None:
        conds = platform.get("job", job).get("status", {}).get("conditions") or []
        return next((c["type"] for c in conds if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)

    outcome = _wait(finished, 900, f"the Job {job} to finish")
    logs = platform.kubectl("logs", f"job/{job}", "--tail=30", check=False).stdout
    assert outcome == "Complete", logs
    verdict = _wait(lambda: platform.get("goal", goal).get("status", {}).get("lastSelection"), 120,
                    "the verdict in the Goal's status")
    pods = [p for p in platform.get("pods", "-l", f"job-name={job}")["items"]
            if p["status"].get("phase") == "Succeeded"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return verdict, pods[0]


def test_a_goal_s_evolution_cronjob_run_by_hand_gives_a_verdict(platform: Platform) -> None:
    """``kubectl create job --from=cronjob/...``: the evolution runs in a real pod (the image's
    ``kubetrade goal-evolution``, the evolution service account) on the candles the collector
    stored, and the gates' verdict reaches the Goal's status and an Event: either Strategies that
    passed, in paper mode with their evidence, or "no strategy passed" with the best figures (a day
    of real candles rarely shows an edge; the gates, not the test, decide which)."""
    verdict, pod = _run_evolution_by_hand(platform, "goal.yaml", "quick-goal", "evolve-now")
    image = next(v.split("=", 1)[1] for v in platform.values if v.startswith("image.repository="))
    assert pod["spec"]["containers"][0]["image"].startswith(f"{image}:")  # the runtime image: no training
    assert verdict["trials"] >= 20 and verdict["candidates"] >= 1, verdict
    assert verdict["message"], verdict
    evolved = [s for s in platform.get("strategies")["items"]
               if (s["metadata"].get("labels") or {}).get("kubetrade.io/goal") == "quick-goal"]
    assert len(evolved) == verdict["toPaper"], (verdict, [s["metadata"]["name"] for s in evolved])
    for s in evolved:  # what passed goes to paper only, carrying the evidence it passed on
        assert s["spec"]["mode"] == "paper"
        evidence = (s.get("status") or {}).get("evidence") or {}
        assert evidence.get("deflatedSharpe") is not None, s["metadata"]["name"]
    if not evolved:
        assert verdict["message"].startswith("no strategy passed"), verdict
    events = platform.kubectl("get", "events", "--field-selector",
                              "involvedObject.kind=Goal,involvedObject.name=quick-goal", "-o", "json").stdout
    reason = "StrategiesToPaper" if evolved else "NoStrategyPassed"
    assert reason in events and verdict["message"][:40] in events, events[-2000:]
    # what a user does with a test run's output: delete it (their runners go with them)
    platform.kubectl("delete", "strategies", "-l", "kubetrade.io/goal=quick-goal", "--timeout=300s", timeout=320)


def test_an_rl_goal_s_training_job_runs_from_the_training_image_and_its_policies_are_judged(
        platform: Platform, images: dict[str, Any]) -> None:
    """A Goal with ``sources: [genomes, rl]``: the operator's CronJob runs from the training image (the
    chart's ``image.train``, imported into the node's containerd like the others; the runtime image has
    no JAX), its pod trains a PPO policy per walk-forward window and the one selection counts them beside
    the genomes: every checkpoint a trial, every window's policy a candidate, its ONNX file in the model
    store in PostgreSQL; those that pass go to paper naming that file, like any Strategy."""
    started = platform.psql("SELECT count(*) FROM models WHERE kind = 'policy'")[0][0]
    verdict, pod = _run_evolution_by_hand(platform, "goal-rl.yaml", "rl-goal", "train-now")
    train = images["train"]
    assert pod["spec"]["containers"][0]["image"] == train.reference
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "training"
    (status,) = pod["status"]["containerStatuses"]
    # what containerd ran: this archive's image (its manifest or config digest), not the kubetrade image
    assert status["imageID"].rsplit("sha256:", 1)[-1] in (train.digest.removeprefix("sha256:"),
                                                           train.config_digest.removeprefix("sha256:")), status
    assert status["state"]["terminated"]["exitCode"] == 0
    by = {s["source"]: s for s in verdict["sources"]}
    windows, checkpoints = 3, 2  # goal-rl.yaml
    assert by["rl"]["trials"] == windows * checkpoints and by["rl"]["candidates"] == windows, verdict
    assert verdict["trials"] == by["genomes"]["trials"] + windows * checkpoints, verdict
    assert verdict["candidates"] == by["genomes"]["candidates"] + windows, verdict
    assert f"RL policies {windows} candidates from {windows * checkpoints} checkpoints" in verdict["message"], verdict
    # every window's policy, trained in the pod, is in the model store, its digest its bytes'
    stored = platform.psql("SELECT name, sha256, encode(sha256(onnx), 'hex') FROM models WHERE kind = 'policy'")
    assert int(started) == 0 and len(stored) == windows, stored
    assert all(sha == digest for _, sha, digest in stored), stored
    evolved = [s for s in platform.get("strategies")["items"]
               if (s["metadata"].get("labels") or {}).get("kubetrade.io/goal") == "rl-goal"]
    assert len(evolved) == verdict["toPaper"] == by["genomes"]["toPaper"] + by["rl"]["toPaper"], verdict
    names = {name: sha for name, sha, _ in stored}
    for s in evolved:
        assert s["spec"]["mode"] == "paper"
        if s["spec"].get("policy"):
            ref = s["spec"]["policy"]
            assert ref["uri"] == f"registry://{s['metadata']['name']}" and names[s["metadata"]["name"]] == ref["sha256"]
    platform.kubectl("delete", "strategies", "-l", "kubetrade.io/goal=rl-goal", "--timeout=300s", timeout=320)
    platform.kubectl("delete", "goal", "rl-goal", "--timeout=120s", timeout=140)


def _runner_condition(platform: Platform, name: str, namespace: str) -> dict[str, Any]:
    status = platform.cluster.get_json("strategy", name, "-n", namespace).get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "RunnerReady"), {})
    return {**ready, "phase": status.get("phase"), "phaseMessage": status.get("message")}


def test_a_strategy_says_why_its_runner_pod_cannot_run(platform: Platform) -> None:
    """Faults the kubelet sees reach the Strategy (issue 16), in a namespace of its own: without
    the database Secret (CreateContainerConfigError) it names the Secret and the variable that
    needs it; with a Secret whose database cannot be reached the runner exits, and the Strategy
    shows a crash loop with the runner's own reason (in ``kubectl describe pod`` too) and one
    Warning Event; with the release's Secret the condition follows the new pod (starting or ready)."""
    spec = yaml.safe_load((MANIFESTS / "strategies.yaml").read_text().split("\n---\n")[0])
    secret_name = next(e["value"] for e in platform.get("deployment", f"{platform.release}-operator")["spec"][
        "template"]["spec"]["containers"][0]["env"] if e["name"] == "KUBETRADE_DATABASE_SECRET")
    operator_env = {e["name"]: e.get("value") for e in platform.get("deployment", f"{platform.release}-operator")[
        "spec"]["template"]["spec"]["containers"][0]["env"]}
    nats_secret = f"{operator_env['KUBETRADE_NATS_SECRET_PREFIX']}runner"
    ns = "no-database"
    platform.cluster.kubectl("create", "namespace", ns)
    # a strategy namespace gets the runners' NATS identity, as docs/install.md says, but not the database Secret
    platform.cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": nats_secret, "namespace": ns},
         "data": platform.get("secret", nats_secret)["data"]}))
    strategy = {**spec, "metadata": {"name": "lonely", "namespace": ns,
                                     "annotations": {"kubetrade.io/skip-close-on-delete": "true"}}}
    policy = yaml.safe_load((MANIFESTS / "riskpolicy.yaml").read_text())
    policy["metadata"] = {"name": "default", "namespace": ns}
    platform.cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [policy, strategy]}))

    def condition(reason: str) -> Any:
        c = _runner_condition(platform, "lonely", ns)
        return c if c.get("reason") == reason else None

    def secret(data: dict[str, str]) -> None:
        platform.cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name, "namespace": ns}, "data": data}))

    try:
        missing = _wait(lambda: condition("SecretMissing"), 180, "RunnerReady to say SecretMissing")
        assert missing["status"] == "False" and missing["phase"] == "Pending", missing
        assert f"Secret {ns}/{secret_name} not found" in missing["message"], missing
        assert "KUBETRADE_DATABASE_URL" in missing["message"] and missing["message"] in missing["phaseMessage"]

        # a database Secret that points where no database listens: the runner starts, and exits
        secret({"url": base64.b64encode(b"postgresql://kubetrade@127.0.0.1:9/kubetrade").decode()})
        crashed = _wait(lambda: condition("CrashLoop"), 300, "RunnerReady to say CrashLoop")
        why = f"exited with code 1: Strategy {ns}/lonely: database unreachable: "
        assert why in crashed["message"] and "port 9 failed" in crashed["message"], crashed
        pods = platform.cluster.get_json("pods", "-n", ns, "-l", "kubetrade.io/owner-name=lonely")["items"]
        described = platform.cluster.kubectl("describe", "pod", "-n", ns, pods[0]["metadata"]["name"]).stdout
        assert "database unreachable" in described, described[-3000:]
        events = platform.cluster.get_json("events", "-n", ns, "--field-selector",
                                           "involvedObject.kind=Strategy,involvedObject.name=lonely")["items"]
        warned = [e for e in events if e["reason"] == "RunnerCrashLoop"]
        assert len(warned) == 1 and warned[0]["type"] == "Warning" and why in warned[0]["message"], events

        # the release's own Secret, and a new pod to read it: the database fault is gone
        secret(platform.get("secret", secret_name)["data"])
        old = {p["metadata"]["name"] for p in pods}
        platform.cluster.kubectl("delete", "pod", "-n", ns, "-l", "kubetrade.io/owner-name=lonely", "--wait=false")

        def moved_on() -> Any:
            c = _runner_condition(platform, "lonely", ns)
            fresh = c.get("reason") in ("Starting", "PodReady") and not any(n in c.get("message", "") for n in old)
            return c if fresh else None

        try:
            moved = _wait(moved_on, 300, "RunnerReady to follow the new pod past the database fault")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {_runner_condition(platform, 'lonely', ns)}") from exc
        assert "port 9" not in moved["message"] and moved["phase"] in ("Pending", "Paper"), moved
    finally:
        platform.cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_helm_upgrade_with_a_new_image_tag_rolls_the_pods(platform: Platform) -> None:
    """The same image under a new tag (what a release does): every kubetrade pod is replaced
    by one running the new tag, Ready; generated secrets stay as they were."""
    assert platform.cluster.node is not None
    image = next(v.split("=", 1)[1] for v in platform.values if v.startswith("image.repository="))
    tag = next(v.split("=", 1)[1] for v in platform.values if v.startswith("image.tag="))
    platform.cluster.node.ctr("images", "tag", f"{image}:{tag}", f"{image}:{tag}-next")
    db_secret = platform.get("secret", f"{platform.release}-db")["data"]
    old = {p["metadata"]["uid"] for c in ("operator", "api", "risk-manager", "executor-paper")
           for p in platform.pods(c)}
    values = [v if not v.startswith("image.tag=") else f"image.tag={tag}-next" for v in platform.values]
    args = ["upgrade", platform.release, str(CHART), "--namespace", platform.namespace, "--wait", "--timeout", "600s"]
    for v in values:
        args += ["--set", v]
    platform.helm.run(*args, timeout=700)
    platform.values = values
    for component in ("operator", "api", "risk-manager", "executor-paper"):
        pods = [p for p in platform.pods(component) if p["metadata"].get("deletionTimestamp") is None]
        assert pods and all(p["metadata"]["uid"] not in old and _ready(p) for p in pods), component
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {f"{image}:{tag}-next"}, component
    assert platform.get("secret", f"{platform.release}-db")["data"] == db_secret
    # the operator rolls the runners it owns onto the new image too
    _wait(lambda: all(p["spec"]["containers"][0]["image"] == f"{image}:{tag}-next" and _ready(p)
                      for p in platform.get("pods")["items"] if p["metadata"]["name"].startswith("strategy-")),
          300, "the runner pods on the new tag")


def test_helm_uninstall_removes_the_release_and_keeps_the_crds(platform: Platform) -> None:
    platform.helm.run("uninstall", platform.release, "--namespace", platform.namespace, "--wait", timeout=400)
    left = [d["metadata"]["name"] for d in platform.get("deployments")["items"]
            if d["metadata"]["name"].startswith(f"{platform.release}-")]
    assert left == []
    for crd in ("strategies", "goals", "riskpolicies", "collectors"):
        platform.cluster.kubectl("get", "crd", f"{crd}.kubetrade.io")
    assert platform.cluster.kubectl("get", "validatingwebhookconfiguration", "validate.kubetrade.io",
                                    check=False).returncode != 0
