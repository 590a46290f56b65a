"""``kubetrade up`` under SIGKILL: the risk manager and the executor are killed mid-run, the
supervisor restarts each, nothing is lost (every order recorded reaches a final status, every
record agrees) and the summary says what happened.  Then an approved order the executor cannot
take (the executor frozen, the order already in ORDERS) is found at the stop: ``kubetrade up``
exits 1 and says which order path problem it left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import kubetrade_argv
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import OrderRequest, StatusReport
from tests.runtime.conftest import eventually

RESOURCES = Path(__file__).with_name("e2e_resources")
RUNNING = ("btc-fast", "eth-fast", "btc-wide")


def _child(parent: int, word: str) -> int:
    """The pid of ``parent``'s child whose command line names ``word`` (the service it supervises)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if ppid == parent and word.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no child of {parent} runs {word}")


async def test_services_killed_mid_run_are_restarted_and_nothing_is_lost(tmp_path) -> None:
    state = tmp_path / "state"
    up = ManagedProcess("kubetrade-up", kubetrade_argv(
        "up", "-f", str(RESOURCES), "--state-dir", str(state), "--api-port", "0", "--live-days", "1.5",
        "--no-evolve", "--speed", "1500"), tmp_path / "up.out")
    up.start()
    try:
        up.wait_ready(lambda: "where to look" in up.log_path.read_text(), timeout=300, interval=0.5)
        endpoints = json.loads((state / "endpoints.json").read_text())
        db = await psycopg.AsyncConnection.connect(endpoints["database"], row_factory=dict_row, autocommit=True)
        import nats

        users = json.loads((state / "nats-users.json").read_text())  # one identity per role: watch as the operator
        nc = await nats.connect(endpoints["nats"], user="operator", password=users["operator"])
        reports: dict[str, dict] = {}

        async def on_status(msg) -> None:
            r = codec.decode(StatusReport, msg.data)
            reports[r.name] = r.status

        await nc.subscribe(subjects.status_report("Strategy"), cb=on_status)

        async def fills_at_least(n: int) -> bool:
            row = await (await db.execute("SELECT count(*) AS n FROM fills")).fetchone()
            return int(row["n"]) >= n

        # --- the executor, then the risk manager, SIGKILLed while orders flow ---------------------------
        assert up.proc is not None
        await eventually(lambda: fills_at_least(2), timeout=120, interval=0.2)
        os.kill(_child(up.proc.pid, "executor"), signal.SIGKILL)
        await eventually(lambda: _said(up, "executor-paper restarted"), timeout=90, interval=0.2)
        before = await (await db.execute("SELECT count(*) AS n FROM fills")).fetchone()
        await eventually(lambda: fills_at_least(int(before["n"]) + 2), timeout=120, interval=0.2)
        os.kill(_child(up.proc.pid, "risk-manager"), signal.SIGKILL)
        await eventually(lambda: _said(up, "risk-manager restarted"), timeout=90, interval=0.2)

        # --- the replay ends; nothing was lost: every order final, the records agree ---------------------
        last_close = _close_of_last_candle()
        await eventually(lambda: _all_caught_up(reports, last_close), timeout=300, interval=0.5)
        await asyncio.sleep(6)  # a report round after the last fill
        statuses = await (await db.execute("SELECT status, count(*) AS n FROM orders GROUP BY status")).fetchall()
        by_status = {r["status"]: int(r["n"]) for r in statuses}
        assert set(by_status) <= {"filled", "rejected"}, by_status  # nothing pending, open or lost in between
        for name in RUNNING:
            fills = await (await db.execute("SELECT side FROM fills WHERE strategy = %s", (name,))).fetchall()
            closed = sum(1 for f in fills if f["side"] == "sell")
            assert reports[name]["trades"] == closed, name  # the runner's books = the executor's record
        dups = await (await db.execute(
            "SELECT count(*) - count(DISTINCT client_order_id) AS d FROM orders")).fetchone()
        assert dups["d"] == 0

        # --- an approved order the executor cannot take: found at the stop, and said ----------------------
        os.kill(_child(up.proc.pid, "executor"), signal.SIGSTOP)
        stuck = OrderRequest(client_order_id="stuck-at-stop-0001", strategy="btc-wide", environment="paper",
                             exchange="binance", symbol="BTC/USDT", side="buy", quantity=0.001, price=50_000.0,
                             time=0)
        # only the risk manager's identity may submit orders (the executor, stopped, cannot look at it anyway)
        risk_nc = await nats.connect(endpoints["nats"], user="risk-manager", password=users["risk-manager"])
        await risk_nc.jetstream().publish(subjects.order_submit("paper"), codec.encode(stuck),
                                          headers={"Nats-Msg-Id": stuck.client_order_id})
        await risk_nc.drain()
        await nc.drain()
        await db.close()
        up.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(up.proc.wait, 240) == 1
        out = up.log_path.read_text()
        assert "stopped after" in out and "with problems" in out and "stopped cleanly" not in out
        assert "1 approved order(s) never processed by the executor" in out
        summary = json.loads((state / "summary.json").read_text())
        services = {s["name"]: s for s in summary["services"]}
        assert services["executor-paper"]["restarts"] == 1 and services["executor-paper"]["exits"] == [-9]
        assert services["risk-manager"]["restarts"] == 1 and services["risk-manager"]["exits"] == [-9]
        assert summary["drained"]["pendingInStream"] == 1 and not summary["drained"]["clean"]
        assert summary["problems"] == ["1 approved order(s) never processed by the executor"]
        assert "Traceback" not in out
    finally:
        up.stop(timeout=60, sig=signal.SIGINT)


async def _said(up: ManagedProcess, text: str) -> bool:
    return text in up.log_path.read_text()


async def _all_caught_up(reports: dict[str, dict], last_close: str) -> bool:
    return all(reports.get(n, {}).get("lastSignalTime") == last_close for n in RUNNING)


def _close_of_last_candle() -> str:
    from datetime import UTC, datetime

    c = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz")
    return datetime.fromtimestamp((int(c.time[-1]) + 300_000) / 1000, UTC).isoformat().replace("+00:00", "Z")
