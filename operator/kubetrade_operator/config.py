"""Operator settings, from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "kubetrade:0.1.0"
    """Image every child workload runs (one image, many roles)."""
    image_pull_policy: str = "IfNotPresent"
    train_image: str = "kubetrade-train:0.1.0"
    """Image of the evolution job of a Goal whose ``spec.evolution.sources`` includes ``rl``: kubetrade with the
    ``train`` extra (JAX, optax, gymnasium), which the runtime image leaves out.  Empty: no training image, and
    such a Goal is refused (condition Ready False, reason NoTrainingImage)."""
    nats_url: str = "nats://kubetrade-nats:4222"
    """NATS URL given to workloads and used by the operator itself."""
    database_secret: str = "kubetrade-db"  # noqa: S105 - a Secret's name
    """Secret (in each namespace with kubetrade resources) holding the database DSN under ``url``."""
    runner_service_account: str = "kubetrade-workload"
    """Service account of child pods (no Kubernetes API rights needed except the evolution job's)."""
    evolution_service_account: str = "kubetrade-evolution"
    """Service account of evolution jobs: they create Strategy resources."""
    nats_secret_prefix: str = ""
    """Runners and collectors read their NATS password from Secret ``<prefix><role>`` (key ``password``)
    of their namespace; empty: they connect without credentials (an open NATS)."""
    lease_namespace: str = "default"
    lease_name: str = "kubetrade-operator"
    resync_seconds: float = 60.0
    """Level-based resync: every object is reconciled at least this often, repairing drift."""

    @classmethod
    def from_env(cls) -> OperatorConfig:
        env = os.environ
        defaults = cls()
        return cls(
            image=env.get("KUBETRADE_IMAGE", defaults.image),
            image_pull_policy=env.get("KUBETRADE_IMAGE_PULL_POLICY", defaults.image_pull_policy),
            train_image=env.get("KUBETRADE_TRAIN_IMAGE", defaults.train_image),
            nats_url=env.get("KUBETRADE_NATS_URL", defaults.nats_url),
            database_secret=env.get("KUBETRADE_DATABASE_SECRET", defaults.database_secret),
            runner_service_account=env.get("KUBETRADE_RUNNER_SERVICE_ACCOUNT", defaults.runner_service_account),
            evolution_service_account=env.get(
                "KUBETRADE_EVOLUTION_SERVICE_ACCOUNT", defaults.evolution_service_account
            ),
            nats_secret_prefix=env.get("KUBETRADE_NATS_SECRET_PREFIX", defaults.nats_secret_prefix),
            lease_namespace=env.get("KUBETRADE_OPERATOR_NAMESPACE", defaults.lease_namespace),
            lease_name=env.get("KUBETRADE_LEASE_NAME", defaults.lease_name),
            resync_seconds=float(env.get("KUBETRADE_RESYNC_SECONDS", defaults.resync_seconds)),
        )
