"""Backtest/paper parity: real candles replayed through the runner (with the real risk manager
and paper executor as processes) give the backtester's trades, trade for trade - exit prices
included, for stop-losses and take-profits hit inside a bar too (filled where the kernel fills
them, by its conservative intra-bar order, not at the close), whether the runner's exit or the
risk manager's stop-loss watch closes the position."""

from __future__ import annotations

import pytest

from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.templates import ema_cross
from kubetrade.ledger import connection
from tests.runtime.paperreplay import replay

WARMUP, LIVE = 400, 900


def strategy_doc(genome: dict, **spec) -> dict:
    return {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy",
            "metadata": {"name": "parity", "namespace": "default", "uid": "u-1"},
            "spec": {"symbols": ["BTC/USDT"], "timeframe": "5m", "mode": "paper", "capital": {"amount": 10_000},
                     "riskPolicyRef": {"name": "loose"}, "warmupBars": WARMUP, "genome": genome,
                     "execution": {"feeRate": 0.001, "slippageBps": 2}} | spec}


PLAIN = ema_cross(5, 20).model_copy(update={"position_pct": 0.5})
STOPS = ema_cross(5, 20).model_copy(update={"position_pct": 0.5, "stop_loss_pct": 0.003, "take_profit_pct": 0.004})


@pytest.mark.parametrize(("genome", "watch"), [(PLAIN, False), (STOPS, False), (STOPS, True)],
                         ids=["signals", "stops-by-the-runner", "stops-by-the-stop-watch-too"])
async def test_paper_runner_trades_exactly_like_the_backtest(tmp_path, runtime_nats, runtime_dsn, rnc, genome,
                                                             watch) -> None:
    candles = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz").slice(20_000, 20_000 + WARMUP + LIVE)
    costs = Costs(fee=0.001, slippage=0.0002, init_cash=10_000)
    expected = backtest(genome, candles, costs, start=WARMUP).trades
    assert len(expected) >= 10
    inside = [t for t in expected if t.reason in ("stop-loss", "take-profit")
              and abs(t.exit_price / (1 - costs.slippage) - candles.close[t.exit_bar]) > 1e-6]
    if genome is STOPS:  # stops and targets hit inside the bar, away from its close: where paper used to fill
        assert {t.reason for t in inside} == {"stop-loss", "take-profit"} and len(inside) >= 6

    conn = await connection.connect(runtime_dsn)
    doc = strategy_doc(genome.to_k8s())
    reports = await replay(tmp_path, runtime_nats.url, runtime_dsn, rnc, conn, doc, candles, WARMUP, LIVE,
                           watch=watch)

    # the executor's record: fills per order, entries and exits paired in order
    cur = await conn.execute("SELECT o.client_order_id, o.side, f.quantity, f.price, f.fee FROM fills f "
                             "JOIN orders o ON o.id = f.order_id WHERE o.strategy = 'parity' ORDER BY f.id")
    fills = await cur.fetchall()
    time_of = {int(t): i for i, t in enumerate(candles.time)}
    paper = []
    by_watch = 0
    for entry, exit_ in zip(fills[::2], fills[1::2], strict=False):
        assert entry["side"] == "buy" and exit_["side"] == "sell"
        eb = time_of[int(entry["client_order_id"].split("-")[2])]
        if exit_["client_order_id"].startswith("stop-"):  # the stop watch closed it: no bar in its id
            by_watch += 1
            xb = None
        else:
            xb = time_of[int(exit_["client_order_id"].split("-")[2])]
        pnl = exit_["quantity"] * exit_["price"] - exit_["fee"] - entry["quantity"] * entry["price"] - entry["fee"]
        paper.append((eb, xb, entry["quantity"], entry["price"], exit_["price"], pnl))
    want = [(t.entry_bar, t.exit_bar, t.qty, t.entry_price, t.exit_price, t.pnl) for t in expected]
    assert len(paper) == len(want)
    for got, exp in zip(paper, want, strict=True):
        assert got[0] == exp[0] and got[1] in (exp[1], None)
        t = expected[want.index(exp)]
        assert got[2:] == pytest.approx(exp[2:], rel=1e-9, abs=1e-6), (
            t, [(candles.open[i], candles.high[i], candles.low[i], candles.close[i])
                for i in range(t.exit_bar - 1, t.exit_bar + 2)])
    # the runner's own report agrees with the record
    last = reports[-1].status
    assert last["trades"] == len(want)
    # ... and its paper check (the review's live gate input) finds the backtest of the same bars trade for trade
    check = last["paperCheck"]
    assert check["paper"]["trades"] == check["backtest"]["trades"] >= len(want) - 1
    # a close by the stop watch is booked at the time it came, not at a bar: alike in price, not in bar
    assert check["matchedTrades"] >= check["paper"]["trades"] - by_watch
    assert check["paper"]["returnPct"] == pytest.approx(check["backtest"]["returnPct"], abs=1e-9)
    assert check["paper"]["maxDrawdown"] == pytest.approx(check["backtest"]["maxDrawdown"], abs=1e-9)
    assert check["bars"] >= LIVE - 30
    ledger = await (await conn.execute("SELECT cash FROM ledgers WHERE strategy = 'parity'")).fetchone()
    open_qty = len(fills) % 2 and fills[-1]["quantity"]
    assert last["equity"] == pytest.approx(ledger["cash"] + open_qty * candles.close[-1], rel=1e-9)
    await conn.close()
