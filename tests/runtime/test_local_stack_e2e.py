"""End to end: ``kubetrade up`` on the bundled real candles, as a user runs it.

One process (the CLI), which starts NATS, PostgreSQL, the risk manager and the paper
executor (their own CLIs), an evolution, the runners, the replay collector and the API.
While it runs, the test reads the three records independently - the database (orders,
fills, ledgers), NATS (the runners' status reports, the risk manager's metrics) and the
API (strategies, trades, goals, risk) - and checks that strategies traded, that the risk
manager refused what broke a limit, that the bad strategies were refused with a reason,
and that the three records agree.  Then Ctrl-C, and a clean stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import kubetrade_argv, risk_metrics
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import StatusReport
from tests.runtime.conftest import eventually

RESOURCES = Path(__file__).with_name("e2e_resources")
RUNNING = ("btc-fast", "eth-fast", "btc-wide")


def _close_of_last_candle() -> str:
    c = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz")
    from datetime import UTC, datetime

    return datetime.fromtimestamp((int(c.time[-1]) + 300_000) / 1000, UTC).isoformat().replace("+00:00", "Z")


async def test_local_stack_trades_refuses_and_agrees(tmp_path) -> None:
    state = tmp_path / "state"
    up = ManagedProcess("kubetrade-up", kubetrade_argv(
        "up", "-f", str(RESOURCES), "--state-dir", str(state), "--api-port", "0", "--live-days", "1.5",
        "--population", "32", "--generations", "2", "--max-evolved", "2"), tmp_path / "up.out")
    up.start()
    try:
        up.wait_ready(lambda: "replay finished" in up.log_path.read_text(), timeout=420, interval=0.5)
        endpoints = json.loads((state / "endpoints.json").read_text())
        key = (state / "api-key").read_text().strip()
        assert oct((state / "api-key").stat().st_mode & 0o777) == "0o600"
        import nats

        # NATS has one identity per role here too: watch the status reports as the control loop does
        users = json.loads((state / "nats-users.json").read_text())
        assert oct((state / "nats-users.json").stat().st_mode & 0o777) == "0o600"
        with pytest.raises(Exception, match=r"(?i)authori"):
            await nats.connect(endpoints["nats"], allow_reconnect=False, connect_timeout=3)
        nc = await nats.connect(endpoints["nats"], user="operator", password=users["operator"])
        reports: dict[str, dict] = {}

        async def on_status(msg) -> None:
            r = codec.decode(StatusReport, msg.data)
            reports[r.name] = r.status

        await nc.subscribe(subjects.status_report("Strategy"), cb=on_status)
        last_close = _close_of_last_candle()
        last_price = {s: float(load_csv(SAMPLE_DIR / f"{s.replace('/', '_')}-5m.csv.gz").close[-1])
                      for s in ("BTC/USDT", "ETH/USDT")}

        async def all_caught_up():  # every runner has decided the last replayed bar and reported it
            return all(reports.get(n, {}).get("lastSignalTime") == last_close for n in RUNNING)

        await eventually(all_caught_up, timeout=240, interval=0.5)
        await asyncio.sleep(6)  # one more report round (every 5 s) after the last fill, for the status feed too
        api = httpx.AsyncClient(base_url=endpoints["api"], headers={"X-API-Key": key}, timeout=30)

        # a key made from another shell against this run's database works with this API: both read the
        # pepper kubetrade up keeps in its state folder (it made one up in its own process before)
        env = {k: v for k, v in os.environ.items() if k != "KUBETRADE_API_KEY_PEPPER"}
        made = await asyncio.to_thread(
            subprocess.run, [*kubetrade_argv("api-keys", "--dsn", endpoints["database"], "--pepper-file",
                                             str(state / "api-key-pepper"), "create", "shell", "--scope", "read")],
            capture_output=True, text=True, env=env, timeout=120)
        assert made.returncode == 0, made.stderr
        shell_key = json.loads(made.stdout.splitlines()[0])["key"]
        got = await api.get("/api/v1/strategies", headers={"X-API-Key": shell_key})
        assert got.status_code == 200, got.text
        db = await psycopg.AsyncConnection.connect(endpoints["database"], row_factory=dict_row, autocommit=True)

        # --- strategies traded, and every record says the same -----------------------------------
        listing = (await api.get("/api/v1/strategies", params={"limit": 100})).json()["items"]
        by_name = {s["metadata"]["name"]: s for s in listing}
        traded = 0
        for name in RUNNING:
            fills = await (await db.execute(
                "SELECT side, quantity, price, fee FROM fills WHERE strategy = %s ORDER BY id", (name,))).fetchall()
            api_trades = (await api.get("/api/v1/trades", params={"strategy": name, "limit": 1000})).json()
            assert len(api_trades) == len(fills)
            closed = sum(1 for f in fills if f["side"] == "sell")  # long-only: each sell closes a trade
            nats_status, api_status = reports[name], by_name[name]["status"]
            assert nats_status["trades"] == closed == api_status["trades"], name
            assert api_status["equity"] == pytest.approx(nats_status["equity"], rel=1e-12)
            ledger = await (await db.execute("SELECT cash FROM ledgers WHERE strategy = %s", (name,))).fetchone()
            held = await (await db.execute("SELECT symbol, quantity FROM positions WHERE strategy = %s", (name,))
                          ).fetchall()
            value = sum(p["quantity"] * last_price[p["symbol"]] for p in held)  # marked at the last close
            assert nats_status["equity"] == pytest.approx(ledger["cash"] + value, rel=1e-9), name
            traded += closed > 0
        assert traded == len(RUNNING)

        # --- the risk manager refused what broke a limit ------------------------------------------
        risk = await risk_metrics(nc)
        one = next(p for p in risk.portfolios if p.policy == "one-at-a-time")
        assert one.violations >= 1
        log = (state / "logs" / "kubetrade-up.log").read_text()
        refusals = [json.loads(line) for line in log.splitlines() if "risk manager rejected the order" in line]
        assert any(r["rule"] == "maxOpenPositions" and r["strategy"].split("/")[-1] in ("btc-fast", "eth-fast")
                   for r in refusals)
        # ... and so the two strategies of that policy never held positions at the same time
        events = await (await db.execute(
            "SELECT f.strategy, f.side FROM fills f WHERE f.strategy IN ('btc-fast', 'eth-fast') ORDER BY f.id"
        )).fetchall()
        open_now: set[str] = set()
        for e in events:
            (open_now.add if e["side"] == "buy" else open_now.discard)(e["strategy"])
            assert len(open_now) <= 1
        # the default policy's 20 % cap: every entry of btc-wide was cut to it (positionPct 1.0 asked for all),
        # valued at the price it was decided at (a fast replay may fill it a few bars later)
        entries = await (await db.execute(
            "SELECT quantity * price AS notional FROM orders WHERE strategy = 'btc-wide' AND side = 'buy'")).fetchall()
        assert entries and all(e["notional"] <= 0.2 * 2000 * (1 + 1e-9) for e in entries)
        api_risk = (await api.get("/api/v1/risk/metrics")).json()
        assert json.dumps(api_risk).count("one-at-a-time") >= 1

        # --- the bad strategies were refused with a reason a person can act on ---------------------
        assert by_name["bad-genome"]["status"]["phase"] == "Failed"
        assert "does not compile" in by_name["bad-genome"]["status"]["message"]
        assert "unknown indicator 'nosuch'" in by_name["bad-genome"]["status"]["message"]
        assert by_name["sol-missing"]["status"]["phase"] == "Failed"
        assert "SOL/USDT 5m on binance is not provided by any collector" in by_name["sol-missing"]["status"]["message"]
        # a model the runner cannot load: it starts, trades nothing (no order, below) and says why in a
        # Degraded condition (learning's ModelRefused; its phase stays Paper, the runner being up)
        missing = by_name["missing-model"]["status"]
        refused = [c for c in missing.get("conditions") or [] if c["type"] == "Degraded" and c["status"] == "True"]
        assert refused and refused[0]["reason"] == "ModelRefused", missing
        assert "spec.model: model file /nonexistent/model.onnx cannot be read" in refused[0]["message"]
        assert not await (await db.execute(
            "SELECT 1 FROM orders WHERE strategy IN ('bad-genome', 'sol-missing', 'missing-model')")).fetchall()

        # --- the evolution ran; only what passed its gates paper-trades under the goal ---------------
        evolved = [s for s in listing if s["metadata"]["name"].startswith("monthly-8pct-evo-")]
        assert all(s["spec"]["mode"] == "paper" and s["status"]["phase"] == "Paper"
                   and s["status"]["evidence"]["passed"] for s in evolved)
        runs = await (await db.execute("SELECT trials, survivors FROM evolution_runs")).fetchall()
        assert len(runs) == 1 and runs[0]["trials"] > 0
        goal_status = (await (await db.execute(
            "SELECT body->'status' AS s FROM kube_resources WHERE kind = 'goals' AND name = 'monthly-8pct'"
        )).fetchone())["s"]
        selection = goal_status["lastSelection"]
        assert selection["trials"] == runs[0]["trials"] and selection["passed"] == runs[0]["survivors"]
        assert len(evolved) == selection["toPaper"]
        if not evolved:  # the bundled candles, this seed: nothing passes, and the run says so with its best figures
            assert selection["message"].startswith("no strategy passed: best DSR ")
        goals = (await api.get("/api/v1/goals/summary")).json()
        goal = next(g for g in goals if g["name"] == "monthly-8pct")
        counted = {s["name"] for s in goal["strategies"]}
        assert "btc-fast" in counted and {s["metadata"]["name"] for s in evolved} <= counted
        # the one goal-figure function: the capital grown by the counted strategies' return on their allocation
        live = [by_name[n] for n in counted if by_name[n]["status"].get("phase") in ("Paper", "Live")
                and by_name[n]["status"].get("pnl") is not None]
        growth = sum(m["status"]["pnl"] for m in live) / sum(m["spec"]["capital"]["amount"] for m in live)
        assert goal["equity"] == pytest.approx(10_000 * (1 + growth), rel=1e-9)
        # ... and the goal manager's report of it, merged into the Goal's status by the operator's status feed
        async def goal_status_agrees() -> bool:
            row = await (await db.execute(
                "SELECT body->'status' AS status FROM kube_resources WHERE kind = 'goals' AND name = 'monthly-8pct'"
            )).fetchone()
            st = (row or {}).get("status") or {}
            return st.get("equity") is not None and abs(st["equity"] - goal["equity"]) <= 1e-9 * goal["equity"]

        await eventually(goal_status_agrees, timeout=30, interval=0.5)
        sizing = (await api.post("/api/v1/position-sizing/calculate",
                                 json={"goal": "monthly-8pct", "equity": 9_000, "peakEquity": 10_000})).json()
        assert sizing["drawdownBrake"] == pytest.approx(1 - 0.10 / 0.15) and sizing["fraction"] <= 0.20
        await api.aclose()
        await db.close()
        await nc.drain()

        # --- Ctrl-C: a clean stop with a summary ---------------------------------------------------
        up.send_signal(signal.SIGINT)
        assert up.proc is not None
        assert await asyncio.to_thread(up.proc.wait, 120) == 0
        out = up.log_path.read_text()
        assert "stopped cleanly" in out and "Traceback" not in out
        summary = json.loads((state / "summary.json").read_text())
        assert {s["name"] for s in summary["strategies"]} >= set(RUNNING)
        # every service did all of this within its role's NATS permissions (the test's own refused
        # anonymous connection is not a permission violation)
        violations = [line for line in (state / "nats" / "nats.log").read_text().splitlines() if "Violation" in line]
        assert not violations, violations[:10]
    finally:
        up.stop(timeout=60, sig=signal.SIGINT)
