"""The risk decision: a pure function of (policy, portfolio state, signal, time).

Order of the checks, and why:

1. **Reducing orders** (``reduceOnly``, or an order against the current position) are
   capped at the position and approved even with the breaker open or the kill switch on:
   closing risk must always be possible, stops included.
2. **System level** (kill switch, open breaker, stale data, price anomaly, exchange-error
   burst) and **portfolio state** (drawdown, daily loss, open positions) reject new risk
   outright: no size would make it acceptable.
3. **Size caps** (max position, risk per trade from the stop distance, leverage, symbol
   exposure, gross exposure) each give a largest quantity; the smallest wins and the
   order is reduced to it, with every binding cap named.
4. **Correlation** rejects a position that duplicates an open one; **VaR/CVaR** reduce the
   size (bisection on the added quantity, which always ends on a size that satisfies the
   limit) or reject when even a tiny order breaks them.

Positions are valued at ``max(signal price, market price)`` so a stale or optimistic
signal price cannot understate the exposure.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetrade.messaging.schemas import RiskDecision, Signal
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.risk import measures
from kubetrade.risk.state import Exposure, PortfolioState, exposure

MIN_FRACTION = 1e-9
"""An approved size smaller than this fraction of the request is a rejection, not a dust order."""
SAFETY = 1.0 - 1e-12
"""Caps are shaded by a hair so that float rounding never lands an approved order over a limit."""
VAR_STEPS = 40


@dataclass(frozen=True)
class Cap:
    rule: str
    quantity: float
    reason: str


def _correlation(state: PortfolioState, a: str, b: str, lookback: int) -> float | None:
    """Return correlation of two symbols, memoised in the state until its returns are replaced."""
    key = (min(a, b), max(a, b), lookback)
    if key not in state.correlations:
        state.correlations[key] = measures.correlation(state.bar_returns[a], state.bar_returns[b], lookback)
    return state.correlations[key]


def is_perpetual(symbol: str) -> bool:
    return ":" in symbol


def default_stop(policy: RiskPolicySpec, side: str, price: float) -> float:
    pct = policy.stop_loss.default_stop_pct
    return price * (1.0 - pct) if side == "buy" else price * (1.0 + pct)


def reject(signal: Signal, rule: str, reason: str, now_ms: int, **extra: object) -> RiskDecision:
    """A refusal of ``signal`` by ``rule``, with the reason."""
    return RiskDecision(
        client_order_id=signal.client_order_id,
        strategy=signal.strategy,
        approved=False,
        quantity=0.0,
        requested_quantity=signal.quantity,
        rule=rule,
        reasons=[reason],
        time=now_ms,
        **extra,
    )


def system_block(policy: RiskPolicySpec, state: PortfolioState, signal: Signal, now_ms: int) -> tuple[str, str] | None:
    """The system- or portfolio-level rule that forbids new risk now, if any."""
    cb = policy.circuit_breaker
    pl = policy.portfolio_limits
    sym = signal.symbol
    if cb.kill_switch:
        return "killSwitch", "manual kill switch is on: no new positions"
    if state.breaker.open:
        return "circuitBreaker", f"circuit breaker open: {state.breaker.reason}"
    seen = state.last_data_ms.get(sym)
    if seen is None or now_ms - seen > cb.stale_data_seconds * 1000:
        age = "never" if seen is None else f"{(now_ms - seen) / 1000:.0f}s ago"
        return "staleDataSeconds", f"market data for {sym} last seen {age} (limit {cb.stale_data_seconds}s)"
    move = state.last_move.get(sym, 0.0)
    if move > cb.price_anomaly_pct:
        return "priceAnomalyPct", f"{sym} moved {move:.2%} in one candle (limit {cb.price_anomaly_pct:.2%})"
    mark = state.prices.get(sym)
    if mark is None:
        return "staleDataSeconds", f"no market price for {sym}"
    gap = abs(signal.price / mark - 1.0)
    if gap > cb.price_anomaly_pct:
        return "priceAnomalyPct", f"signal price {signal.price} is {gap:.2%} from market {mark}"
    window = now_ms - cb.error_window_seconds * 1000
    errors = sum(1 for t in state.exchange_errors_ms if t >= window)
    if errors >= cb.exchange_error_burst:
        return "exchangeErrorBurst", f"{errors} exchange errors in {cb.error_window_seconds}s"
    if state.peak_equity > 0:
        dd = 1.0 - state.equity / state.peak_equity
        if dd >= pl.max_drawdown_pct:
            return "maxDrawdownPct", f"drawdown {dd:.2%} from peak (limit {pl.max_drawdown_pct:.2%})"
    if state.day_start_equity > 0:
        loss = 1.0 - state.equity / state.day_start_equity
        if loss >= pl.daily_loss_limit_pct:
            return "dailyLossLimitPct", f"daily loss {loss:.2%} (limit {pl.daily_loss_limit_pct:.2%})"
    return None


def size_caps(
    policy: RiskPolicySpec,
    state: PortfolioState,
    signal: Signal,
    price: float,
    stop: float,
    capital: float,
    ex: Exposure,
) -> list[Cap]:
    """Largest added quantity each sizing rule allows (before the statistical checks)."""
    sl = policy.strategy_limits
    pl = policy.portfolio_limits
    current = abs(ex.position)
    caps = [
        Cap(
            "maxPositionPct",
            sl.max_position_pct * capital * SAFETY / price - current,
            f"position limited to {sl.max_position_pct:.0%} of capital {capital:g}",
        )
    ]
    # the loss if the stop is hit, from the worse of the signal's and the market's price
    mark = state.prices.get(signal.symbol, signal.price)
    distance = max(abs(signal.price - stop), abs(mark - stop), abs(price - stop))
    caps.append(
        Cap(
            "maxRiskPerTradePct",
            sl.max_risk_per_trade_pct * capital * SAFETY / distance,
            f"loss at stop {stop:g} limited to {sl.max_risk_per_trade_pct:.0%} of capital {capital:g}",
        )
    )
    gross = ex.strategy_gross
    caps.append(
        Cap(
            "maxLeverage",
            (sl.max_leverage * capital * SAFETY - gross) / price,
            f"strategy exposure limited to {sl.max_leverage:g}x capital",
        )
    )
    equity = max(state.equity, 0.0)
    net = ex.net.get(signal.symbol, 0.0)
    signed = 1.0 if signal.side == "buy" else -1.0
    caps.append(
        Cap(
            "maxSymbolExposurePct",
            (pl.max_symbol_exposure_pct * equity * SAFETY / price) - signed * net,
            f"{signal.symbol} exposure limited to {pl.max_symbol_exposure_pct:.0%} of equity {equity:g}",
        )
    )
    pgross = ex.portfolio_gross
    caps.append(
        Cap(
            "maxGrossExposurePct",
            (pl.max_gross_exposure_pct * equity * SAFETY - pgross) / price,
            f"portfolio exposure limited to {pl.max_gross_exposure_pct:g}x equity",
        )
    )
    return caps


def _var_ok(
    policy: RiskPolicySpec, state: PortfolioState, signal: Signal, price: float, qty: float, ex: Exposure
) -> tuple[bool, str]:
    pl = policy.portfolio_limits
    values = dict(ex.net_values)
    values[signal.symbol] = values.get(signal.symbol, 0.0) + (qty if signal.side == "buy" else -qty) * price
    result = measures.portfolio_var(values, state.daily_returns, pl.var_confidence, pl.var_method, pl.var_lookback_days)
    if result is None:
        return True, "VaR/CVaR not evaluated: fewer than 20 days of returns for a held symbol"
    equity = max(state.equity, 1e-12)
    if result.var > pl.var_limit_pct * equity:
        return False, f"VaR {result.var / equity:.2%} of equity over limit {pl.var_limit_pct:.2%}"
    if result.cvar > pl.cvar_limit_pct * equity:
        return False, f"CVaR {result.cvar / equity:.2%} of equity over limit {pl.cvar_limit_pct:.2%}"
    return True, ""


def decide(
    policy: RiskPolicySpec,
    state: PortfolioState,
    signal: Signal,
    now_ms: int,
    policy_name: str | None = None,
    revision: int | None = None,
) -> RiskDecision:
    """Approve (possibly reduced) or reject one signal.  Never raises on a well-formed signal."""
    extra = {"policy": policy_name, "policy_revision": revision}
    current = state.position(signal.strategy, signal.symbol)
    delta_sign = 1.0 if signal.side == "buy" else -1.0
    reducing = current != 0.0 and (current > 0) != (delta_sign > 0)
    if signal.reduce_only or reducing:
        if not reducing:
            return reject(
                signal, "reduceOnly", f"reduce-only {signal.side} but position is {current:g}", now_ms, **extra
            )
        qty = min(signal.quantity, abs(current))
        reasons = [f"reduces position {current:g}: allowed whatever the breaker state"]
        if qty < signal.quantity:
            reasons.append(f"capped at the position {abs(current):g}: an order may not flip it")
        return RiskDecision(
            client_order_id=signal.client_order_id,
            strategy=signal.strategy,
            approved=True,
            quantity=qty,
            requested_quantity=signal.quantity,
            rule="reduceOnly" if qty < signal.quantity else None,
            reasons=reasons,
            time=now_ms,
            **extra,
        )
    capital = state.capital.get(signal.strategy)
    if capital is None or capital <= 0:
        return reject(signal, "allocation", f"strategy {signal.strategy} has no capital allocated", now_ms, **extra)
    if signal.side == "sell" and not is_perpetual(signal.symbol):
        return reject(signal, "spotShort", f"{signal.symbol} is spot: cannot sell without a position", now_ms, **extra)
    blocked = system_block(policy, state, signal, now_ms)
    if blocked:
        return reject(signal, blocked[0], blocked[1], now_ms, **extra)
    pl = policy.portfolio_limits
    price = max(signal.price, state.prices[signal.symbol])
    ex = exposure(state, signal.strategy, signal.symbol, price)
    if current == 0.0 and ex.open_positions >= pl.max_open_positions:
        return reject(
            signal,
            "maxOpenPositions",
            f"{ex.open_positions} positions open (limit {pl.max_open_positions})",
            now_ms,
            **extra,
        )
    stop = signal.stop_price if signal.stop_price is not None else default_stop(policy, signal.side, signal.price)
    if (signal.side == "buy" and stop >= signal.price) or (signal.side == "sell" and stop <= signal.price):
        return reject(
            signal, "invalidStop", f"stop {stop:g} is on the wrong side of price {signal.price:g}", now_ms, **extra
        )
    extra["stop_price"] = stop  # type: ignore[assignment]
    caps = size_caps(policy, state, signal, price, stop, capital, ex)
    binding = min(caps, key=lambda c: c.quantity)
    qty = min(signal.quantity, binding.quantity)
    floor = signal.quantity * MIN_FRACTION
    if qty <= floor:
        return reject(signal, binding.rule, f"{binding.reason}: no room left", now_ms, **extra)
    reasons = [f"{c.reason}: at most {max(c.quantity, 0):g}" for c in caps if c.quantity < signal.quantity]
    rule = binding.rule if qty < signal.quantity else None
    # correlation with open positions on the same side
    if signal.symbol in state.bar_returns:
        for sym in sorted(ex.long_symbols if delta_sign > 0 else ex.short_symbols):
            if sym == signal.symbol or sym not in state.bar_returns:
                continue
            rho = _correlation(state, signal.symbol, sym, pl.correlation_lookback_bars)
            if rho is not None and rho > pl.max_correlation:
                return reject(
                    signal,
                    "maxCorrelation",
                    f"{signal.symbol} correlates {rho:.2f} with open {sym} (limit {pl.max_correlation:.2f})",
                    now_ms,
                    **extra,
                )
    ok, why = _var_ok(policy, state, signal, price, qty, ex)
    if not ok:
        lo, hi = 0.0, qty
        if not _var_ok(policy, state, signal, price, floor, ex)[0]:
            return reject(signal, "varLimitPct", why, now_ms, **extra)
        lo = floor
        for _ in range(VAR_STEPS):
            mid = 0.5 * (lo + hi)
            if _var_ok(policy, state, signal, price, mid, ex)[0]:
                lo = mid
            else:
                hi = mid
        qty, rule = lo, "varLimitPct"
        reasons.append(f"{why}: reduced to {qty:g}")
    elif why:
        reasons.append(why)
    return RiskDecision(
        client_order_id=signal.client_order_id,
        strategy=signal.strategy,
        approved=True,
        quantity=qty,
        requested_quantity=signal.quantity,
        rule=rule,
        reasons=reasons,
        time=now_ms,
        **extra,
    )


def reserve(state: PortfolioState, signal: Signal, decision: RiskDecision) -> None:
    """Count an approved quantity in the holdings until the executor reports what became of it."""
    if decision.approved and decision.quantity > 0:
        sign = 1.0 if signal.side == "buy" else -1.0
        hold(state, signal.strategy, signal.symbol, sign * decision.quantity)


def hold(state: PortfolioState, strategy: str, symbol: str, signed_qty: float) -> None:
    """Add a signed quantity to a holding; what is left of closing it exactly is zero, not a float's dust."""
    key = (strategy, symbol)
    new = state.holdings.get(key, 0.0) + signed_qty
    state.holdings[key] = 0.0 if abs(new) < 1e-12 * max(1.0, abs(signed_qty)) else new
