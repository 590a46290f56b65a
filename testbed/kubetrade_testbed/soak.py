"""Fault soak of the live executor: SIGKILL it at random points, restart NATS, crash and
restart PostgreSQL, make the exchange time out after accepting, drop the connection after
accepting (a TCP proxy cuts the answer off), fill partially, reject and rate-limit - then
check that the exchange and the database agree, order by order and fill by fill, with no
order doubled and none lost.

Everything is real: nats-server, PostgreSQL, the executor as its own process (``kubetrade
executor --environment live``), ccxt's Binance client against the local exchange (which
uses Binance's own client-order-id rule here, so a resent filled order *would* double).

``python -m kubetrade_testbed.soak --trials 120`` runs it and prints the report (exit 1 on any
mismatch); the test suite runs a smaller number of trials through the same :func:`run_soak`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubetrade.ledger import allocation, connection
from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CancelRequest, OrderRequest
from kubetrade.storage import migrate
from kubetrade_testbed.exchange import ExchangeState, Fault, LocalExchange, Market
from kubetrade_testbed.exchange.proxy import DroppingProxy
from kubetrade_testbed.exchange.trading import TradingState, trading_state

STRATEGIES = ("s1", "s2", "s3")
FAULT_POINTS = "after_record,after_attempt,after_submit,after_apply,after_ack,after_lookup"


@dataclass
class Report:
    trials: int = 0
    sigkills: int = 0
    crash_point_kills: int = 0
    nats_restarts: int = 0
    pg_restarts: int = 0
    exchange_faults: dict[str, int] = field(default_factory=dict)
    orders_published: int = 0
    cancels_published: int = 0
    orders_in_db: int = 0
    orders_on_exchange: int = 0
    fills_in_db: int = 0
    trades_on_exchange: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.mismatches)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


class Harness:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.pg = PostgresServer(root / "pg", durable=True)
        self.nats = NatsServer(root / "nats")
        state = ExchangeState()
        state.add_market(
            Market("BTCUSDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001", min_notional="5")
        )
        self.trading: TradingState = trading_state(state)
        self.trading.unique_ids_among_open_only = True
        self.trading.set_price("BTCUSDT", "50000")
        self.key, self.secret = secrets.token_hex(16), secrets.token_hex(32)
        self.trading.add_account(self.key, self.secret, {"USDT": "10000000", "BTC": "0"})
        self.exchange = LocalExchange(state)
        self.proxy: DroppingProxy | None = None
        self.dsn = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.published: list[str] = []
        self.report = Report()
        self.n = 0

    # --- servers -----------------------------------------------------------------------

    def start(self) -> None:
        self.pg.start()
        self.nats.start()
        self.exchange.start()
        self.proxy = DroppingProxy(self.exchange.port).start()  # executors reach the exchange through it
        self.dsn = self.pg.create_database("soak")
        migrate.apply(self.dsn)

    def stop(self) -> None:
        self.kill_executor()
        if self.proxy is not None:
            self.proxy.stop()
        self.exchange.stop()
        self.nats.cleanup()
        self.pg.cleanup()

    def spawn(self, crash_points: bool) -> None:
        env = dict(os.environ, KUBETRADE_EXCHANGE_API_KEY=self.key, KUBETRADE_EXCHANGE_SECRET=self.secret)
        env.pop("KUBETRADE_FAULT_POINTS", None)
        if crash_points:
            env.update(
                KUBETRADE_FAULT_POINTS=FAULT_POINTS,
                KUBETRADE_FAULT_RATE="0.15",
                KUBETRADE_FAULT_SEED=str(self.rng.random()),
            )
        argv = [
            sys.executable,
            "-m",
            "kubetrade.executor",
            "executor",
            "--environment",
            "live",
            "--database-url",
            self.dsn,
            "--nats-url",
            self.nats.url,
            "--exchange-url",
            self.proxy.url if self.proxy is not None else self.exchange.url,
            "--exchange-timeout-ms",
            "800",
            "--sync-seconds",
            "0.5",
            "--ack-wait",
            "4",
            "--settle-seconds",
            "1.0",
            "--log-level",
            "error",
        ]
        log = open(self.root / "executor.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)

    def kill_executor(self) -> bool:
        """SIGKILL; True if it was still running (False: a crash point got it first)."""
        if self.proc is None:
            return False
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None
        return alive

    # --- load --------------------------------------------------------------------------

    async def publish(self, nc: Any, count: int) -> None:
        js = nc.jetstream()
        for _ in range(count):
            self.n += 1
            coid = f"soak-{self.n:06d}"
            strategy = self.rng.choice(STRATEGIES)
            kind = self.rng.random()
            side, otype, price = "buy", "market", 50_000.0
            if kind < 0.15:
                side = "sell"
            elif kind < 0.30:
                otype, price = "limit", float(self.rng.choice([45_000, 49_500, 50_500]))
            qty = self.rng.randint(10, 200) / 100_000
            req = OrderRequest(
                client_order_id=coid,
                strategy=strategy,
                environment="live",
                exchange="binance",
                symbol="BTC/USDT",
                side=side,
                type=otype,
                quantity=qty,
                price=price,
                time=int(time.time() * 1000),
                expires_at=int(time.time() * 1000) + 600_000,
            )
            await self._until_acked(js, subjects.order_submit("live"), codec.encode(req), coid)
            self.published.append(coid)
            self.report.orders_published += 1
            if otype == "limit" and self.rng.random() < 0.5:
                cancel = CancelRequest(client_order_id=coid, environment="live", time=int(time.time() * 1000))
                await self._until_acked(js, subjects.order_cancel("live"), codec.encode(cancel), f"cancel-{coid}")
                self.report.cancels_published += 1

    async def _until_acked(self, js: Any, subject: str, data: bytes, msg_id: str) -> None:
        while True:
            try:
                await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}, timeout=2)
                return
            except Exception:  # NATS restarting: same id again, JetStream keeps one
                await asyncio.sleep(0.2)

    def exchange_fault(self) -> None:
        choice = self.rng.choice(["hang", "drop", "partial", "reject", "429", "418", "500", "none"])
        f = self.trading.faults
        if choice == "hang":
            f.hang_after_accept += 1
            f.hang_seconds = 1.5
        elif choice == "drop" and self.proxy is not None:
            self.proxy.drop_responses += 1
        elif choice == "partial":
            f.partial += 1
        elif choice == "reject":
            f.reject += 1
        elif choice in ("429", "418", "500"):
            self.exchange.state.faults.inject(
                Fault("/api/v3/order", status=int(choice), body={"code": -1003, "msg": "Too many requests."})
            )
        if choice != "none":
            self.report.exchange_faults[choice] = self.report.exchange_faults.get(choice, 0) + 1

    # --- the soak ----------------------------------------------------------------------

    async def run(self, trials: int, orders_per_trial: int) -> Report:
        import nats

        started = time.monotonic()

        async def quiet(exc: Exception) -> None:  # NATS restarts are part of the plan
            return None

        nc = await nats.connect(self.nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet)
        conn = await connection.connect(self.dsn)
        for s in STRATEGIES:
            await allocation.allocate(conn, "live", s, 1_000_000.0)
        await conn.close()
        for trial in range(trials):
            self.spawn(crash_points=trial % 2 == 1)
            await self.publish(nc, orders_per_trial)
            self.exchange_fault()
            if self.rng.random() < 0.3:
                self.trading.set_price("BTCUSDT", str(self.rng.choice([44_000, 49_000, 50_000, 51_000])))
            if self.rng.random() < 0.3:
                self.trading.complete_partials()
            await asyncio.sleep(self.rng.uniform(0.3, 1.5))
            # infrastructure faults while the executor is working
            if trial % 10 == 4:
                await asyncio.to_thread(self.nats.restart)
                self.report.nats_restarts += 1
            if trial % 10 == 9:
                await asyncio.to_thread(self._crash_pg)
                self.report.pg_restarts += 1
            await asyncio.sleep(self.rng.uniform(0.0, 1.2))
            if self.kill_executor():
                self.report.sigkills += 1
            else:
                self.report.crash_point_kills += 1
            self.report.trials += 1
        await self.settle()
        await nc.drain()
        await self.verify()
        self.report.seconds = round(time.monotonic() - started, 1)
        return self.report

    def _crash_pg(self) -> None:
        self.pg.kill()
        self.pg.start()

    async def settle(self) -> None:
        """A last, fault-free executor run until nothing is pending and every partial fill is complete."""
        self.trading.faults.hang_after_accept = self.trading.faults.partial = self.trading.faults.reject = 0
        self.exchange.state.faults.clear()
        if self.proxy is not None:
            self.proxy.drop_responses = 0
        self.trading.complete_partials()
        self.spawn(crash_points=False)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                conn = await connection.connect(self.dsn)
                try:
                    cur = await conn.execute("SELECT client_order_id, status, filled_quantity, quantity FROM orders")
                    rows = {r["client_order_id"]: r for r in await cur.fetchall()}
                finally:
                    await conn.close()
                views = self._exchange_orders()
                busy = [c for c in self.published if c not in rows or rows[c]["status"] == "pending"]
                behind = [
                    c
                    for c, o in views.items()
                    if c in rows and abs(float(rows[c]["filled_quantity"]) - float(o.executed)) > 1e-12
                ]
                if not busy and not behind:
                    await asyncio.sleep(1.5)  # one more sync pass
                    return
                await asyncio.sleep(0.5)
            raise RuntimeError(f"executor did not settle: {len(busy)} pending/missing, {len(behind)} behind")
        finally:
            if self.proc is not None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                self.proc = None

    def _exchange_orders(self) -> dict[str, Any]:
        with self.trading.lock:
            return {o.client_order_id: o for o in self.trading.orders.values()}

    async def verify(self) -> None:
        r = self.report
        conn = await connection.connect(self.dsn)
        try:
            orders = {o["client_order_id"]: o for o in await (await conn.execute("SELECT * FROM orders")).fetchall()}
            fills = await (await conn.execute("SELECT * FROM fills")).fetchall()
            positions = await (await conn.execute("SELECT * FROM positions")).fetchall()
        finally:
            await conn.close()
        ex_orders = self._exchange_orders()
        with self.trading.lock:
            trades = {str(t["id"]): t for t in self.trading.trades}
            accepted = dict(self.trading.accepted)
            btc = self.trading.accounts[self.key].balances.get("BTC", Decimal(0))
        r.orders_in_db, r.orders_on_exchange = len(orders), len(ex_orders)
        r.fills_in_db, r.trades_on_exchange = len(fills), len(trades)
        for o in orders.values():
            r.statuses[o["status"]] = r.statuses.get(o["status"], 0) + 1
        r.lost = [c for c in self.published if c not in orders or orders[c]["status"] == "pending"]
        r.doubled = [c for c, n in accepted.items() if n > 1]
        status_map = {
            "NEW": {"open"},
            "PARTIALLY_FILLED": {"partially_filled"},
            "FILLED": {"filled"},
            "CANCELED": {"cancelled"},
        }
        for coid, eo in ex_orders.items():
            db = orders.get(coid)
            if db is None:
                r.mismatches.append(f"{coid}: on the exchange, not in the database")
                continue
            if db["status"] not in status_map.get(eo.status, set()):
                r.mismatches.append(f"{coid}: exchange {eo.status}, database {db['status']}")
            if abs(float(db["filled_quantity"]) - float(eo.executed)) > 1e-12:
                r.mismatches.append(f"{coid}: exchange filled {eo.executed}, database {db['filled_quantity']}")
        for coid, db in orders.items():
            if coid not in ex_orders and db["status"] not in ("rejected", "expired", "cancelled"):
                r.mismatches.append(f"{coid}: database {db['status']} but unknown to the exchange")
            if coid not in ex_orders and float(db["filled_quantity"]) > 0:
                r.mismatches.append(f"{coid}: fills recorded for an order the exchange never had")
        db_trades = {f["trade_id"]: f for f in fills}
        for tid, t in trades.items():
            f = db_trades.get(tid)
            if f is None:
                r.mismatches.append(f"trade {tid}: on the exchange, not in the database")
            elif (
                abs(float(f["quantity"]) - float(t["qty"])) > 1e-12 or abs(float(f["price"]) - float(t["price"])) > 1e-9
            ):
                r.mismatches.append(f"trade {tid}: quantity/price differ")
        r.mismatches += [f"fill {tid}: in the database, not on the exchange" for tid in db_trades if tid not in trades]
        held = sum(float(p["quantity"]) for p in positions)
        if abs(held - float(btc)) > 1e-9:
            r.mismatches.append(f"positions hold {held} BTC, the exchange account {btc}")


async def run_soak(trials: int = 100, orders_per_trial: int = 4, seed: int = 1) -> Report:
    root = Path(tempfile.mkdtemp(prefix="kubetrade-soak-"))
    os.chmod(root, 0o755)  # noqa: S103 - PostgreSQL may run as its service user, who must reach its folder
    h = Harness(root, seed)
    await asyncio.to_thread(h.start)
    report: Report | None = None
    try:
        report = await h.run(trials, orders_per_trial)
        return report
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(h.stop)
        if report is not None and report.ok:
            shutil.rmtree(root, ignore_errors=True)  # a failed soak keeps its logs and data for a look


def run(trials: int = 100, orders_per_trial: int = 4, seed: int = 1) -> Report:
    return asyncio.run(run_soak(trials, orders_per_trial, seed))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m kubetrade_testbed.soak",
        description="fault soak: SIGKILL the live executor, restart NATS/PostgreSQL, exchange faults; "
        "then compare exchange and database",
    )
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--orders-per-trial", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = run(args.trials, args.orders_per_trial, args.seed)
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
