"""The workloads' one seam to the Kubernetes API.

The operator owns the cluster; workloads only need to say whether they can reach it
(health) and, later, to read or update kubetrade resources.  Every such call goes
through this module so that the dependency stays narrow, visible and easy to replace
when the platform runs without Kubernetes (``kubetrade up``).
"""

from __future__ import annotations

import asyncio
import os
from functools import lru_cache
from typing import Any


def configured() -> bool:
    """Whether there is a cluster to talk to: in-cluster service account or a kubeconfig."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("KUBECONFIG"))


@lru_cache(maxsize=1)
def _api_client() -> Any:
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return client.ApiClient()


async def ping(deadline: float = 3.0) -> str:
    """The API server's version, or raise."""
    from kubernetes import client

    def _version() -> str:
        info = client.VersionApi(_api_client()).get_code(_request_timeout=deadline)
        return str(info.git_version)

    return await asyncio.wait_for(asyncio.to_thread(_version), deadline + 1)
