"""The periodic review: which paper strategies go live, which strategies retire.

The rules, in order (the seed: top ~30 % go to paper for 1-2 weeks, 2-10 go live):

1. A strategy that is neither Paper nor Live (Pending, Paused, Retired, Failed) is left alone.
2. Live strategies are retired when, with at least ``promote.minTrades`` trades, their Sharpe is
   below ``retireBelowSharpe``, or when their drawdown exceeds the goal's tolerated drawdown.
3. Paper strategies younger than ``minPaperDays`` are left to trade.
4. Older paper strategies are *candidates* when they pass the live gate
   (:func:`kubetrade.lifecycle.gates.live_gate`): their paper result agrees with a backtest of
   the same bars (the runner's ``status.paperCheck``: trade for trade, returns within
   ``maxReturnGap``, over at least ``minCheckDays``), and it meets every promotion criterion:
   Sharpe at least ``minSharpe``, drawdown at most ``maxDrawdownPct``, at least ``minTrades``
   trades, return at least ``minReturnPct``, and a Sharpe no more than ``maxBacktestGap`` below
   the out-of-sample Sharpe they were selected on (a large gap means the selection was lucky).
5. Candidates are ranked by Sharpe, then return, and promoted while fewer than ``maxLive``
   strategies are live, but only if the RiskPolicy allows new live trading (breaker closed,
   kill switch off), the goal provides live credentials, and ``autoPromote`` is on; otherwise
   they are reported as candidates and stay in paper.
6. Paper strategies that are not candidates are retired once they reach ``maxPaperDays``, or
   earlier (after ``minPaperDays``) when their Sharpe is below ``retireBelowSharpe``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kubetrade.lifecycle.gates import live_gate
from kubetrade.resources.goal import EvolutionSettings, ReviewSettings
from kubetrade.resources.strategy import PaperCheck

Action = Literal["promote", "retire", "candidate", "keep"]


@dataclass(frozen=True)
class StrategyView:
    """What the review knows about one strategy."""

    name: str
    phase: str
    since: datetime | None
    """When it entered its current phase (paper or live)."""
    sharpe: float | None = None
    max_drawdown: float | None = None
    trades: int = 0
    return_pct: float | None = None
    backtest_sharpe: float | None = None
    """The (out-of-sample) Sharpe ratio it was selected on."""
    paper_check: PaperCheck | None = None
    """Its paper period against a backtest of the same bars, as the runner reports it."""


@dataclass(frozen=True)
class Decision:
    name: str
    action: Action
    reason: str


@dataclass(frozen=True)
class PolicyGate:
    """Whether the RiskPolicy allows promotions right now, and if not why."""

    allows_live: bool
    reason: str = ""


def _days(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else (now - since).total_seconds() / 86400


def review(
    strategies: list[StrategyView],
    settings: ReviewSettings,
    evolution: EvolutionSettings,
    tolerated_drawdown: float,
    gate: PolicyGate,
    has_live_credentials: bool,
    now: datetime,
) -> list[Decision]:
    """One decision per Paper or Live strategy (see the module docstring for the rules)."""
    decisions: list[Decision] = []
    live = [s for s in strategies if s.phase == "Live"]
    paper = [s for s in strategies if s.phase == "Paper"]

    live_kept = 0
    for s in live:
        if s.trades >= settings.promote.min_trades and s.sharpe is not None and s.sharpe < settings.retire_below_sharpe:
            decisions.append(Decision(s.name, "retire", f"live Sharpe {s.sharpe:.2f} < {settings.retire_below_sharpe}"))
        elif (s.max_drawdown or 0.0) > tolerated_drawdown:
            decisions.append(
                Decision(s.name, "retire", f"live drawdown {s.max_drawdown:.1%} > tolerated {tolerated_drawdown:.1%}")
            )
        else:
            live_kept += 1
            decisions.append(Decision(s.name, "keep", "live and within limits"))

    candidates: list[StrategyView] = []
    for s in paper:
        age = _days(s.since, now)
        if age < evolution.min_paper_days:
            decisions.append(Decision(s.name, "keep", f"paper for {age:.1f} of {evolution.min_paper_days} days"))
            continue
        verdict = live_gate(s.paper_check, settings.promote, s.backtest_sharpe, now)
        failure = None if verdict.passed else verdict.reason
        if failure is None:
            candidates.append(s)
        elif age >= evolution.max_paper_days:
            decisions.append(Decision(s.name, "retire", f"paper period over without meeting criteria: {failure}"))
        elif s.sharpe is not None and s.sharpe < settings.retire_below_sharpe:
            decisions.append(
                Decision(s.name, "retire", f"paper Sharpe {s.sharpe:.2f} < {settings.retire_below_sharpe}")
            )
        else:
            decisions.append(Decision(s.name, "keep", f"not yet: {failure}"))

    def paper_rank(s: StrategyView) -> tuple[float, float, str]:
        p = s.paper_check.paper if s.paper_check is not None else None
        return (-(p.sharpe or 0.0), -p.return_pct, s.name) if p is not None else (0.0, 0.0, s.name)

    candidates.sort(key=paper_rank)
    slots = max(0, evolution.max_live - live_kept)
    blocker = None
    if not gate.allows_live:
        blocker = f"risk policy does not allow live trading: {gate.reason}"
    elif not has_live_credentials:
        blocker = "goal has no liveCredentialsSecretRef"
    elif not settings.auto_promote:
        blocker = "autoPromote is off"
    for s in candidates:
        assert s.paper_check is not None  # the live gate passed it
        p, check = s.paper_check.paper, s.paper_check
        why = (f"paper Sharpe {p.sharpe or 0:.2f}, drawdown {p.max_drawdown:.1%}, {p.trades} trades, "
               f"{check.matched_trades} of them as the backtest of the same bars")
        if blocker:
            decisions.append(Decision(s.name, "candidate", f"{why}; not promoted: {blocker}"))
        elif slots > 0:
            slots -= 1
            decisions.append(Decision(s.name, "promote", why))
        else:
            decisions.append(
                Decision(s.name, "candidate", f"{why}; not promoted: maxLive {evolution.max_live} reached")
            )
    return decisions
