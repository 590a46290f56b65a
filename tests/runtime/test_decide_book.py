"""The runner's pure parts: order intents from a bar's signal, and the books from fills."""

from __future__ import annotations

import math

import pytest

from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.engine.live import Signal
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.templates import ema_cross
from kubetrade.runner.account import Book
from kubetrade.runner.intents import Sizing, client_order_id, intents

SIZING = Sizing(position_pct=0.5, multiplier=1.0, fee_rate=0.001, slippage=0.0002)


def sig(opened: int = 0, exit_reason: str = "", position: int = 0) -> Signal:
    return Signal(bar=1, exit_reason=exit_reason, exit_price=math.nan, opened=opened, entry_price=math.nan,
                  position=position)


def run(s: Signal, held: float = 0.0, cash: float = 10_000.0, sizing: Sizing = SIZING, busy: bool = False):
    return intents(s, symbol="BTC/USDT", symbol_index=0, bar_time=1_704_067_200_000, close=100.0, held=held,
                   cash=cash, sizing=sizing, prefix="abcdef12", busy=busy)


def test_client_order_ids_are_fixed_per_decision_and_fit_the_exchange_limit() -> None:
    a = client_order_id("abcdef12", 49, 1_704_067_200_000, "entry")
    assert a == client_order_id("abcdef12", 49, 1_704_067_200_000, "entry") == "abcdef12-49-1704067200000-e"
    assert len(a) <= 36 and a != client_order_id("abcdef12", 49, 1_704_067_200_000, "exit")


def test_entry_is_sized_like_the_backtester() -> None:
    [it] = run(sig(opened=1, position=1))
    assert it.kind == "entry" and it.side == "buy" and not it.reduce_only
    assert it.quantity == pytest.approx(10_000 * 0.5 / 1.001 / (100 * 1.0002))


def test_goal_multiplier_scales_and_zero_means_no_entry() -> None:
    [half] = run(sig(opened=1, position=1), sizing=Sizing(0.5, 0.5, 0.001, 0.0002))
    [full] = run(sig(opened=1, position=1))
    assert half.quantity == pytest.approx(full.quantity / 2)
    assert run(sig(opened=1, position=1), sizing=Sizing(0.5, 0.0, 0.001, 0.0002)) == []


def test_exit_closes_the_actual_position_and_a_reversal_reopens_with_the_expected_cash() -> None:
    out = run(sig(opened=-1, exit_reason="reverse", position=-1), held=3.0, cash=9_000.0)
    assert [(i.kind, i.side, i.reduce_only) for i in out] == [("exit", "sell", True), ("entry", "sell", False)]
    assert out[0].quantity == 3.0
    expected_cash = 9_000 + 3.0 * 100 * (1 - 0.0002) * (1 - 0.001)
    assert out[1].quantity == pytest.approx(expected_cash * 0.5 / 1.001 / (100 * (1 - 0.0002)))


def test_a_position_the_strategy_no_longer_wants_is_flattened_and_busy_waits() -> None:
    [it] = run(sig(position=0), held=2.0)
    assert it.kind == "flatten" and it.side == "sell" and it.quantity == 2.0 and it.reduce_only
    assert run(sig(position=0), held=2.0, busy=True) == []
    assert run(sig(position=1), held=2.0) == []  # held and wanted: nothing to do


def test_books_from_fills_match_the_backtest_and_ignore_replays() -> None:
    c = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz").slice(0, 2000)
    genome = ema_cross(5, 20).model_copy(update={"position_pct": 0.5})
    bt = backtest(genome, c, Costs(fee=0.001, slippage=0.0002, init_cash=10_000))
    book = Book(10_000)
    for n, t in enumerate(bt.trades):
        assert book.apply_fill(f"{n}-in", "BTC/USDT", "buy", t.qty, t.entry_price, t.qty * t.entry_price * 0.001,
                               int(c.time[t.entry_bar]))
        assert not book.apply_fill(f"{n}-in", "BTC/USDT", "buy", t.qty, t.entry_price, 0.0, 0)  # redelivered
        book.apply_fill(f"{n}-out", "BTC/USDT", "sell", t.qty, t.exit_price, t.qty * t.exit_price * 0.001,
                        int(c.time[t.exit_bar]))
        book.close_bar()
    assert len(book.trades) == len(bt.trades) >= 10
    assert [x.pnl for x in book.trades] == pytest.approx([t.pnl for t in bt.trades], rel=1e-9)
    assert book.cash == pytest.approx(bt.equity[bt.trades[-1].exit_bar], rel=1e-9)  # flat after the last exit
    assert book.open_positions == 0 and book.pnl == pytest.approx(sum(t.pnl for t in bt.trades), rel=1e-9)


def test_an_exit_inside_the_bar_names_its_bar_and_levels_and_the_paper_fill_comes_from_the_candle() -> None:
    from pydantic import ValidationError

    from kubetrade.api.routes.orders import NewOrder
    from kubetrade.engine.costs import fill_price
    from kubetrade.executor.venues import PaperVenue

    t = 1_704_067_200_000
    stopped = Signal(bar=1, exit_reason="stop-loss", exit_price=97.0 * (1 - 0.0002), opened=0, entry_price=math.nan,
                     position=0, exit_stop=97.0, exit_target=104.0)
    [it] = intents(stopped, symbol="BTC/USDT", symbol_index=0, bar_time=t, close=100.0, held=2.0, cash=0.0,
                   sizing=SIZING, prefix="abcdef12", timeframe="5m")
    assert it.kind == "exit" and it.reduce_only and it.price == 100.0  # decided at the close of 100
    assert it.bar_exit is not None and (it.bar_exit.bar_time, it.bar_exit.stop, it.bar_exit.target) == (t, 97.0, 104.0)
    [by_signal] = run(Signal(bar=1, exit_reason="signal", exit_price=100.0 * (1 - 0.0002), opened=0,
                             entry_price=math.nan, position=0), held=2.0)
    assert by_signal.bar_exit is None  # a signal exit fills at the close anyway

    venue = PaperVenue()
    venue.on_price("binance", "BTC/USDT", 100.0)
    order = {"client_order_id": it.client_order_id, "exchange": "binance", "symbol": "BTC/USDT", "side": "sell",
             "type": "market", "quantity": 2.0, "filled_quantity": 0.0, "slippage_bps": 2.0, "fee_rate": 0.001,
             "price": 100.0, "reduce_only": True, "bar_exit": it.bar_exit.to_k8s()}
    assert venue.fill_for(order, 0) is None, "the bar's candle has not arrived: the exit waits for it"
    venue.on_candle("binance", "BTC/USDT", "5m", t, 99.0, 101.0, 96.5)  # the bar went through the stop at 97
    assert venue.fill_for(order, 0)["price"] == pytest.approx(stopped.exit_price, rel=1e-12)  # the kernel's fill
    venue.on_candle("binance", "BTC/USDT", "5m", t + 300_000, 95.0, 96.0, 94.0)
    gapped = {**order, "bar_exit": {**order["bar_exit"], "barTime": t + 300_000}}
    assert venue.fill_for(gapped, 0)["price"] == pytest.approx(95.0 * (1 - 0.0002))  # opened through it: the open
    # a level the bar never traded is no price at all: the fill is the market's, as for any market order
    forged = {**order, "bar_exit": {**order["bar_exit"], "stop": 60.0, "target": 150.0}}
    assert venue.fill_for(forged, 0)["price"] == fill_price("sell", 100.0, 0.0002)
    assert venue.fill_for({**order, "reduce_only": False}, 0)["price"] == fill_price("sell", 100.0, 0.0002)
    # a bar that never came while later ones did: the market price, not a wait until the order expires
    lost = {**order, "bar_exit": {**order["bar_exit"], "barTime": t - 300_000}}
    assert venue.fill_for(lost, 0)["price"] == fill_price("sell", 100.0, 0.0002)
    # a manual order through the API cannot carry a bar, a level or a price of its own to fill at
    for field in ("barExit", "paperFillPrice"):
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            NewOrder.model_validate({"strategy": "s", "symbol": "BTC/USDT", "side": "sell", "quantity": 1,
                                     "price": 100, "reduceOnly": True, field: order["bar_exit"]})


def test_the_stop_watch_names_the_bar_of_a_paper_stop_a_candle_triggered() -> None:
    import asyncio

    from kubetrade.messaging import codec
    from kubetrade.messaging.schemas import OrderRequest
    from kubetrade.resources.riskpolicy import StopLossSettings
    from kubetrade.risk.stopwatch import StopWatch

    sent: list[OrderRequest] = []

    class JS:
        async def publish(self, subject: str, data: bytes, headers: dict | None = None) -> None:
            sent.append(codec.decode(OrderRequest, data))

    watch = StopWatch()
    rows = [{"environment": env, "namespace": "n", "strategy": f"s-{env}", "symbol": "BTC/USDT", "quantity": 1.0,
             "average_price": 100.0, "stop_price": 97.0, "trailing_pct": None, "best_price": 100.0,
             "stop_generation": 0, "exchange": "binance"} for env in ("paper", "live")]
    watch.load(rows, lambda *_: StopLossSettings(enforce_without_runner=True))
    asyncio.run(watch.on_price(JS(), "BTC/USDT", 96.0, ("5m", 1_704_067_200_000)))
    by_env = {o.environment: o for o in sent}
    assert by_env["paper"].bar_exit is not None and by_env["paper"].bar_exit.stop == 97.0
    assert by_env["paper"].bar_exit.bar_time == 1_704_067_200_000
    assert by_env["live"].bar_exit is None  # a live exchange fills where the market is
