"""The gates: what a strategy must prove before paper trading, and before live trading.

Pure functions of the evidence and the Goal's thresholds, used by every path that sends a
strategy on: the Goal's evolution run (``kubetrade goal-evolution``, the CronJob, and the
evolution ``kubetrade up`` runs) through :func:`paper_gate`, and the review's promotion to
live through :func:`live_gate`.  Nothing else decides; no path has its own copy.

**Paper gate** (``spec.gates`` of the Goal), on the out-of-sample evidence of the
walk-forward (:mod:`kubetrade.engine.walkforward`), all after costs:

1. scored on at least ``minWindows`` out-of-sample windows, with at least ``minTrades`` trades;
2. a positive return in more than ``minPositiveWindows`` of those windows;
3. a deflated Sharpe ratio of the pooled out-of-sample returns of at least ``minDeflatedSharpe``
   (the number of trials is every genome the run's searches tried);
4. a probability of backtest overfitting of the search that chose it of at most ``maxPbo``
   (unknown counts as a failure, except for a strategy evaluated alone, ``trials`` = 1);
5. a compounded out-of-sample return above the benchmark's over the same windows (cash: 0,
   or buying and holding).

**Live gate** (``spec.review.promote``), on the paper period: the paper result must agree
with a backtest of the same bars (the runner steps the backtester's own kernel beside its
paper book and reports both, ``status.paperCheck``) over at least ``minCheckDays``: trade for
trade (entry bar, exit bar, side; at most ``maxTradeMismatch`` unmatched on either side) and
returns no further apart than ``maxReturnGap``; and the paper result itself must meet the
promotion criteria (Sharpe, drawdown, trades, return, and its Sharpe no more than
``maxBacktestGap`` below the out-of-sample Sharpe it was selected on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kubetrade.resources.goal import PromotionCriteria, SelectionGates
from kubetrade.resources.strategy import PaperCheck, SelectionEvidence


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "passed every gate" if self.passed else "; ".join(self.failures)


def paper_gate(e: SelectionEvidence, g: SelectionGates) -> Verdict:
    """Whether the out-of-sample evidence is enough to send the strategy to paper trading."""
    fail: list[str] = []
    n = len(e.windows)
    if n < g.min_windows:
        fail.append(f"{n} out-of-sample window(s) < minWindows {g.min_windows}")
    if e.trades < g.min_trades:
        fail.append(f"{e.trades} out-of-sample trades < minTrades {g.min_trades}")
    if n and not e.positive_windows / n > g.min_positive_windows:
        fail.append(f"positive in {e.positive_windows} of {n} windows, not more than "
                    f"{g.min_positive_windows:.0%}")
    if e.deflated_sharpe < g.min_deflated_sharpe:
        fail.append(f"deflated Sharpe {e.deflated_sharpe:.2f} < {g.min_deflated_sharpe:.2f} "
                    f"(Sharpe {e.sharpe:.2f} against {e.luck_sharpe:.2f} that the best of {e.trials} tries "
                    f"reaches by luck)")
    if e.pbo is None:
        if e.trials > 1:  # one strategy tried alone was not chosen from others: nothing to overfit by choosing
            fail.append(f"no probability of backtest overfitting: the returns of the {e.trials} tries are not known "
                        f"(give the PBO of the search that found it)")
    elif e.pbo > g.max_pbo:
        fail.append(f"PBO {e.pbo:.2f} > {g.max_pbo:.2f}")
    if not e.oos_return_pct > e.benchmark_return_pct:
        what = "cash" if e.benchmark == "cash" else "buy-and-hold"
        fail.append(f"out-of-sample return {e.oos_return_pct:+.2%} does not beat {what} "
                    f"{e.benchmark_return_pct:+.2%}")
    return Verdict(not fail, fail)


def judged(e: SelectionEvidence, g: SelectionGates) -> SelectionEvidence:
    """The evidence with the paper gate's verdict written into it (what the Strategy's status carries)."""
    v = paper_gate(e, g)
    return e.model_copy(update={"passed": v.passed, "failures": v.failures})


def no_pass_message(evidence: list[SelectionEvidence], pbos: list[float]) -> str:
    """What a Goal's status and Event say when nothing passed: the best figures seen."""
    if not evidence:
        return "no strategy passed: no genome survived the searches to be scored out of sample"
    best = max(evidence, key=lambda x: x.deflated_sharpe)
    parts = [f"best DSR {best.deflated_sharpe:.2f}"]
    if pbos:
        parts.append(f"best PBO {min(pbos):.2f}")
    top = max(evidence, key=lambda x: x.oos_return_pct)
    parts.append(f"best out-of-sample return {top.oos_return_pct:+.2%} against {top.benchmark_return_pct:+.2%}")
    return "no strategy passed: " + ", ".join(parts)


def live_gate(check: PaperCheck | None, criteria: PromotionCriteria, selected_sharpe: float | None,
              now: datetime) -> Verdict:
    """Whether the paper period earns the strategy a place in live trading (see the module docstring)."""
    if check is None:
        return Verdict(False, ["no paper check yet (the runner reports one once it has traded a bar flat)"])
    fail: list[str] = []
    days = (now - check.since).total_seconds() / 86400
    if days < criteria.min_check_days:
        fail.append(f"the paper/backtest comparison covers {days:.1f} days < minCheckDays {criteria.min_check_days:g}")
    p, b = check.paper, check.backtest
    unmatched = max(p.trades, b.trades) - check.matched_trades
    if unmatched > criteria.max_trade_mismatch:
        fail.append(f"paper made {p.trades} trades and the backtest of the same bars {b.trades}, "
                    f"{check.matched_trades} alike: {unmatched} unmatched > maxTradeMismatch "
                    f"{criteria.max_trade_mismatch}")
    if abs(p.return_pct - b.return_pct) > criteria.max_return_gap:
        fail.append(f"paper return {p.return_pct:+.2%} and the backtest's {b.return_pct:+.2%} are more than "
                    f"{criteria.max_return_gap:.2%} apart")
    if p.sharpe is None:
        fail.append("no paper Sharpe ratio yet")
    elif p.sharpe < criteria.min_sharpe:
        fail.append(f"paper Sharpe {p.sharpe:.2f} < {criteria.min_sharpe:.2f}")
    if p.max_drawdown > criteria.max_drawdown_pct:
        fail.append(f"paper drawdown {p.max_drawdown:.1%} > {criteria.max_drawdown_pct:.1%}")
    if p.trades < criteria.min_trades:
        fail.append(f"{p.trades} paper trades < {criteria.min_trades}")
    if p.return_pct < criteria.min_return_pct:
        fail.append(f"paper return {p.return_pct:+.2%} < {criteria.min_return_pct:+.2%}")
    if selected_sharpe is not None and p.sharpe is not None and selected_sharpe - p.sharpe > criteria.max_backtest_gap:
        fail.append(f"paper Sharpe {p.sharpe:.2f} trails the Sharpe it was selected on ({selected_sharpe:.2f}) by more "
                    f"than {criteria.max_backtest_gap:g}")
    return Verdict(not fail, fail)
