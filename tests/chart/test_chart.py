"""The Helm chart, tested with a real Helm against the real test kube-apiserver.

What a user relies on: a bare ``helm install`` works; wrong values are refused with the
path of the value; every pod passes the "restricted" Pod Security Standard (enforced by
the API server, not just inspected); the optional objects (ServiceMonitors, rules,
AlertmanagerConfig, cert-manager certificates) validate against their real CRDs; upgrades
keep generated secrets; uninstall keeps the CRDs (real installs on a real node:
tests/node/test_platform.py); RBAC grants what the operator needs and
no more.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrade.messaging import auth
from kubetrade_testbed.kube import KubeControlPlane
from tests.chart.conftest import CHART, REPO, THIRD_PARTY_APIS, Helm

ALL_CHANNELS = [
    *(f"alerting.channels.{r}.enabled=true" for r in ("email", "telegram", "discord", "slack", "webhook", "sms")),
    "alerting.channels.telegram.chatId=-1001234567890",
    "alerting.channels.email.to=oncall@example.org",
    "alerting.channels.email.from=kubetrade@example.org",
    "alerting.channels.email.smarthost=smtp.example.org:587",
    "alerting.channels.email.authUsername=kubetrade@example.org",
    "alerting.channels.sms.from=MG0123456789abcdef0123456789abcdef",
]
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "external-db": [
        "database.bundled=false", "database.external.existingSecret=pg-dsn",
        "nats.bundled=false", "nats.external.url=nats://nats.messaging.svc:4222",
    ],
    "live-executor-off": ["executors.live.enabled=false"],
    "cert-manager": ["webhook.certManager.enabled=true"],
    "observability": [
        "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true",
        "alerting.alertmanagerConfig.enabled=true", "alerting.alertmanagerUrl=http://alertmanager.monitoring:9093",
        "tracing.enabled=true", "tracing.otlpEndpoint=http://otel-collector.monitoring:4318",
        *ALL_CHANNELS,
    ],
    "alertmanager": ["alerting.alertmanager.enabled=true", "alerting.channelLimits.sms=10", *ALL_CHANNELS],
    "highly-available": ["operator.replicas=2", "api.replicas=3", "nats.replicas=3"],
    "minimal": ["webhook.enabled=false", "networkPolicy.enabled=false", "api.enabled=false",
                "dashboards.enabled=false", "crds.install=false"],
}

POD_OWNERS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def _sets(args: list[str]) -> list[str]:
    out = []
    for s in args:
        out += ["--set", s]
    return out


def _pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]) for d in docs if d["kind"] in POD_OWNERS]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_passes_for_every_variant(helm: Helm, variant: str) -> None:
    out = helm.run("lint", str(CHART), "--strict", *_sets(VARIANTS[variant]))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("api.replicas=two", "at '/api/replicas': got string, want integer"),
        ("logLevel=loud", "at '/logLevel': value must be one of 'debug', 'info', 'warning', 'error'"),
        ("apii.port=1", "additional properties 'apii' not allowed"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("tracing.samplerRatio=2", "at '/tracing/samplerRatio'"),
        ("nats.replicas=2", "at '/nats/replicas'"),  # two NATS nodes cannot form a JetStream quorum
        ("database.bundled=false", "at '/database/external/existingSecret'"),
        ("tracing.enabled=true", "at '/tracing/otlpEndpoint'"),
        ("nats.storage=lots", "at '/nats/storage'"),
    ],
)
def test_schema_rejects_wrong_values_naming_the_value(helm: Helm, bad: str, message: str) -> None:
    out = helm.run("template", "kt", str(CHART), "--set", bad, check=False)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def _leaves(values: Any, path: str = "") -> list[str]:
    if isinstance(values, dict) and values and not path.endswith(("resources", "Selector", "issuerRef")):
        return [p for k, v in values.items() for p in _leaves(v, f"{path}.{k}" if path else k)]
    return [path]


def test_every_value_is_documented_in_values_and_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    text = (CHART / "values.yaml").read_text()
    missing = []
    for path in _leaves(values):
        node = schema
        for key in path.split("."):
            node = node["properties"][key]
        if not node.get("description"):
            missing.append(path)
        leaf = path.split(".")[-1]
        # the key's line is preceded (directly, or after continuation lines) by a "# --" comment
        lines = text.splitlines()
        idx = [i for i, line in enumerate(lines) if line.strip().startswith(f"{leaf}:")]
        documented = any(
            any(lines[j].strip().startswith("# --") for j in range(max(0, i - 4), i)) for i in idx
        )
        if not documented:
            missing.append(f"{path} (no '# --' comment)")
    assert not missing, f"undocumented values: {missing}"


def test_pods_are_restricted_with_read_only_root_filesystems(helm: Helm) -> None:
    for variant, args in VARIANTS.items():
        for where, template in _pod_templates(helm.template(*args)):
            spec = template["spec"]
            psc = spec.get("securityContext") or {}
            assert psc.get("runAsNonRoot") is True, (variant, where)
            assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}, (variant, where)
            assert not spec.get("hostNetwork") and not spec.get("hostPID"), (variant, where)
            for c in spec["containers"] + spec.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, (variant, where, c["name"])
                assert sc["readOnlyRootFilesystem"] is True, (variant, where, c["name"])
                assert sc["capabilities"] == {"drop": ["ALL"]}, (variant, where, c["name"])
                assert c.get("resources", {}).get("requests"), (variant, where, c["name"])


def test_crds_are_the_generated_ones_upgradable_and_kept_on_uninstall(helm: Helm) -> None:
    rendered = {d["metadata"]["name"]: d for d in helm.template() if d["kind"] == "CustomResourceDefinition"}
    source = {}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        source[doc["metadata"]["name"]] = doc
    assert rendered.keys() == source.keys()
    for name, doc in source.items():
        assert rendered[name]["spec"] == doc["spec"], f"{name}: chart CRD differs from crds/"
        assert rendered[name]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not any(d["kind"] == "CustomResourceDefinition" for d in helm.template("crds.install=false"))


def test_generated_chart_files_are_up_to_date() -> None:
    """Dashboards and RBAC rules are generated from code (scripts/generate-chart-files.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", REPO / "scripts" / "generate-chart-files.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for name, text in generate.rbac_files().items():
        assert (CHART / "files" / "rbac" / name).read_text() == text, f"run scripts/generate-chart-files.py ({name})"
    for name, text in generate.nats_files().items():
        assert (CHART / "files" / "nats" / name).read_text() == text, f"run scripts/generate-chart-files.py ({name})"


def test_roles_are_the_components_own_rules_in_both_modes(helm: Helm) -> None:
    """Cluster-wide: ClusterRoles with everything.  operator.watchNamespaces set: a Role per watched
    namespace for the operator and the API, and cluster-wide only the cluster-scoped rules."""
    from kubetrade_operator import rbac

    def by_name(docs: list[dict[str, Any]], kind: str) -> dict[tuple[str, str | None], dict[str, Any]]:
        return {(d["metadata"]["name"], d["metadata"].get("namespace")): d for d in docs if d["kind"] == kind}

    wide = helm.template()
    cluster_roles = by_name(wide, "ClusterRole")
    everything = rbac.NAMESPACED + rbac.CLUSTER + rbac.CLUSTERWIDE
    assert cluster_roles[("kubetrade-operator", None)]["rules"] == rbac.rules(everything)
    assert cluster_roles[("kubetrade-api", None)]["rules"] == rbac.rules(rbac.API_RULES)
    assert cluster_roles[("kubetrade-evolution", None)]["rules"] == rbac.evolution_cluster_role()["rules"]
    assert by_name(wide, "Role")[("kubetrade-operator-lease", None)]["rules"] == rbac.rules(rbac.LEASE)
    assert {n for n, _ in by_name(wide, "Role")} == {"kubetrade-operator-lease", "kubetrade-install"}

    narrow = helm.template("operator.watchNamespaces={team-a,team-b}")
    cluster_roles = by_name(narrow, "ClusterRole")
    assert cluster_roles[("kubetrade-operator", None)]["rules"] == rbac.rules(rbac.CLUSTER)
    assert ("kubetrade-api", None) not in cluster_roles
    roles = by_name(narrow, "Role")
    for ns in ("team-a", "team-b"):
        assert roles[("kubetrade-operator", ns)]["rules"] == rbac.rules(rbac.NAMESPACED)
        assert roles[("kubetrade-api", ns)]["rules"] == rbac.rules(rbac.API_RULES)
    bindings = by_name(narrow, "RoleBinding")
    assert {ns for (_, ns) in bindings} == {"team-a", "team-b", None}
    webhook_rule = next(r for r in cluster_roles[("kubetrade-operator", None)]["rules"]
                        if "validatingwebhookconfigurations" in r["resources"])
    assert webhook_rule["resourceNames"] == ["validate.kubetrade.io"] and "create" not in webhook_rule["verbs"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_gitops_render_is_the_same_every_time(helm: Helm, variant: str) -> None:
    """Argo CD and Flux render without a cluster to look in: with `lookup` + `randAlphaNum` every
    render made a new database password and webhook certificate (so every sync changed them).
    Now two renders are identical, and no Secret is rendered at all: the install Job makes them."""
    first, second = helm.template(*VARIANTS[variant]), helm.template(*VARIANTS[variant])
    assert first == second
    assert not [d["metadata"]["name"] for d in first if d["kind"] == "Secret"]


def test_no_credentials_in_values_or_rendered_objects(helm: Helm) -> None:
    """Secrets are referenced by name, never written by the chart (the install Job makes them)."""
    for variant, args in VARIANTS.items():
        for d in helm.template(*args):
            assert d["kind"] != "Secret", (variant, d["metadata"]["name"])
            for _where, template in _pod_templates([d]) if d["kind"] in POD_OWNERS else []:
                for c in template["spec"]["containers"]:
                    for env in c.get("env", []):
                        if env["name"] in ("KUBETRADE_DATABASE_SECRET", "KUBETRADE_NATS_SECRET_PREFIX"):
                            continue  # the *names* of the Secrets child pods read the DSN and NATS passwords from
                        if any(w in env["name"] for w in ("PASSWORD", "SECRET", "API_KEY", "DATABASE_URL")):
                            assert "valueFrom" in env, (variant, c["name"], env["name"])
            for rule in d.get("rules", []) if d["kind"] in ("Role", "ClusterRole") else []:
                if "secrets" not in rule.get("resources", []):
                    continue
                # only the install Job touches Secrets: create (which cannot overwrite) and read one by name
                assert d["kind"] == "Role" and d["metadata"]["name"] == "kubetrade-install", (variant, rule)
                assert rule["verbs"] == ["create"] or (
                    rule["verbs"] == ["get"] and rule["resourceNames"] == ["kubetrade-admin-key"]), (variant, rule)


@pytest.mark.kube
def test_every_variant_applies_to_the_real_api_server(
    helm: Helm, kube: KubeControlPlane, third_party_crds: list[str], namespace: str
) -> None:
    """Server-side dry run: the API server validates every object against its real schema."""
    for variant, args in VARIANTS.items():
        apis = [flag for api in THIRD_PARTY_APIS for flag in ("--api-versions", api)]
        manifest = helm.run("template", f"kt-{variant[:12]}", str(CHART), "--namespace", namespace, *apis,
                            *_sets(args)).stdout
        out = kube.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-n", namespace,
                           "-f", "-", input=manifest, check=False)
        assert out.returncode == 0, f"{variant}:\n{out.stderr}"
        kinds = {line.split("/")[0] for line in out.stdout.splitlines() if line.strip()}
        if variant == "observability":
            assert {"servicemonitor.monitoring.coreos.com", "podmonitor.monitoring.coreos.com",
                    "prometheusrule.monitoring.coreos.com",
                    "alertmanagerconfig.monitoring.coreos.com"} <= kinds, kinds
        if variant == "cert-manager":
            assert {"certificate.cert-manager.io", "issuer.cert-manager.io"} <= kinds, kinds


def _run_install_job(kube: KubeControlPlane, helm: Helm, namespace: str, release: str, tmp: Path) -> dict[str, str]:
    """Run the release's install-secrets Job's command (as the chart renders it) as the Job's own
    ServiceAccount: it may create Secrets and nothing more.  Secret name -> created or kept."""
    import os
    import subprocess
    import sys

    from tests.support.rbac import as_service_account, can_i

    job = next(d for d in helm.template(namespace=namespace, release=release)
               if d["kind"] == "Job" and d["metadata"]["name"] == f"{release}-install-secrets")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    kubeconfig = as_service_account(kube, f"{release}-install", namespace, tmp / f"install-{release}.kubeconfig")
    assert can_i(kube, kubeconfig, "create", "secrets", "-n", namespace)
    assert not can_i(kube, kubeconfig, "get", "secrets", "-n", namespace)
    assert not can_i(kube, kubeconfig, "update", f"secrets/{release}-db", "-n", namespace)
    ran = subprocess.run([sys.executable, "-m", "kubetrade.cli", *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return {line.split()[2].split("/", 1)[1].rstrip(":"): line.split()[0] for line in ran.stdout.splitlines()}


def _secret(kube: KubeControlPlane, namespace: str, name: str) -> dict[str, str]:
    data = kube.get_json("secret", name, "-n", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


@pytest.mark.kube
def test_install_job_makes_every_secret_once_as_its_own_service_account(
    helm: Helm, kube: KubeControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The pre-install/pre-upgrade Job's command, as the chart renders it, run as the Job's own
    ServiceAccount with the chart's Role (a real install runs it in a pod: tests/node/test_platform.py).
    It creates every Secret of the release, may not read or replace one, and a second run (the next
    upgrade) keeps them all as they were."""
    release = f"kt{uuid.uuid4().hex[:6]}"
    rbac = [d for d in helm.template(namespace=namespace, release=release)
            if d["kind"] in ("ServiceAccount", "Role", "RoleBinding") and d["metadata"]["name"] == f"{release}-install"]
    assert len(rbac) == 3, rbac
    kube.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in rbac))
    made = _run_install_job(kube, helm, namespace, release, tmp_path)
    assert {f"{release}-nats-{r}" for r in auth.ROLES} | {f"{release}-db", f"{release}-webhook-cert",
                                                           f"{release}-api-pepper", f"{release}-order-signing"} \
        == set(made), made
    assert set(made.values()) == {"created"}, made
    db = _secret(kube, namespace, f"{release}-db")
    cert = _secret(kube, namespace, f"{release}-webhook-cert")
    assert len(db["password"]) >= 32 and db["password"] in db["url"]
    assert cert["tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert set(_run_install_job(kube, helm, namespace, release, tmp_path).values()) == {"kept"}, "never remade"
    assert _secret(kube, namespace, f"{release}-db") == db
    assert _secret(kube, namespace, f"{release}-webhook-cert") == cert


@pytest.mark.parametrize("replicas", [1, 3])
def test_bundled_nats_configuration_is_accepted_by_nats_server(helm: Helm, tmp_path: Path, replicas: int) -> None:
    """The rendered nats.conf, checked by the real nats-server (``-t``: test the configuration)."""
    import os
    import subprocess

    from kubetrade.localstack.servers.nats import nats_server_binary

    docs = helm.template(f"nats.replicas={replicas}")
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubetrade-nats")
    conf = tmp_path / "nats.conf"
    conf.write_text(config["data"]["nats.conf"].replace("/data/jetstream", str(tmp_path / "js")))
    # the passwords arrive as environment variables from the roles' Secrets, as in the StatefulSet
    nats = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "kubetrade-nats")
    container = nats["spec"]["template"]["spec"]["containers"][0]
    env_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
                if e["name"].startswith("NATS_PASSWORD_")}
    assert env_refs == {auth.password_variable(r): {"name": f"kubetrade-nats-{r}", "key": "password"}
                        for r in auth.ROLES}
    passwords = {r: f"pw-{r}" for r in auth.ROLES}
    env = {**os.environ, "POD_NAME": "kubetrade-nats-0", **{auth.password_variable(r): p for r, p in passwords.items()}}
    out = subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ("cluster {" in config["data"]["nats.conf"]) == (replicas > 1)
    if replicas > 1:
        return
    # Run it: each role gets in with its own password and nothing else; a runner may not submit orders.
    import asyncio

    import nats as nats_client

    from kubetrade.localstack.servers import free_port
    from kubetrade.localstack.servers.processes import ManagedProcess, port_open

    port = free_port()
    conf.write_text(conf.read_text().replace("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}")
                    .replace("http: 0.0.0.0:8222", f"http: 127.0.0.1:{free_port()}"))
    server = ManagedProcess("nats-chart", [nats_server_binary(), "-c", str(conf)], tmp_path / "nats.log", env=env)
    server.start()
    try:
        server.wait_ready(lambda: port_open(port), 30)

        async def probe() -> list[str]:
            url = f"nats://127.0.0.1:{port}"
            with pytest.raises(Exception, match=r"(?i)authori"):
                await nats_client.connect(url, allow_reconnect=False, connect_timeout=3)
            with pytest.raises(Exception, match=r"(?i)authori"):
                await nats_client.connect(url, user="runner", password=passwords["risk-manager"],
                                          allow_reconnect=False, connect_timeout=3)
            errors: list[str] = []

            async def on_error(exc: Exception) -> None:
                errors.append(str(exc))

            for role in auth.ROLES:
                nc = await nats_client.connect(url, user=role, password=passwords[role], allow_reconnect=False,
                                               error_cb=on_error)
                await nc.close()
            nc = await nats_client.connect(url, user="runner", password=passwords["runner"], error_cb=on_error)
            await nc.publish("orders.paper.submit", b"{}")
            await nc.flush()
            await asyncio.sleep(0.5)
            await nc.close()
            return errors

        errors = asyncio.run(probe())
        assert any('permissions violation for publish to "orders.paper.submit"' in e.lower() for e in errors), errors
    finally:
        server.stop()


@pytest.mark.parametrize("watch", [[], ["team-a", "team-b"]])
def test_network_policies_select_namespaces_and_operator_labels(helm: Helm, watch: list[str]) -> None:
    """NATS and the database admit a peer only by its namespace (the immutable metadata.name, or a
    namespace label only administrators set) *and* the labels the chart or the operator put on the
    pod; NATS' monitoring port and every metrics port only the monitoring namespace."""
    sets = [f"operator.watchNamespaces={{{','.join(watch)}}}"] if watch else []
    policies = {d["metadata"]["name"]: d for d in helm.template(*sets) if d["kind"] == "NetworkPolicy"}
    workload_ns = ({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": watch}]}
                   if watch else {"matchLabels": {"kubetrade.io/workloads": "enabled"}})
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    release_ns = {"matchLabels": {"kubernetes.io/metadata.name": "kubetrade"}}
    for name, port in (("kubetrade-nats", 4222), ("kubetrade-timescaledb", 5432)):
        (rule,) = [r for r in policies[name]["spec"]["ingress"] if r["ports"] == [{"port": port, "protocol": "TCP"}]]
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector", "podSelector"}, (name, peer)
            assert peer["namespaceSelector"] in (release_ns, workload_ns), (name, peer)
            labels = peer["podSelector"].get("matchLabels", {})
            assert labels.get("app.kubernetes.io/instance") == "kubetrade" or labels.get(
                "app.kubernetes.io/managed-by") == "kubetrade-operator" or labels.get(
                "app.kubernetes.io/component") == "backtest", (name, peer)
        components = {v for peer in rule["from"] for e in peer["podSelector"].get("matchExpressions", [])
                      for v in e["values"]}
        # the runners and collectors of the namespaces the operator serves, the release's own included
        # when it watches the whole cluster (a Strategy applied next to the release must reach NATS)
        operator_made = {json.dumps(p["namespaceSelector"], sort_keys=True) for p in rule["from"]
                         if p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/managed-by")}
        assert operator_made == {json.dumps(ns, sort_keys=True) for ns in ([workload_ns] if watch else
                                                                            [release_ns, workload_ns])}, (name, rule)
        if port == 4222:
            assert components == {"operator", "api", "risk-manager", "goal-manager", "executor-paper",
                                  "executor-live", "strategy-runner", "collector"}
    (monitor,) = [r for r in policies["kubetrade-nats"]["spec"]["ingress"] if r["ports"][0]["port"] == 8222]
    assert monitor["from"] == monitoring
    assert policies["kubetrade-metrics"]["spec"]["ingress"][0]["from"] == monitoring
    refused = helm.run("template", "kubetrade", str(CHART), "--set", "networkPolicy.metricsNamespaceSelector=null",
                       check=False)
    assert refused.returncode != 0 and "metricsNamespaceSelector" in refused.stderr


def test_monitoring_objects_only_where_their_api_exists(helm: Helm) -> None:
    """ServiceMonitors, PodMonitors, the PrometheusRule and the AlertmanagerConfig are rendered only
    where the Prometheus Operator's API is (.Capabilities), and NOTES says what was left out;
    cert-manager asked for where it is not is refused in words."""
    observability = VARIANTS["observability"]
    monitoring = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "AlertmanagerConfig"}
    assert monitoring <= {d["kind"] for d in helm.template(*observability)}
    assert not monitoring & {d["kind"] for d in helm.template(*observability, api_versions=())}
    rules = next(d for d in helm.template("metrics.prometheusRule.enabled=true") if d["kind"] == "PrometheusRule")
    alerts = [r for g in rules["spec"]["groups"] for r in g["rules"]]
    assert alerts and all(r["annotations"]["runbook_url"].startswith(
        "https://github.com/kubetrade/kubetrade/blob/main/docs/runbooks.md#") for r in alerts)
    refused = helm.run("template", "kubetrade", str(CHART), "--set", "webhook.certManager.enabled=true", check=False)
    assert refused.returncode != 0 and "cert-manager.io/v1" in refused.stderr


def test_every_alert_has_a_runbook_section() -> None:
    """runbook_url on every alert, pointing at a section of docs/runbooks.md that exists."""
    import re

    rules = yaml.safe_load((CHART / "files" / "prometheus" / "kubetrade-rules.yaml").read_text())
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in (REPO / "docs" / "runbooks.md").read_text().splitlines() if line.startswith("## ")}
    for group in rules["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"].get("runbook_url", "")
            assert url == f"docs/runbooks.md#{rule['alert'].lower()}", rule["alert"]
            assert rule["alert"].lower() in anchors, f"docs/runbooks.md has no section for {rule['alert']}"


def test_the_training_image_reaches_the_operator_and_the_main_image_stays_without_jax(helm: Helm) -> None:
    """image.train: the image of Goals' evolution jobs that train PPO policies; kubetrade-train at the chart's
    version by default, like the main image; set empty, there is none (such Goals are then refused:
    NoTrainingImage); never the main image."""
    def operator_env(*sets: str) -> dict[str, Any]:
        docs = helm.template(*sets)
        dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"))
        return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    default = operator_env()
    assert default["KUBETRADE_TRAIN_IMAGE"] == f"kubetrade-train:{chart['appVersion']}"
    assert default["KUBETRADE_IMAGE"] == f"kubetrade:{chart['appVersion']}"
    assert operator_env("image.train.repository=")["KUBETRADE_TRAIN_IMAGE"] == ""
    assert operator_env("image.train.repository=", "image.train.tag=v7")["KUBETRADE_TRAIN_IMAGE"] == ""
    # the main image's tag does not move the training image's (each defaults to appVersion on its own)
    assert operator_env("image.tag=v9")["KUBETRADE_TRAIN_IMAGE"] == f"kubetrade-train:{chart['appVersion']}"
    env = operator_env("image.train.repository=registry.example/kubetrade-train")
    assert env["KUBETRADE_TRAIN_IMAGE"] == f"registry.example/kubetrade-train:{chart['appVersion']}"
    assert operator_env("image.train.repository=r/t", "image.train.tag=v7")["KUBETRADE_TRAIN_IMAGE"] == "r/t:v7"
    out = helm.run("template", "kt", str(CHART), "--set", "image.train.registry=x", check=False)
    assert out.returncode != 0 and "train" in out.stderr
