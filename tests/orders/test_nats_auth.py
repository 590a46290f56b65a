"""NATS with one identity per role: only the risk manager gets an order executed.

A real nats-server runs the authorization block :mod:`kubetrade.messaging.auth` generates
(the chart renders the same block; ``kubetrade up`` too).  The real risk manager and paper
executor run as processes of their own, each with its role's credentials and the order
signing key.  A runner's signal goes the legitimate way - to the risk manager, which approves
it, and the executor fills it - while every other way to an execution is closed: publishing
on ``orders.paper.submit`` with another role's credentials, creating a stream that
republishes into it, writing a permissive policy into the KV bucket, connecting without
credentials, and (with credentials that may publish there) an order without the risk
manager's signature or with a forged one.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from kubetrade.ledger import allocation, connection
from kubetrade.localstack.servers import NatsServer
from kubetrade.messaging import auth, codec, kv, signing, subjects
from kubetrade.messaging.schemas import OrderRequest, RiskDecision, Signal, Ticker
from tests.orders.conftest import now_ms, orders_by_status, wait_for

ADMIN = "test-admin"
"""A user with every permission, for the test's own inspection (the DLQ); not a kubetrade role."""


@pytest.fixture
def secured(tmp_path) -> Iterator[tuple[NatsServer, dict[str, str]]]:
    passwords = auth.generate_passwords() | {ADMIN: secrets.token_hex(12)}
    block = auth.server_authorization(passwords)
    block = block.replace("  ]\n}", f'    {{user: "{ADMIN}", password: "{passwords[ADMIN]}"}}\n  ]\n}}')
    server = NatsServer(tmp_path / "nats", authorization=block)
    server.start()
    yield server, passwords
    server.cleanup()


async def connect(server: NatsServer, passwords: dict[str, str], role: str | None) -> nats.NATS:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    creds = {} if role is None else {"user": role, "password": passwords[role]}
    nc = await nats.connect(server.url, **creds, error_cb=on_error, max_reconnect_attempts=0, connect_timeout=3)
    nc.permission_errors = errors  # type: ignore[attr-defined]
    return nc


def service(args: list[str], role: str, passwords: dict[str, str], key: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, auth.USER_ENV: role, auth.PASSWORD_ENV: passwords[role], signing.ENV: key}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "kubetrade.cli", *args, "--log-level", "info"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def violations(server: NatsServer) -> list[str]:
    return [line for line in server.process.log_path.read_text().splitlines() if "Violation" in line]


async def test_only_the_risk_manager_gets_an_order_executed(orders_dsn, secured, tmp_path) -> None:
    server, passwords = secured
    key = secrets.token_hex(32)
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")

    # No credentials, or wrong ones: no connection at all.
    for creds in ({}, {"user": "runner", "password": "guess"}):
        with pytest.raises(Exception, match=r"(?i)authori"):
            await nats.connect(server.url, **creds, allow_reconnect=False, connect_timeout=3)

    procs = [
        service(["risk-manager", "--database-url", orders_dsn, "--nats-url", server.url, "--refresh-seconds", "0.3"],
                "risk-manager", passwords, key, tmp_path / "risk.log"),
        service(["executor", "--environment", "paper", "--database-url", orders_dsn, "--nats-url", server.url,
                 "--sync-seconds", "0.5"], "executor-paper", passwords, key, tmp_path / "executor.log"),
    ]
    operator = await connect(server, passwords, "operator")
    collector = await connect(server, passwords, "collector")
    runner = await connect(server, passwords, "runner")
    try:
        bucket = await kv.policy_bucket(operator.jetstream())  # the operator publishes the policy
        await bucket.put(kv.policy_key("default", "default"),
                     json.dumps({"namespace": "default", "name": "default", "generation": 1, "spec": {}}).encode())

        async def priced_and_answering() -> bool:
            for p in procs:
                assert p.poll() is None, (tmp_path / "risk.log").read_text()[-2000:]
            await collector.publish(subjects.ticker("binance", "BTC/USDT"), codec.encode(
                Ticker(exchange="binance", symbol="BTC/USDT", time=now_ms(), last=50_000.0)))
            try:
                reply = await runner.request(subjects.RISK_CHECK, codec.encode(_signal("probe", dry_run=True)),
                                             timeout=1)
            except Exception:
                return False
            d = codec.decode(RiskDecision, reply.data)
            return d.approved

        await wait_for(priced_and_answering, 120, interval=0.5)
        await wait_for(lambda: _logged(tmp_path / "executor.log", "accepting orders"), 120, interval=0.5)

        # The legitimate way: a runner's signal, decided by the risk manager, filled by the executor.
        reply = await runner.request(subjects.RISK_CHECK, codec.encode(_signal("legit-1")), timeout=10)
        assert codec.decode(RiskDecision, reply.data).approved
        await wait_for(lambda: _status(orders_dsn, "legit-1", "filled"), 60)

        # Every other role that may not submit: refused by the server, nothing executed.
        for role in ("runner", "collector", "api", "operator", "executor-live"):
            intruder = await connect(server, passwords, role)
            try:
                req = _order(f"forged-{role}")
                with pytest.raises(Exception):  # noqa: B017 - no PubAck: the server dropped the publish
                    await intruder.jetstream().publish(
                        subjects.order_submit("paper"), codec.encode(req),
                        headers=signing.headers(None, subjects.order_submit("paper"), req.client_order_id,
                                                codec.encode(req)), timeout=2)
                await intruder.flush()
                assert any("permissions violation" in str(e).lower() for e in intruder.permission_errors), role
            finally:
                await intruder.close()

        # No side door through JetStream: a runner may neither create a stream that republishes
        # into orders.>, nor write a permissive policy into the KV bucket.
        from nats.js.api import RePublish, StreamConfig

        with pytest.raises(Exception):  # noqa: B017 - the stream API request is dropped
            await runner.jetstream().add_stream(StreamConfig(
                name="EVIL", subjects=["evil.>"], republish=RePublish(src=">", dest="orders.paper.submit")),
                timeout=2)
        with pytest.raises(Exception):  # noqa: B017
            await runner.jetstream().publish(f"$KV.{subjects.RISK_POLICY_BUCKET}.default.default",
                                             b'{"spec": {"circuitBreaker": {"killSwitch": false}}}', timeout=2)

        # Credentials that may publish there (the executor's own), but no signature or a forged one:
        # the executor refuses the order and dead-letters it with the reason.
        executor_creds = await connect(server, passwords, "executor-paper")
        try:
            unsigned, forged = _order("unsigned-1"), _order("forged-key-1")
            subject = subjects.order_submit("paper")
            await executor_creds.jetstream().publish(
                subject, codec.encode(unsigned), headers={"Nats-Msg-Id": unsigned.client_order_id}, timeout=5)
            await executor_creds.jetstream().publish(
                subject, codec.encode(forged),
                headers=signing.headers(b"not-the-key", subject, forged.client_order_id, codec.encode(forged)),
                timeout=5)
        finally:
            await executor_creds.close()
        admin = await connect(server, passwords, ADMIN)
        try:
            dlq = await admin.jetstream().subscribe(subjects.dead_letter(subject), ordered_consumer=True)
            reasons = []
            for _ in range(2):
                msg = await dlq.next_msg(timeout=30)
                reasons.append(msg.headers["Kubetrade-Dlq-Reason"])
            assert all("not signed by the risk manager" in r for r in reasons), reasons
        finally:
            await admin.close()
        # A correctly signed order (as the risk manager signs) is executed: the check is not a wall.
        signed = _order("signed-1")
        payload = codec.encode(signed)
        executor_creds = await connect(server, passwords, "executor-paper")
        try:
            await executor_creds.jetstream().publish(
                subject, payload, headers=signing.headers(key.encode(), subject, signed.client_order_id, payload),
                timeout=5)
        finally:
            await executor_creds.close()
        await wait_for(lambda: _status(orders_dsn, "signed-1", "filled"), 60)

        statuses = await orders_by_status(orders_dsn)
        assert not [c for c in statuses if c.startswith(("forged", "unsigned"))], statuses
        # The services themselves never ran into their permissions (each does all its work within them).
        own = [line for line in violations(server)
               if any(f"user:{r}\"" in line for r in ("risk-manager", "executor-paper"))]
        assert not own, own[:5]
        assert violations(server), "the intruders' attempts are in the server's log"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        for c in (operator, collector, runner):
            await c.close()
        await conn.close()


def _signal(coid: str, **kw) -> Signal:
    return Signal(strategy="alpha", client_order_id=coid, exchange="binance", symbol="BTC/USDT", side="buy",
                  quantity=0.001, price=50_000.0, time=now_ms(), **kw)


def _order(coid: str) -> OrderRequest:
    return OrderRequest(client_order_id=coid, strategy="alpha", environment="paper", exchange="binance",
                        symbol="BTC/USDT", side="buy", quantity=0.001, price=50_000.0, time=now_ms())


async def _logged(path: Path, text: str) -> bool:
    return text in await asyncio.to_thread(path.read_text, errors="replace")


async def _status(dsn: str, coid: str, status: str) -> bool:
    return (await orders_by_status(dsn)).get(coid) == status


def test_the_generated_configuration_is_accepted_by_nats_server(tmp_path) -> None:
    """``nats-server -t`` parses the block the chart and the local stack use, variables and all."""
    from kubetrade.localstack.servers.nats import nats_server_binary

    conf = tmp_path / "nats.conf"
    conf.write_text("listen: 127.0.0.1:4222\n" + auth.server_authorization(
        {r: f"${auth.password_variable(r)}" for r in auth.ROLES}))
    env = {**os.environ, **{auth.password_variable(r): secrets.token_hex(8) for r in auth.ROLES}}
    ran = subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env,
                         timeout=30)
    assert ran.returncode == 0, ran.stdout + ran.stderr
