"""The chart's install Jobs, run as their ServiceAccount with the chart's Role, against the real
kube-apiserver and PostgreSQL: the first admin API key is made once, into a Secret, and works."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import psycopg
import pytest
import yaml

from kubetrade.api import create_app
from kubetrade.api.settings import Settings
from tests.chart.conftest import CHART
from tests.support.rbac import as_service_account, can_i
from tests.support.server import serving

pytestmark = pytest.mark.kube


def _rendered(helm, namespace: str, release: str) -> list[dict]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--show-only", "templates/install-secrets.yaml"]
    return [d for d in yaml.safe_load_all(helm.run(*args).stdout) if d]


def test_the_first_admin_key_is_made_once_into_a_secret(helm, kube, namespace, pg_dsn, tmp_path, monkeypatch) -> None:
    import base64

    release = f"adm{uuid.uuid4().hex[:6]}"
    docs = _rendered(helm, namespace, release)
    rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(rbac))
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("install-admin-key"))
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    kubeconfig = as_service_account(kube, f"{release}-install", namespace, tmp_path / "install.kubeconfig")
    assert can_i(kube, kubeconfig, "get", f"secrets/{release}-admin-key", "-n", namespace)
    assert not can_i(kube, kubeconfig, "get", f"secrets/{release}-db", "-n", namespace)
    pepper = uuid.uuid4().hex
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBETRADE_DATABASE_URL": pg_dsn,
           "KUBETRADE_API_KEY_PEPPER": pepper}

    def run() -> str:
        ran = subprocess.run([sys.executable, "-m", "kubetrade.cli", *args], capture_output=True, text=True,
                             timeout=120, env=env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        return ran.stdout

    first = run()
    assert first.startswith("created")
    data = kube.get_json("secret", f"{release}-admin-key", "-n", namespace)["data"]
    key = base64.b64decode(data["key"]).decode()
    assert key not in first, "the key is in the Secret only, not in the Job's log"
    assert run().startswith("kept")  # a second run (an upgrade) makes no second key

    with psycopg.connect(pg_dsn) as conn:
        admins = conn.execute("SELECT count(*) FROM api_keys WHERE name = 'admin (install)' AND revoked_at IS NULL"
                              ).fetchone()
    assert admins is not None and admins[0] >= 1
    monkeypatch.delenv("KUBECONFIG", raising=False)
    settings = Settings(database_url=pg_dsn, api_key_pepper=pepper, namespace=namespace)
    with serving(create_app(settings)) as url:
        got = httpx.get(f"{url}/api/v1/admin/api-keys", headers={"X-API-Key": key}, timeout=30)
        assert got.status_code == 200, got.text  # the key works, with the admin scope
