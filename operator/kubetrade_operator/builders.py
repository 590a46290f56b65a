"""The child objects each kubetrade resource should have: pure functions, no I/O.

Every child carries an owner reference to its resource (deleting the resource deletes
it), the labels the operator watches it by, and, for pods, the "restricted" Pod
Security settings and a hash of their configuration so that a config change rolls them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubetrade.engine.stream import genome_streams
from kubetrade.engine.templates import expand
from kubetrade.resources import GROUP, VERSION, CollectorSpec, GoalSpec, StrategySpec
from kubetrade.resources.base import Model, SecretReference
from kubetrade_operator.config import OperatorConfig

MANAGED_BY = "kubetrade-operator"
OWNER_KIND = "kubetrade.io/owner-kind"
OWNER_NAME = "kubetrade.io/owner-name"
CONFIG_HASH = "kubetrade.io/config-hash"
CONFIG_DIR = "/etc/kubetrade"


def label_value(name: str) -> str:
    """Label values are at most 63 characters; longer names keep a prefix and a hash."""
    if len(name) <= 63:
        return name
    return f"{name[:52]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def child_name(prefix: str, name: str) -> str:
    """``prefix-name``, shortened with a hash so that pod names derived from it stay valid."""
    full = f"{prefix}-{name}"
    if len(full) <= 52:
        return full
    return f"{full[:41]}-{hashlib.sha256(full.encode()).hexdigest()[:10]}"


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(kind: str, name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubetrade",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        OWNER_KIND: kind,
        OWNER_NAME: label_value(name),
    }


def deployment_signature(dep: dict[str, Any]) -> tuple[Any, ...]:
    """What the operator owns in a Deployment and would repair: scale, rollout strategy, config, images."""
    spec = dep.get("spec") or {}
    pod = spec.get("template") or {}
    return (
        spec.get("replicas"),
        (spec.get("strategy") or {}).get("type"),
        ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH),
        tuple(c.get("image") for c in (pod.get("spec") or {}).get("containers") or []),
    )


def deployment_drifted(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Whether someone changed what the operator owns in a Deployment."""
    return deployment_signature(desired) != deployment_signature(actual)


def config_hash(data: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _metadata(name: str, namespace: str, kind: str, owner: str, uid: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels(kind, owner, component),
        "ownerReferences": [owner_reference(kind, owner, uid)],
    }


DEFAULT_RESOURCES: dict[str, Any] = {"requests": {"cpu": "50m", "memory": "192Mi"}, "limits": {"memory": "768Mi"}}
STREAMED_RUNNER_RESOURCES: dict[str, Any] = {"requests": {"cpu": "10m", "memory": "40Mi"},
                                             "limits": {"memory": "256Mi"}}
"""A runner that streams its genome (no numba; :func:`kubetrade.engine.stream.genome_streams`): about 33 MB of
its own memory after warm-up (bench runner_footprint, PSS of 20 at once; the runner pods' working set on the
test node in bench node), a few CPU ms per bar.  The request is what the scheduler packs by: 192Mi would fit
42 paper runners on an 8 GiB node, 40Mi fits 204.  The limit covers the short-lived database-work process it
starts beside itself at warm-up (about 39 MB for a second)."""


def _restricted_container(name: str, cfg: OperatorConfig, args: list[str], env: list[dict[str, Any]],
                          resources: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "env": env,
        "ports": [{"name": "metrics", "containerPort": 9090}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 20,
                          "failureThreshold": 6},
        "resources": json.loads(json.dumps(resources or DEFAULT_RESOURCES)),
        # why the process exited, on the pod (kubectl describe, the Strategy's RunnerReady condition): what it
        # wrote to /dev/termination-log (kubetrade.runner.exits), else the end of its log
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _pod_spec(cfg: OperatorConfig, container: dict[str, Any], configmap: str, service_account: str) -> dict[str, Any]:
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": configmap}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }


def _common_env(cfg: OperatorConfig) -> list[dict[str, Any]]:
    return [
        {"name": "KUBETRADE_NATS_URL", "value": cfg.nats_url},
        {
            "name": "KUBETRADE_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": cfg.database_secret, "key": "url"}},
        },
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NUMBA_CACHE_DIR", "value": "/tmp/numba-cache"},
    ]


def _nats_identity(cfg: OperatorConfig, role: str) -> list[dict[str, Any]]:
    """The NATS identity of a child's role: its user name and the password in the role's Secret."""
    if not cfg.nats_secret_prefix:
        return []
    return [
        {"name": "KUBETRADE_NATS_USER", "value": role},
        {
            "name": "KUBETRADE_NATS_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": f"{cfg.nats_secret_prefix}{role}", "key": "password"}},
        },
    ]


def _credential_env(prefix: str, ref: SecretReference) -> list[dict[str, Any]]:
    return [
        {"name": f"{prefix}_API_KEY", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.api_key_key}}},
        {"name": f"{prefix}_SECRET", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.secret_key}}},
    ]


# --- Strategy -----------------------------------------------------------------------------


def _workload(
    kind: str,
    component: str,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    spec: Model,
    cfg: OperatorConfig,
    role: str,
    env: list[dict[str, Any]],
    replicas: int,
    resources: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ConfigMap with the resolved resource and a singleton Deployment running ``kubetrade <role>`` on it.

    ``Recreate``: the old pod is gone before the new one starts, so there are never two.
    """
    resolved = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": generation},
        "spec": spec.to_k8s(),
    }
    config_file = f"{kind.lower()}.json"
    data = {config_file: json.dumps(resolved, indent=2, sort_keys=True)}
    obj_name = child_name(kind.lower(), name)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(obj_name, namespace, kind, name, uid, component),
        "data": data,
    }
    container = _restricted_container(component, cfg, [role, "--config", f"{CONFIG_DIR}/{config_file}"], env,
                                      resources)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(obj_name, namespace, kind, name, uid, component),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {OWNER_KIND: kind, OWNER_NAME: label_value(name)}},
            "template": {
                "metadata": {"labels": labels(kind, name, component), "annotations": {CONFIG_HASH: config_hash(data)}},
                "spec": _pod_spec(cfg, container, obj_name, cfg.runner_service_account),
            },
        },
    }
    return configmap, deployment


def strategy_children(
    name: str, namespace: str, uid: str, generation: int, spec: StrategySpec, cfg: OperatorConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The runner's ConfigMap and singleton Deployment; exchange keys are mounted for live only."""
    env = [*_common_env(cfg), *_nats_identity(cfg, "runner"), {"name": "KUBETRADE_ENVIRONMENT", "value": spec.mode}]
    if spec.mode == "live" and spec.credentials_secret_ref is not None:
        env += _credential_env("EXCHANGE", spec.credentials_secret_ref)
    return _workload(
        "Strategy",
        "strategy-runner",
        name,
        namespace,
        uid,
        generation,
        spec,
        cfg,
        "runner",
        env,
        0 if spec.retired else 1,
        STREAMED_RUNNER_RESOURCES if runner_streams(spec) else None,
    )


def runner_streams(spec: StrategySpec) -> bool:
    """Whether this Strategy's runner streams its genome (a light pod), as the runner itself decides it."""
    try:
        genome = spec.genome if spec.genome is not None else expand(spec.template or "", spec.parameters)
    except ValueError:
        return False
    return genome_streams(genome, spec.market)


def collector_children(
    name: str, namespace: str, uid: str, generation: int, spec: CollectorSpec, cfg: OperatorConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The collector's ConfigMap and Deployment, scaled to zero while suspended."""
    env = [*_common_env(cfg), *_nats_identity(cfg, "collector")]
    if spec.credentials_secret_ref is not None:
        env += _credential_env("COLLECTOR", spec.credentials_secret_ref)
    return _workload(
        "Collector", "collector", name, namespace, uid, generation, spec, cfg, "collect", env, 0 if spec.suspend else 1
    )


# --- Goal ---------------------------------------------------------------------------------


def trains(spec: GoalSpec) -> bool:
    """Whether the Goal's evolution trains a model - PPO policies (``rl`` among its sources) or the LSTM-Transformer
    predictor (``spec.evolution.predictor``): then it needs the training image."""
    return "rl" in spec.evolution.sources or spec.evolution.predictor is not None


def training_needs(spec: GoalSpec) -> str:
    """What a Goal's evolution trains, in words ("" when it trains nothing): for its conditions and refusals."""
    evo = spec.evolution
    parts = [*(["PPO policies (sources: rl)"] if "rl" in evo.sources else []),
             *(["the LSTM-Transformer predictor (predictor)"] if evo.predictor is not None else [])]
    return " and ".join(parts)


def goal_cronjob(name: str, namespace: str, uid: str, spec: GoalSpec, cfg: OperatorConfig) -> dict[str, Any]:
    """The daily evolution: a CronJob that never overlaps itself and gives up after three hours.

    A Goal that asks for RL policies (``spec.evolution.sources`` includes ``rl``) or a predictor
    (``spec.evolution.predictor``) trains them in the same run, beside the genome searches, so that
    everything meets in one selection: its job is the training job, run from the training image
    (``cfg.train_image``: kubetrade with JAX, which the runtime image leaves out), with more memory and
    six hours.  Its pods carry the component label ``training``.  It requests one CPU, as the evolution
    job does, not more: a request of two could never be scheduled on a two-CPU node that runs anything
    else (the test node is one), and JAX uses whatever cores are free anyway.
    """
    evo = spec.evolution
    cj_name = child_name("evolve", name)
    training = trains(spec)
    component = "training" if training else "evolution"
    env = [
        *_common_env(cfg),
        {"name": "KUBETRADE_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    container = _restricted_container("evolve", cfg, ["goal-evolution", "--goal", f"{namespace}/{name}"], env)
    container.pop("readinessProbe")
    container.pop("livenessProbe")
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    container["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    if training:
        container["image"] = cfg.train_image
        container["resources"] = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "6Gi"}}
    pod_spec = {
        "serviceAccountName": cfg.evolution_service_account,
        "automountServiceAccountToken": True,  # it creates Strategy resources
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(cj_name, namespace, "Goal", name, uid, component),
        "spec": {
            "schedule": evo.schedule,
            "timeZone": evo.time_zone,
            "suspend": evo.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels("Goal", name, component)},
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": (6 if training else 3) * 3600,
                    "ttlSecondsAfterFinished": 7 * 86400,
                    "template": {"metadata": {"labels": labels("Goal", name, component)}, "spec": pod_spec},
                },
            },
        },
    }


# --- Per-namespace accounts -----------------------------------------------------------------


def namespace_accounts(namespace: str, cfg: OperatorConfig) -> list[dict[str, Any]]:
    """Service accounts child pods run as, in every namespace that has kubetrade resources.

    Runners and collectors need no Kubernetes API access at all (no token is mounted).  The
    evolution job creates and updates Strategy resources in its own namespace, nothing else:
    a RoleBinding to the ``kubetrade-evolution`` ClusterRole (installed with the operator).
    """
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": cfg.runner_service_account, **meta},
            "automountServiceAccountToken": False,
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": cfg.evolution_service_account, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": cfg.evolution_service_account, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubetrade-evolution"},
            "subjects": [{"kind": "ServiceAccount", "name": cfg.evolution_service_account, "namespace": namespace}],
        },
    ]
