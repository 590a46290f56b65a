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


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_operator_works_under_exactly_the_chart_s_rbac(kube, nats_url, namespace, tmp_path, helm, mode) -> None:
    """The operator as the chart's ServiceAccount with the chart's rendered RBAC, in both modes:
    cluster-wide (operator.watchNamespaces empty), and one Role per watched namespace.  Least
    privilege that is enough: everything reconciles, nothing is denied, and what it must not do
    it cannot (Secrets, another webhook configuration, namespaces it does not watch)."""
    import uuid

    from tests.support.rbac import as_service_account, can_i, chart_rbac

    install_evolution_role(kube)
    release = f"rbac{uuid.uuid4().hex[:6]}"
    watch = [namespace] if mode == "namespaced" else []
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(chart_rbac(helm, release, "default", watch)))
    # The chart creates the webhook configuration (empty) and lets the operator patch only it.
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "validate.kubetrade.io"}, "webhooks": []}))
    restricted = as_service_account(kube, f"{release}-operator", "default", tmp_path / "operator.kubeconfig")
    other = f"other-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", other)
    refused = [
        ("get", "secrets", "-n", namespace),
        ("delete", "deployments", "-n", namespace),
        ("create", "strategies", "-n", namespace),
        ("create", "roles", "-n", namespace),
        ("patch", "validatingwebhookconfigurations/some-other-webhook"),
        ("create", "validatingwebhookconfigurations"),
        ("update", "leases", "-n", namespace),
        ("delete", "pods", "-n", namespace),  # it reads its runner pods (why a runner cannot run), never deletes
    ]
    if mode == "namespaced":
        refused += [("create", "deployments", "-n", other), ("list", "strategies", "--all-namespaces"),
                    ("list", "namespaces")]
    for args in refused:
        assert not can_i(kube, restricted, *args), f"the operator may {' '.join(args)}"
    assert can_i(kube, restricted, "patch", "validatingwebhookconfigurations/validate.kubetrade.io")
    assert can_i(kube, restricted, "create", "deployments", "-n", namespace)

    op = OperatorProcess(kube, nats_url, tmp_path / "e", name=f"op-{mode}", kubeconfig=restricted,
                         namespaces=tuple(watch))
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
        # The webhook is registered through the one configuration it may patch, and it answers.
        refusal = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", check=False,
                               input=yaml.safe_dump(strategy("bad", exchange="notanexchange")))
        assert "unknown exchange" in refusal.stderr, refusal.stderr
        denials = [line for line in op.log().splitlines() if f"system:serviceaccount:default:{release}" in line]
        assert not denials, denials[0][:500]  # an RBAC denial names the user; terminating namespaces do not
    finally:
        op.stop()
        kube.kubectl("delete", "namespace", other, "--wait=false", check=False)


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
