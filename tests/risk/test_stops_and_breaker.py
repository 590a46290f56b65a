"""Pure rules of the stop-loss manager and the circuit breaker."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from kubetrade.messaging.schemas import ClientOrderId
from kubetrade.resources.riskpolicy import RiskPolicySpec, StopLossSettings
from kubetrade.risk import breaker, stops
from kubetrade.risk.state import Breaker, PortfolioState


@settings(max_examples=500, deadline=None)
@given(
    side=st.sampled_from([1.0, -1.0]),
    trail=st.floats(0.005, 0.2),
    moves=st.lists(st.floats(-0.05, 0.05), min_size=1, max_size=60),
)
def test_trailing_stops_only_tighten_and_fire_at_their_level(side, trail, moves) -> None:
    s = stops.initial(StopLossSettings(trailing=True, trailing_pct=trail), "a", "BTC/USDT", side, 100.0)
    price, initial = 100.0, s.stop
    for m in moves:
        price *= 1 + m
        before = s.stop
        s = stops.on_price(s, price)
        assert (s.stop >= before) if side > 0 else (s.stop <= before)
        trailed = s.best * (1 - trail) if side > 0 else s.best * (1 + trail)
        level = max(initial, trailed) if side > 0 else min(initial, trailed)
        assert abs(s.stop - level) < 1e-9
        assert stops.triggered(s, price) == ((price <= s.stop) if side > 0 else (price >= s.stop))
    coid = stops.close_order_id(s)
    assert TypeAdapter(ClientOrderId).validate_python(coid) == coid
    assert stops.close_order_id(s) == coid  # a repeated trigger sends the same order


def test_default_stop_and_strategy_stop() -> None:
    s = stops.initial(StopLossSettings(default_stop_pct=0.02), "a", "BTC/USDT", 0.5, 100.0)
    assert s.stop == 98.0 and s.trailing_pct is None
    s = stops.initial(StopLossSettings(), "a", "BTC/USDT:USDT", -0.5, 100.0, stop_price=103.0)
    assert s.stop == 103.0 and not stops.triggered(s, 102.9) and stops.triggered(s, 103.0)


def test_breaker_drawdown_needs_a_person_error_bursts_cool_down() -> None:
    policy = RiskPolicySpec.model_validate({"circuitBreaker": {"exchangeErrorBurst": 3, "cooldownSeconds": 60}})
    state = PortfolioState(equity=84.0, peak_equity=100.0)
    b = breaker.evaluate(policy, state, 1_000)
    assert b.open and b.manual_reset and "drawdown" in (b.reason or "")
    state.breaker = b
    state.equity = 99.0  # recovered, but the trip stays until reset
    assert breaker.evaluate(policy, state, 10**9).open
    state.breaker = breaker.reset(state, 10**9)
    assert not state.breaker.open and state.peak_equity == 99.0
    state.exchange_errors_ms = [10**9 + i for i in range(3)]
    state.breaker = breaker.evaluate(policy, state, 10**9 + 10)
    assert state.breaker.open and not state.breaker.manual_reset
    state.exchange_errors_ms = []
    assert breaker.evaluate(policy, state, 10**9 + 30_000).open
    assert breaker.evaluate(policy, state, 10**9 + 61_000) == Breaker(False, None, 10**9 + 61_000)


def _position(strategy: str, symbol: str, quantity: float = 1.0, entry: float = 100.0) -> dict[str, object]:
    return {
        "environment": "paper",
        "namespace": "default",
        "strategy": strategy,
        "symbol": symbol,
        "exchange": "binance",
        "quantity": quantity,
        "average_price": entry,
        "stop_price": None,
        "trailing_pct": None,
        "best_price": None,
        "stop_generation": 0,
    }


def test_a_stop_tightened_while_the_watch_reloads_in_chunks_stays_tightened() -> None:
    import asyncio

    from kubetrade.risk.stopwatch import StopWatch

    settings_ = StopLossSettings(trailing=True, trailing_pct=0.05)
    rows = [_position(f"s{i:03d}", ("BTC/USDT", "ETH/USDT")[i % 2]) for i in range(200)]
    watch = StopWatch()
    watch.load(rows, lambda *_: settings_)
    assert len(watch.stops) == 200 and watch.stops[("paper", "default", "s000", "BTC/USDT")].stop == 98.0
    reload = watch.loading(rows, lambda *_: settings_, chunk=50)
    next(reload)  # a first chunk is read from rows without a stop (the default: 2 % below entry) ...
    # ... when a price arrives: BTC/USDT trails up to 120 * 0.95, ETH/USDT is not visited
    asyncio.run(watch.on_price(None, "BTC/USDT", 120.0))
    assert watch.stops[("paper", "default", "s001", "ETH/USDT")].best == 100.0
    for _ in reload:
        pass
    btc = watch.stops[("paper", "default", "s000", "BTC/USDT")]
    assert btc.stop == 114.0 and btc.best == 120.0  # kept, not reset from the rows
    assert watch.stops[("paper", "default", "s001", "ETH/USDT")].stop == 98.0
    # a position whose entry changed (closed and reopened) starts from its row again
    rows[0] = _position("s000", "BTC/USDT", entry=130.0)
    watch.load(rows, lambda *_: settings_)
    assert watch.stops[("paper", "default", "s000", "BTC/USDT")].stop == 130.0 * 0.98
    # a position that is gone no longer has a stop, and prices no longer visit it
    watch.load(rows[1:], lambda *_: settings_)
    assert ("paper", "default", "s000", "BTC/USDT") not in watch.stops
    assert ("paper", "default", "s000", "BTC/USDT") not in watch.by_symbol["BTC/USDT"]
