"""One judgement of a manifest, wherever it enters: the API server with the admission webhook,
``kubetrade validate``, and the operator's reconcile when the webhook was not there.

The corpus (``tests/support/bad_manifests.py``) has one mistake per manifest; the examples
and a few more good ones must pass everywhere, so no path can pass by refusing everything.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.operator.conftest import wait_status
from tests.support.bad_manifests import BAD, GOOD

pytestmark = pytest.mark.kube


def _write(folder: Path, cases: list[tuple]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case_id, doc, *_ in cases:
        path = folder / f"{case_id}.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        paths[case_id] = path
    return paths


def validate_verdicts(paths: dict[str, Path]) -> dict[str, tuple[bool, str]]:
    """What ``kubetrade validate`` says of each file: (valid, its output for that file)."""
    ran = subprocess.run([sys.executable, "-m", "kubetrade.cli", "validate", *map(str, paths.values())],
                         capture_output=True, text=True, timeout=300)
    out: dict[str, tuple[bool, str]] = {}
    lines = (ran.stdout + ran.stderr).splitlines()
    for case_id, path in paths.items():
        mine = [line for line in lines if line.startswith(f"{path}#")]
        assert mine, f"kubetrade validate said nothing about {case_id}: {ran.stdout}{ran.stderr}"
        valid = all(line.endswith(": valid") for line in mine)
        out[case_id] = (valid, "\n".join(mine))
    return out


def server_verdict(kube, namespace: str, path: Path) -> tuple[bool, str]:
    """The API server's answer, admission webhooks included (a server-side dry run stores nothing)."""
    proc = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    return proc.returncode == 0, proc.stderr.strip()


def test_validate_agrees_with_the_api_server_and_its_webhook(kube, namespace, operator, tmp_path) -> None:
    cases = BAD + [(case_id, doc, None) for case_id, doc in GOOD]
    paths = _write(tmp_path / "manifests", cases)
    offline = validate_verdicts(paths)
    served = {case_id: server_verdict(kube, namespace, path) for case_id, path in paths.items()}

    disagreements = [c for c in paths if offline[c][0] != served[c][0]]
    bad_ids = [c[0] for c in BAD]
    accepted_by_server = [c for c in bad_ids if served[c][0]]
    accepted_offline = [c for c in bad_ids if offline[c][0]]
    good_refused = [c for c, _ in GOOD if not (served[c][0] and offline[c][0])]
    print(f"\n{len(BAD)} bad and {len(GOOD)} good manifests: {len(disagreements)} disagreements between "
          f"kubetrade validate and the API server; bad accepted by the API server + webhook: "
          f"{len(accepted_by_server)}, by kubetrade validate: {len(accepted_offline)}")
    for c in disagreements:
        print(f"  {c}: validate {'accepts' if offline[c][0] else 'refuses'}, "
              f"API server {'accepts' if served[c][0] else 'refuses'}")
    assert not good_refused, {c: (offline[c][1], served[c][1]) for c in good_refused}
    assert not disagreements
    assert not accepted_by_server

    # The refusal names the problem, in the same words on both paths where the words are ours.
    unclear = [
        f"{case_id}: {where} said {message[-400:]!r}, not {expected!r}"
        for case_id, _, expected in BAD
        if expected is not None
        for where, (_, message) in (("validate", offline[case_id]), ("API server", served[case_id]))
        if expected not in message.lower()
    ]
    assert not unclear, "\n".join(unclear)
    # A refused field's value is never echoed without bound (a 20 kB name comes back short).
    assert max(len(served[c][1]) for c in bad_ids) < 4000


def _renamed(case_id: str, doc: dict) -> dict:
    """Each case under a name of its own, unless the name is what is wrong with it."""
    doc = dict(doc)
    if "name" not in case_id:
        doc["metadata"] = {**doc.get("metadata", {}), "name": case_id[:63]}
    return doc


def _condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def test_without_the_webhook_every_accepted_bad_resource_is_marked_invalid(kube, nats_url, namespace, tmp_path
                                                                           ) -> None:
    """The webhook fails open (failurePolicy Ignore) and may be down: what the API server then
    admits, every reconcile refuses in the same words, with a condition and a Warning Event,
    and without retrying it in a loop."""
    from kubetrade_testbed.operator import OperatorProcess
    from tests.operator.conftest import install_evolution_role
    from tests.support.bad_manifests import example

    kube.kubectl("delete", "validatingwebhookconfiguration", "validate.kubetrade.io", "--ignore-not-found")
    install_evolution_role(kube)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(example("riskpolicy.yaml")))
    accepted: dict[str, dict] = {}
    for case_id, doc, _ in BAD:
        renamed = _renamed(case_id, doc)
        proc = kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(renamed, allow_unicode=True),
                            check=False)
        if proc.returncode == 0:
            accepted[case_id] = renamed
    print(f"\nwithout the webhook the API server admitted {len(accepted)} of {len(BAD)} bad manifests")
    assert accepted, "the corpus has no case only the semantic checks catch"

    op = OperatorProcess(kube.kubeconfig, nats_url, tmp_path / "op", name="op-invalid", webhook=False)
    op.start()
    try:
        silent: list[str] = []
        plurals = {"Strategy": "strategies", "Goal": "goals", "RiskPolicy": "riskpolicies", "Collector": "collectors"}

        def marked() -> bool:
            silent.clear()
            for case_id, doc in accepted.items():
                got = kube.get_json(plurals[doc["kind"]], doc["metadata"]["name"], "-n", namespace)
                ready = _condition(got.get("status") or {}, "Ready")
                if not (ready.get("status") == "False" and ready.get("reason") == "InvalidSpec"):
                    silent.append(case_id)
            return not silent

        with contextlib.suppress(TimeoutError):
            kube.wait_for(marked, 90, "every admitted bad resource marked InvalidSpec")
        print(f"admitted bad resources the operator did not mark invalid: {len(silent)}: {silent}")
        assert not silent

        events = kube.get_json("events", "-n", namespace)["items"]
        warned = {e["involvedObject"]["name"] for e in events if e.get("type") == "Warning"}
        unwarned = [c for c, d in accepted.items() if d["metadata"]["name"] not in warned]
        assert not unwarned, f"no Warning Event for {unwarned}"
        # Not an endless retry: the refusal is a status, not an exception kopf backs off and repeats.
        log = op.log()
        assert not re.search(r"Handler .* failed with an exception", log), log[-3000:]
    finally:
        op.stop()


def test_a_child_the_api_server_refuses_becomes_a_condition_and_an_event(kube, namespace, operator) -> None:
    """A valid resource whose children the cluster refuses (here a ValidatingAdmissionPolicy: in
    real clusters a quota, Kyverno, Gatekeeper) says so in its status and an Event, once, instead
    of failing its handler and retrying it in the operator's log forever."""
    from tests.support.bad_manifests import example

    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": f"no-workloads-{namespace}"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [
                {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["cronjobs"]},
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["deployments"]},
            ]},
            "validations": [{"expression": "false", "message": "workloads are not allowed in this namespace"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": f"no-workloads-{namespace}"},
        "spec": {
            "policyName": policy["metadata"]["name"],
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([policy, binding]))
    try:
        # The policy takes a moment to be loaded: a probe Deployment is refused once it is.
        probe = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe", "namespace": namespace},
                 "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                     "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
        kube.wait_for(lambda: kube.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe),
                                           check=False).returncode != 0, 60, "the admission policy in force")
        strategy = example("strategy-ema-rsi.yaml")
        strategy["spec"].pop("goalRef")
        kube.kubectl("apply", "-n", namespace, "-f", "-",
                     input=yaml.safe_dump_all([example("riskpolicy.yaml"), strategy, example("goal.yaml")]))
        for kind, name in (("strategy", "btc-ema-rsi"), ("goal", "monthly-8pct")):
            got = wait_status(kube, kind, name, namespace,
                              lambda s, _: _condition(s, "Ready").get("reason") == "ChildRefused")
            assert "workloads are not allowed in this namespace" in _condition(got["status"], "Ready")["message"]
        time.sleep(8)  # a few resyncs (5 s in tests): the refusal stays a status, not a retried exception
        events = [e for e in kube.get_json("events", "-n", namespace)["items"] if e.get("type") == "Warning"]
        for name in ("btc-ema-rsi", "monthly-8pct"):
            mine = [e for e in events if e["involvedObject"]["name"] == name]
            assert mine and all(e.get("count", 1) <= 2 for e in mine), mine
        failures = [line for line in operator.log().splitlines()
                    if namespace in line and "failed with an exception" in line]
        assert not failures, failures[:3]
    finally:
        kube.kubectl("delete", "validatingadmissionpolicybinding", binding["metadata"]["name"], "--ignore-not-found")
        kube.kubectl("delete", "validatingadmissionpolicy", policy["metadata"]["name"], "--ignore-not-found")
