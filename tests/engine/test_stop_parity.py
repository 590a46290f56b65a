"""The backtest's stops and the risk manager's stop watch are one rule: every position the
kernel held with a stop-loss and a trailing stop, watched bar by bar by the stop watch's own
functions (the open, then the far side of the bar against the position, then the near side
that moves the best price), is stopped out on the same bar at the same level - and, for
trades that ended otherwise, never earlier than the kernel ended them."""

from __future__ import annotations

import pytest

from kubetrade.candles import Candles
from kubetrade.engine import stoprule
from kubetrade.engine.runs import Costs, backtest
from kubetrade.resources.riskpolicy import StopLossSettings
from kubetrade.risk import stops

from .strategies import g

COSTS = Costs(fee=0.001, slippage=0.0005)
STOPPED = ("stop-loss", "trailing-stop")


def _watched(genome_spec: dict[str, object], candles: Candles, market: str) -> tuple[int, int, int]:
    genome = g(genome_spec)
    sl, ts = genome.stop_loss_pct, genome.trailing_stop_pct
    assert sl and ts
    result = backtest(genome, candles, COSTS, market=market)  # type: ignore[arg-type]
    same = stopped = shorts = 0
    for t in result.trades:
        side = t.side
        stop = stops.initial(
            StopLossSettings(default_stop_pct=sl), "s", candles.symbol, side * t.qty, t.entry_price,
            stop_price=stoprule.fixed_level(side, t.entry_price, sl), trailing_pct=ts,
            best=float(candles.close[t.entry_bar]),  # the kernel's best price starts at the entry bar's close
        )
        hit: tuple[int, float] | None = None
        for i in range(t.entry_bar + 1, t.exit_bar + 1):
            o, h, lo = float(candles.open[i]), float(candles.high[i]), float(candles.low[i])
            stop = stops.on_price(stop, o)
            if stops.triggered(stop, o):
                hit = (i, o)  # a gap through the stop fills at the open
                break
            if stops.triggered(stop, lo if side > 0 else h):
                hit = (i, stop.stop)
                break
            stop = stops.on_price(stop, h if side > 0 else lo)
        if t.reason in STOPPED:
            stopped += 1
            shorts += side < 0
            raw = t.exit_price / (1 - COSTS.slippage) if side > 0 else t.exit_price / (1 + COSTS.slippage)
            assert hit is not None and hit[0] == t.exit_bar, (t, hit)
            assert hit[1] == pytest.approx(raw, rel=1e-12)
        else:  # the kernel ended it first (signal, take-profit): the stop watch had not fired before
            assert hit is None or hit[0] == t.exit_bar, (t, hit)
        same += 1
    return same, stopped, shorts


@pytest.mark.parametrize("market", ["spot", "perpetual"])
def test_the_kernels_stops_are_the_stop_watchs(btc_1m: Candles, eth_perp: Candles, market: str) -> None:
    spec: dict[str, object] = {
        "entry": {"rules": [{"left": {"indicator": "ema", "params": {"period": 9}}, "op": "crossesAbove",
                             "right": {"indicator": "ema", "params": {"period": 40}}}]},
        "exit": {"rules": [{"left": {"indicator": "ema", "params": {"period": 9}}, "op": "crossesBelow",
                            "right": {"indicator": "ema", "params": {"period": 40}}}]},
        "stopLossPct": 0.004, "trailingStopPct": 0.003,
    }
    if market == "perpetual":
        spec |= {"direction": "both", "shortEntry": spec["exit"]}
    candles = (btc_1m if market == "spot" else eth_perp).slice(0, 20_000)
    trades, stopped, shorts = _watched(spec, candles, market)
    assert trades >= 20 and stopped >= 10, (trades, stopped)
    assert shorts >= 5 if market == "perpetual" else shorts == 0
