"""The operator connects to NATS as its own role and does all of its work within that role's subjects.

A nats-server with the generated authorization block; the real operator with the
``operator`` credentials: it creates the streams and buckets, publishes a RiskPolicy,
takes a runner's status report (sent with the ``runner`` credentials) into the Strategy's
status, and the server logs no permission violation of the operator's.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from kubetrade.localstack.servers import NatsServer
from kubetrade.messaging import auth, codec, subjects
from kubetrade.messaging.schemas import StatusReport
from tests.operator.conftest import OperatorProcess, install_evolution_role, wait_status
from tests.operator.test_reconcile import apply, example, strategy

pytestmark = pytest.mark.kube


def test_the_operator_works_within_its_nats_role(kube, namespace, tmp_path, monkeypatch) -> None:
    passwords = auth.generate_passwords()
    server = NatsServer(tmp_path / "nats", authorization=auth.server_authorization(passwords))
    server.start()
    monkeypatch.setenv(auth.USER_ENV, "operator")
    monkeypatch.setenv(auth.PASSWORD_ENV, passwords["operator"])
    install_evolution_role(kube)
    op = OperatorProcess(kube, server.url, tmp_path / "op", name="op-nats")
    monkeypatch.delenv(auth.USER_ENV)
    monkeypatch.delenv(auth.PASSWORD_ENV)
    op.start()
    try:
        apply(kube, namespace, example("riskpolicy.yaml"), strategy("ident"))
        wait_status(kube, "riskpolicy", "default", namespace, lambda s, _: s.get("publishedRevision"))
        wait_status(kube, "strategy", "ident", namespace, lambda s, _: s.get("phase") == "Paper")

        async def report() -> None:
            nc = await nats.connect(server.url, user="runner", password=passwords["runner"])
            status = StatusReport(kind="Strategy", namespace=namespace, name="ident", time=int(time.time() * 1000),
                                  status={"trades": 3, "pnl": 1.5})
            await nc.publish(subjects.status_report("Strategy", namespace, "ident"), codec.encode(status))
            await nc.flush()
            await nc.close()

        asyncio.run(report())
        wait_status(kube, "strategy", "ident", namespace, lambda s, _: s.get("trades") == 3)
        log = server.process.log_path.read_text().splitlines()
        assert not [line for line in log if "Violation" in line], [line for line in log if "Violation" in line][:5]
        assert "nats connected" in op.log()
    finally:
        op.stop()
        server.cleanup()
