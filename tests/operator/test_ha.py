"""One active operator: the Lease hands over when the leader dies; a restart mid-reconcile converges."""

from __future__ import annotations

import pytest
import yaml

from tests.operator.conftest import OperatorProcess, install_evolution_role, wait_status
from tests.operator.test_reconcile import apply, example, strategy

pytestmark = pytest.mark.kube


def _lease_holder(kube) -> str | None:
    proc = kube.kubectl("get", "lease", "kubetrade-operator", "-n", "default", "-o", "json", check=False)
    if proc.returncode:
        return None
    return yaml.safe_load(proc.stdout)["spec"].get("holderIdentity")


def test_standby_takes_over_when_the_leader_dies(kube, nats_url, namespace, tmp_path) -> None:
    first = OperatorProcess(kube, nats_url, tmp_path / "a", name="op-a")
    second = OperatorProcess(kube, nats_url, tmp_path / "b", name="op-b")
    first.start()
    second.start(wait_webhook=False)
    try:
        kube.wait_for(lambda: _lease_holder(kube) is not None, 30, "a lease holder")
        holder = _lease_holder(kube)
        apply(kube, namespace, example("riskpolicy.yaml"), strategy("one"))
        wait_status(kube, "strategy", "one", namespace, lambda s, _: s.get("phase") == "Paper")
        assert "waiting for the leader lease" in second.log()
        assert "leader lease acquired" not in second.log(), "the standby must not act while the leader renews"

        first.kill()  # no clean release: the standby waits for the lease to expire
        kube.wait_for(lambda: _lease_holder(kube) not in (None, holder), 60, "the standby to take the lease")
        assert "leader lease acquired" in second.log()
        apply(kube, namespace, strategy("two"))
        wait_status(kube, "strategy", "two", namespace, lambda s, _: s.get("phase") == "Paper", timeout=60)
        lease = yaml.safe_load(kube.kubectl("get", "lease", "kubetrade-operator", "-n", "default", "-o", "yaml").stdout)
        assert lease["spec"]["leaseTransitions"] >= 1
    finally:
        first.stop()
        second.stop()
    # A clean stop releases the lease so the next operator need not wait.
    assert _lease_holder(kube) is None


def test_restart_mid_reconcile_converges_without_duplicates(kube, nats_url, namespace, tmp_path) -> None:
    names = [f"burst-{i:02d}" for i in range(25)]
    op = OperatorProcess(kube, nats_url, tmp_path / "c", name="op-c")
    op.start()
    apply(kube, namespace, example("riskpolicy.yaml"), *[strategy(n) for n in names])
    kube.wait_for(
        lambda: (
            kube.kubectl("get", "deployments", "-n", namespace, "--no-headers", check=False).stdout.count(
                "strategy-burst"
            )
            >= 3
        ),
        60,
        "the first runners",
    )
    op.kill()  # mid-reconcile
    restarted = OperatorProcess(kube, nats_url, tmp_path / "d", name="op-d")
    restarted.start()
    try:
        for n in names:
            wait_status(kube, "strategy", n, namespace, lambda s, _: s.get("phase") == "Paper", timeout=120)
        deployments = kube.get_json("deployments", "-n", namespace)["items"]
        assert sorted(d["metadata"]["name"] for d in deployments) == sorted(f"strategy-{n}" for n in names)
        replicasets = kube.get_json("replicasets", "-n", namespace)["items"]
        owners = [rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets]
        assert len(owners) == len(set(owners)) == len(names), "exactly one ReplicaSet per runner"
        pods = kube.get_json("pods", "-n", namespace)["items"]
        assert len(pods) == len(names), "never two runners of one strategy"
        events = kube.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        assert events.count('"reason": "PhasePaper"') >= len(names)
    finally:
        restarted.stop()


def test_operator_works_with_exactly_its_documented_permissions(kube, nats_url, namespace, tmp_path) -> None:
    """Run the operator as a ServiceAccount bound to rbac.RULES only: least privilege that is enough."""
    import json

    from kubetrade_operator.rbac import cluster_role

    install_evolution_role(kube)
    role = cluster_role("kubetrade-operator-test")
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator", "namespace": "default"}}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "kubetrade-operator-test"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "default"}],
    }
    kube.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, sa, binding]})
    )
    token = kube.kubectl("create", "token", "operator", "-n", "default", "--duration=1h").stdout.strip()
    config = json.loads(kube.kubeconfig.read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    restricted = tmp_path / "operator.kubeconfig"
    restricted.write_text(json.dumps(config))
    for verb, what in (("get", "secrets"), ("delete", "deployments"), ("create", "strategies"), ("create", "roles"),
                      ("delete", "pods")):
        answer = kube.kubectl("auth", "can-i", verb, what, f"--kubeconfig={restricted}", check=False).stdout.strip()
        assert answer == "no", f"the operator may {verb} {what}"

    op = OperatorProcess(kube, nats_url, tmp_path / "e", name="op-e", kubeconfig=restricted)
    op.start()
    try:
        apply(
            kube,
            namespace,
            example("riskpolicy.yaml"),
            strategy("least"),
            example("goal.yaml"),
            example("collector-replay.yaml"),
        )
        wait_status(kube, "strategy", "least", namespace, lambda s, _: s.get("phase") == "Paper")
        wait_status(kube, "goal", "monthly-8pct", namespace, lambda s, _: s.get("cronJob"))
        wait_status(kube, "collector", "replay-binance", namespace, lambda s, _: s.get("phase") == "Running")
        wait_status(kube, "riskpolicy", "default", namespace, lambda s, _: s.get("publishedRevision"))
        denials = [line for line in op.log().splitlines() if "system:serviceaccount:default:operator" in line]
        assert not denials, denials[0][:500]  # an RBAC denial names the user; terminating namespaces do not
    finally:
        op.stop()


def test_operator_runs_without_the_webhook(kube, nats_url, namespace, tmp_path) -> None:
    """No --webhook-port (local development, or a cluster relying on the CRD's CEL rules alone):
    kopf must not be handed admission handlers it has no server for."""
    from kubetrade_testbed.operator import OperatorProcess as Bare

    kube.kubectl("delete", "validatingwebhookconfiguration", "validate.kubetrade.io", "--ignore-not-found")
    op = Bare(kube.kubeconfig, nats_url, tmp_path / "bare", name="op-bare", webhook=False)
    op.start()
    try:
        apply(kube, namespace, example("riskpolicy.yaml"), strategy("plain"))
        wait_status(kube, "strategy", "plain", namespace, lambda s, _: s.get("phase") == "Paper")
        assert op.process.running and "no admission server" not in op.log()
    finally:
        op.stop()
