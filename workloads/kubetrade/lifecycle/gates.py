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
4. a probability of backtest overfitting of the search that chose it of at most ``maxPbo``;
5. a compounded out-of-sample return above the benchmark's over the same windows (cash: 0,
   or buying and holding).

**Live gate** (``spec.review.promote``), on the paper period: the paper result must agree
with a backtest of the same bars (the runner steps the backtester's own kernel beside its
paper book and reports both, ``status.paperCheck``): the same number of trades (within
``maxTradeMismatch``) and returns no further apart than ``maxReturnGap``; and the paper result
itself must meet the promotion criteria (Sharpe, drawdown, trades, return, its gap below the
backtest Sharpe it was selected on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubetrade.resources.goal import SelectionGates
from kubetrade.resources.strategy import SelectionEvidence


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
        fail.append("no probability of backtest overfitting (the search tried too few genomes)")
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
