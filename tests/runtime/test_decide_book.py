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
