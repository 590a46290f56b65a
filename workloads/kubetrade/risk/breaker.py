"""When the portfolio's circuit breaker trips and when it may close again (pure).

* drawdown from the equity peak at or over ``maxDrawdownPct`` trips it until a person
  resets it (the losses are real; a machine should not decide they are over);
* a burst of exchange errors trips it for ``cooldownSeconds``;
* the kill switch is not a trip: it is the policy itself saying "no new positions" and is
  lifted by editing the policy.
Stale data and price anomalies are per symbol and are checked on each signal instead.
"""

from __future__ import annotations

from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.risk.state import Breaker, PortfolioState


def evaluate(policy: RiskPolicySpec, state: PortfolioState, now_ms: int) -> Breaker:
    """The breaker state after looking at the portfolio now."""
    b = state.breaker
    cb = policy.circuit_breaker
    if state.peak_equity > 0:
        dd = 1.0 - state.equity / state.peak_equity
        if dd >= policy.portfolio_limits.max_drawdown_pct:
            if b.open and b.manual_reset:
                return b
            return Breaker(True, f"drawdown {dd:.2%} >= maxDrawdownPct", now_ms, manual_reset=True)
    window = now_ms - cb.error_window_seconds * 1000
    errors = sum(1 for t in state.exchange_errors_ms if t >= window)
    if errors >= cb.exchange_error_burst:
        if b.open:
            return b
        return Breaker(True, f"{errors} exchange errors in {cb.error_window_seconds}s", now_ms)
    if b.open and not b.manual_reset and now_ms - b.since_ms >= cb.cooldown_seconds * 1000:
        return Breaker(False, None, now_ms)
    return b


def reset(state: PortfolioState, now_ms: int) -> Breaker:
    """A person's reset; the peak restarts from today's equity so the same drawdown does not re-trip at once."""
    state.peak_equity = state.equity
    return Breaker(False, None, now_ms)
