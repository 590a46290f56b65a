"""The Goal resource: a return target, and the daily evolution pipeline that chases it.

The seed's automated workflow: every day at 03:00 UTC generate 500 strategies, backtest
them on 90 days of history, send the top ~30 % to paper trading, watch them for one to
two weeks, and promote the 2-10 best to live.  A Goal carries those settings; the
operator turns them into a CronJob and a periodic review.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from kubetrade.resources.base import (
    OPERATOR,
    SET,
    Condition,
    Currency,
    Distinct,
    ExchangeId,
    LabelKey,
    LabelValue,
    LocalObjectReference,
    Model,
    Money,
    PositiveFraction,
    Resource,
    SecretReference,
    Symbol,
    Timeframe,
    cel,
    conditions_field,
    defaulted,
)
from kubetrade.resources.genome import AltSeriesRef

CronSchedule = Annotated[
    str,
    StringConstraints(
        pattern=r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
        r"|([0-9A-Za-z*?,/-]+[ \t]+){4}[0-9A-Za-z*?,/-]+)$",
        max_length=128,
    ),
]
"""Five cron fields in ASCII (digits, names, ``* ? , / -``) or a macro: what a CronJob accepts."""


class LabelSelectorRequirement(Model):
    """A label selector requirement (as in Kubernetes)."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                    "In and NotIn need values; Exists and DoesNotExist take none",
                ),
            ]
        }
    }

    key: LabelKey
    """Label key."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: Annotated[list[LabelValue], Field(max_length=64)] = Field(default_factory=list)
    """Values for In and NotIn."""

    @model_validator(mode="after")
    def _values(self) -> Self:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(f"label selector on {self.key!r}: In and NotIn need values; Exists and DoesNotExist "
                             "take none")
        return self


class LabelSelector(Model):
    """Which Strategy resources count towards the goal."""

    match_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] = Field(default_factory=dict)
    """Labels a strategy must carry."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=64)] = Field(default_factory=list)
    """Further requirements."""


PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12, "quarter": 365.25 / 4, "year": 365.25}
"""Days in each target period (a month is a twelfth of a Julian year)."""


class Target(Model):
    """The return the goal aims for."""

    capital: Money
    """Capital the target is measured on."""
    return_pct: Annotated[float, Field(gt=0, le=100)]
    """Target return per period, as a fraction (0.08 = +8 %)."""
    period: Literal["day", "week", "month", "quarter", "year"] = "month"
    """Period the return is measured over."""
    start_date: date | None = None
    """When measurement starts; defaults to the goal's creation."""
    deadline: date | None = None
    """Date by which the target should be reached."""
    max_drawdown_pct: PositiveFraction = 0.15
    """Drawdown the user tolerates on the way; sizing backs off as it gets close."""
    tolerance_pct: Annotated[float, Field(ge=0, le=1)] = 0.2
    """How far behind the target path (as a fraction of the target) still counts as on track."""


class PairSelection(Model):
    """Automatic choice of the pairs the evolution works on."""

    quote: Currency = "USDT"
    """Quote currency of the candidate pairs."""
    top_n: Annotated[int, Field(ge=1, le=200)] = 5
    """How many pairs to keep after ranking by liquidity, volatility and trend."""
    min_daily_volume: Annotated[float, Field(ge=0)] = 1e7
    """Pairs trading less than this (in the quote currency) per day are skipped."""


class WalkForwardSettings(Model):
    """How the evolution's history is cut into in-sample searches and out-of-sample tests.

    The last ``windows`` out-of-sample windows, each ``outOfSampleFraction`` of ``backtestDays``,
    tile the end of the history without overlapping.  Each window's search sees only the bars
    before its window (rolling: the same length every time, everything before the first window;
    anchored: from the first bar on, growing); its chosen genomes are then scored on that window
    and on every later one, which neither the search nor the selection saw.
    """

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                # has(): the API server also checks the schema's default ({}), before defaults fill it in
                cel("!has(self.windows) || !has(self.outOfSampleFraction) || "
                    "double(self.windows) * self.outOfSampleFraction < 0.9",
                    "windows x outOfSampleFraction must leave at least 10 % of the history in sample"),
                cel("!has(self.blocks) || self.blocks % 2 == 0", "blocks must be even (CSCV splits them in halves)"),
            ]
        }
    }

    windows: Annotated[int, Field(ge=1, le=20)] = 3
    """Out-of-sample windows."""
    mode: Literal["rolling", "anchored"] = "rolling"
    """rolling: every search sees the same number of bars; anchored: every search starts at the first bar."""
    out_of_sample_fraction: Annotated[float, Field(gt=0, le=0.5)] = 0.1
    """Length of one out-of-sample window, as a fraction of backtestDays."""
    per_window: Annotated[int, Field(ge=1, le=100)] = 5
    """Genomes each window's search hands on to be scored out of sample."""
    blocks: Annotated[int, Field(ge=2, le=20)] = 16
    """Blocks of each search's training bars for the probability of backtest overfitting (CSCV)."""


class SelectionGates(Model):
    """The out-of-sample evidence a strategy needs before the evolution sends it to paper trading."""

    min_deflated_sharpe: Annotated[float, Field(ge=0, le=1)] = 0.95
    """Lowest deflated Sharpe ratio of the pooled out-of-sample returns (after every genome tried)."""
    max_pbo: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Highest probability of backtest overfitting of the search that chose it."""
    min_positive_windows: Annotated[float, Field(ge=0, lt=1)] = 0.5
    """The share of its out-of-sample windows with a positive return after costs must exceed this."""
    min_windows: Annotated[int, Field(ge=1, le=20)] = 2
    """Fewest out-of-sample windows it must have been scored on."""
    min_trades: Annotated[int, Field(ge=0, le=100_000)] = 10
    """Fewest closed out-of-sample trades, all windows and pairs together."""
    benchmark: Literal["cash", "buyAndHold"] = "buyAndHold"
    """What its out-of-sample return must beat over the same windows: cash (0) or buying and holding."""
    benchmark_symbol: Symbol | None = None
    """The pair held by the buyAndHold benchmark; default: the strategy's own pairs, equal parts."""


EvolutionSource = Literal["genomes", "rl"]
"""Where the evolution's candidates come from: the genetic search's genomes, PPO policies, or both."""
RL_STEPS = 128
"""Bars per PPO rollout segment; ``timesteps`` is split into ``checkpoints`` iterations of such segments."""


class RLSettings(Model):
    """PPO policies, one trained per walk-forward window on that window's in-sample bars only.

    Each window's policy is trained for ``checkpoints`` iterations (``timesteps`` environment steps in
    all); the policy after every iteration is a checkpoint scored on the in-sample validation bars, and
    the best of them is the window's candidate.  Every checkpoint evaluated is a trial (the deflated
    Sharpe ratio of every candidate counts them) and the probability of backtest overfitting of a
    policy is measured over its window's checkpoints by CSCV.  Training needs the training image
    (JAX); the operator runs such a Goal's evolution in it.
    """

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!has(self.timesteps) || !has(self.checkpoints) || "
                    f"self.timesteps >= self.checkpoints * {RL_STEPS}",
                    f"timesteps must be at least checkpoints x {RL_STEPS} (one rollout segment per checkpoint)"),
            ]
        }
    }

    timesteps: Annotated[int, Field(ge=RL_STEPS * 2, le=5_000_000)] = 65_536
    """Environment steps (bars traded in rollouts) PPO takes per walk-forward window, all checkpoints together."""
    checkpoints: Annotated[int, Field(ge=2, le=200)] = 16
    """PPO iterations per window; the policy after each is a checkpoint (a trial, and a member of the PBO's CSCV)."""
    window: Annotated[int, Field(ge=2, le=64)] = 8
    """Bars of history in each observation."""
    hidden: Annotated[int, Field(ge=4, le=256)] = 32
    """Width of the policy's and value function's two hidden layers."""
    seed: int | None = None
    """Random seed of the training (window k uses seed + k); default: the evolution's seed."""
    observe_prediction: bool = False
    """The policies observe the Goal's predictor's output too (needs spec.evolution.predictor); a policy that goes
    to paper then names that predictor in spec.model beside its own file in spec.policy."""


class PredictorSettings(Model):
    """The LSTM-Transformer price predictor the evolution trains and offers the genetic search as an operand.

    Trained once per run on the bars before the first walk-forward window's search validation part
    (no out-of-sample window and no search's survivor ranking ever reads a bar it was fitted on), its
    ONNX file stored in the model store as ``registry://<goal>-predictor`` with its sha256, training
    window and metrics.  The genomes may then compare ``prediction`` (the predicted log return of the
    next ``horizon`` bars) with levels drawn from its in-sample values, with zero and with the round-trip
    cost; a genome that goes to paper carries that model in ``spec.model``.  Training needs the training
    image (JAX); the operator runs such a Goal's evolution in it.
    """

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!has(self.hidden) || !has(self.heads) || self.hidden % self.heads == 0",
                    "hidden must be a multiple of heads (each attention head takes hidden / heads units)"),
            ]
        }
    }

    window: Annotated[int, Field(ge=2, le=64)] = 16
    """Bars of features in each input window."""
    hidden: Annotated[int, Field(ge=2, le=128)] = 16
    """Width of the LSTM state and of the attention layers."""
    heads: Annotated[int, Field(ge=1, le=8)] = 2
    """Attention heads (hidden must be a multiple of it)."""
    layers: Annotated[int, Field(ge=1, le=4)] = 1
    """Self-attention blocks over the LSTM states."""
    horizon: Annotated[int, Field(ge=1, le=48)] = 1
    """Bars ahead whose log return is predicted."""
    epochs: Annotated[int, Field(ge=1, le=200)] = 12
    """Most training epochs (early stopping on the last fifth of the training rows ends it sooner)."""
    seed: int | None = None
    """Random seed of the training; default: the evolution's seed."""

    @model_validator(mode="after")
    def _heads(self) -> Self:
        if self.hidden % self.heads:
            raise ValueError(f"evolution.predictor.hidden {self.hidden} must be a multiple of heads {self.heads}")
        return self


class EvolutionSettings(Model):
    """The daily generate -> backtest -> paper -> live pipeline."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.minPaperDays <= self.maxPaperDays", "minPaperDays must not exceed maxPaperDays"),
                cel("has(self.symbols) || has(self.pairSelection)", "set symbols or pairSelection"),
                cel("!has(self.rl) || !has(self.rl.observePrediction) || !self.rl.observePrediction || "
                    "has(self.predictor)", "rl.observePrediction needs a predictor (spec.evolution.predictor)"),
                cel("!has(self.predictor) || !has(self.sources) || 'genomes' in self.sources",
                    "the predictor's output is an operand of the genetic search: a predictor needs genomes in "
                    "sources"),
            ]
        }
    }

    schedule: CronSchedule = "0 3 * * *"
    """Cron schedule of the evolution run."""
    time_zone: str = "Etc/UTC"
    """Time zone of the schedule."""
    suspend: bool = False
    """Pause the schedule."""
    exchange: ExchangeId = "binance"
    """Exchange whose data the evolution uses."""
    market: Literal["spot", "perpetual"] = "spot"
    """Spot (long/flat) or perpetual (long/short) strategies."""
    symbols: Annotated[list[Symbol], Field(max_length=200, json_schema_extra=SET), Distinct] | None = None
    """Pairs to evolve on; if unset, pairSelection chooses."""
    pair_selection: PairSelection | None = None
    """Automatic pair selection."""
    timeframe: Timeframe = "5m"
    """Timeframe of the evolved strategies."""
    population: Annotated[int, Field(ge=10, le=100_000)] = 500
    """Strategies generated per run."""
    generations: Annotated[int, Field(ge=1, le=1000)] = 20
    """Generations of the genetic search."""
    backtest_days: Annotated[int, Field(ge=1, le=3650)] = 90
    """Days of history each strategy is backtested on."""
    validation_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    """Most recent fraction of each search's in-sample bars held out to rank its survivors."""
    walk_forward: WalkForwardSettings = defaulted(WalkForwardSettings)
    """Out-of-sample windows the chosen genomes are scored on."""
    alternative_data: Annotated[list[AltSeriesRef], Field(max_length=20)] = Field(default_factory=list)
    """Alternative-data series (on-chain, social, macro) the genomes may use as operands; a Collector must store
    them."""
    min_trades: Annotated[int, Field(ge=1, le=100_000)] = 20
    """Strategies with fewer trades are discarded."""
    paper_fraction: PositiveFraction = 0.3
    """Fraction of the survivors that enter paper trading."""
    max_paper: Annotated[int, Field(ge=1, le=10_000)] = 50
    """Most strategies in paper trading at once for this goal."""
    min_paper_days: Annotated[int, Field(ge=0, le=365)] = 7
    """Days a strategy paper-trades before it can be promoted."""
    max_paper_days: Annotated[int, Field(ge=1, le=365)] = 14
    """Days after which a paper strategy that was not promoted is retired."""
    max_live: Annotated[int, Field(ge=1, le=1000)] = 10
    """Most strategies live at once."""
    seed: int | None = None
    """Random seed, for reproducible runs; unset means a new seed every run."""
    sources: Annotated[list[EvolutionSource], Field(min_length=1, max_length=2, json_schema_extra=SET),
                       Distinct] = Field(default_factory=lambda: list[EvolutionSource](["genomes"]),
                                         json_schema_extra={"default": ["genomes"]})
    """Where candidates come from: genomes (the genetic search), rl (PPO policies), or both, in one selection."""
    rl: RLSettings | None = None
    """The PPO policies' training, when sources includes rl (default settings if unset)."""
    predictor: PredictorSettings | None = None
    """Train the LSTM-Transformer predictor and let the genomes use its output (``prediction``) as an operand."""


class PromotionCriteria(Model):
    """What a paper strategy must show before it goes live."""

    min_sharpe: float = 1.0
    """Lowest annualised Sharpe ratio of paper trading."""
    max_drawdown_pct: PositiveFraction = 0.10
    """Largest paper-trading drawdown."""
    min_trades: Annotated[int, Field(ge=0)] = 10
    """Fewest closed paper trades."""
    min_return_pct: float = 0.0
    """Lowest paper-trading return."""
    max_backtest_gap: Annotated[float, Field(ge=0)] = 1.0
    """Largest shortfall of paper Sharpe below backtest Sharpe (guards against overfit strategies)."""
    max_trade_mismatch: Annotated[int, Field(ge=0)] = 0
    """Most trades by which paper trading may differ from a backtest of the same bars."""
    max_return_gap: Annotated[float, Field(ge=0, le=1)] = 0.02
    """Largest difference between the paper return and a backtest's of the same bars (sizing by the goal
    multiplier or risk cuts shows here)."""
    min_check_days: Annotated[float, Field(ge=0, le=365)] = 7.0
    """Fewest days the paper/backtest comparison must cover (it restarts with the runner)."""


class ReviewSettings(Model):
    """The periodic review that promotes and retires strategies."""

    interval_seconds: Annotated[int, Field(ge=60, le=604_800)] = 3600
    """How often the review runs."""
    promote: PromotionCriteria = defaulted(PromotionCriteria)
    """Promotion criteria."""
    retire_below_sharpe: float = 0.0
    """Live or paper strategies whose Sharpe falls below this (after their paper period) are retired."""
    auto_promote: bool = True
    """Promote automatically; if false, the review only reports candidates."""


class GoalSpec(Model):
    """A return target, which strategies count towards it, and how new ones are found."""

    target: Target
    """The target."""
    risk_policy_ref: LocalObjectReference
    """Policy applied to every strategy the goal creates, and checked before promotion."""
    strategy_selector: LabelSelector | None = None
    """Strategies that count; defaults to those the goal created."""
    evolution: EvolutionSettings
    """The daily evolution pipeline."""
    gates: SelectionGates = defaulted(SelectionGates)
    """The out-of-sample evidence a strategy needs before it goes to paper."""
    review: ReviewSettings = defaulted(ReviewSettings)
    """The promotion and retirement review."""
    live_credentials_secret_ref: SecretReference | None = None
    """Exchange keys given to strategies the review promotes to live; without it the review only reports
    candidates."""
    max_sizing_multiplier: Annotated[float, Field(gt=0, le=3)] = 1.5
    """Upper bound of the goal-oriented sizing multiplier (always capped by the RiskPolicy too)."""

    @model_validator(mode="after")
    def _dates(self) -> Self:
        wf = self.evolution.walk_forward
        if wf.windows * wf.out_of_sample_fraction >= 0.9:
            raise ValueError("evolution.walkForward: windows x outOfSampleFraction must leave at least 10 % of the "
                             f"history in sample ({wf.windows} x {wf.out_of_sample_fraction})")
        if wf.blocks % 2:
            raise ValueError(f"evolution.walkForward.blocks {wf.blocks} must be even (CSCV splits them in halves)")
        t = self.target
        if t.start_date and t.deadline and t.deadline <= t.start_date:
            raise ValueError("target.deadline must be after target.startDate")
        e = self.evolution
        if e.min_paper_days > e.max_paper_days:
            raise ValueError("evolution.minPaperDays must not exceed evolution.maxPaperDays")
        if not e.symbols and e.pair_selection is None:
            raise ValueError("evolution needs symbols or pairSelection")
        if e.rl is not None and "rl" not in e.sources:
            raise ValueError(f"evolution.rl is set but evolution.sources is {e.sources}: add rl to sources, or "
                             "remove the rl block")
        if e.predictor is not None and "genomes" not in e.sources:
            raise ValueError(f"evolution.predictor is set but evolution.sources is {e.sources}: the prediction is an "
                             "operand of the genetic search, so a predictor needs genomes in sources (or remove the "
                             "predictor block)")
        if e.rl is not None and e.rl.observe_prediction and e.predictor is None:
            raise ValueError("evolution.rl.observePrediction is true but evolution.predictor is not set: the policies "
                             "can only observe a predictor the run trains")
        if e.rl is not None and e.rl.timesteps < e.rl.checkpoints * RL_STEPS:
            raise ValueError(f"evolution.rl.timesteps {e.rl.timesteps} is fewer than checkpoints {e.rl.checkpoints} "
                             f"x {RL_STEPS} steps (each checkpoint needs at least one rollout segment)")
        return self


class RunSummary(Model):
    """The outcome of one evolution run or review."""

    time: datetime
    """When it finished."""
    generated: Annotated[int, Field(ge=0)] | None = None
    """Strategies generated."""
    survived: Annotated[int, Field(ge=0)] | None = None
    """Strategies that passed the overfitting guards."""
    to_paper: Annotated[int, Field(ge=0)] | None = None
    """Strategies sent to paper trading."""
    promoted: Annotated[int, Field(ge=0)] | None = None
    """Strategies promoted to live."""
    retired: Annotated[int, Field(ge=0)] | None = None
    """Strategies retired."""
    message: str | None = None
    """Detail."""


class SourceCounts(Model):
    """One source's share of an evolution run's selection."""

    source: EvolutionSource
    """genomes or rl."""
    trials: Annotated[int, Field(ge=0)] = 0
    """Genomes tried, or PPO checkpoints evaluated."""
    candidates: Annotated[int, Field(ge=0)] = 0
    """Candidates scored out of sample."""
    passed: Annotated[int, Field(ge=0)] = 0
    """Candidates that passed every gate."""
    to_paper: Annotated[int, Field(ge=0)] = 0
    """Strategies created in paper mode."""


class PredictorSummary(Model):
    """The predictor an evolution run trained: where it is stored, what it was fitted on, how it did before any
    out-of-sample window, and how many candidates use it."""

    model: str
    """``registry://NAME`` in the model store."""
    sha256: str
    """Digest of its ONNX file (what a paper Strategy's spec.model names)."""
    train_from: datetime
    """First bar it was trained on."""
    train_to: datetime
    """End of its last training bar: before the first window's search validation part and its out-of-sample part."""
    validation_from: datetime | None = None
    """Start of the bars it is validated on (never trained on, before every out-of-sample window)."""
    validation_to: datetime | None = None
    """End of those bars."""
    validation_skill: float | None = None
    """1 - its mean squared error / that of predicting no change, on those bars (> 0: better than no change)."""
    validation_direction: float | None = None
    """Share of those bars whose direction it called (0.5 = a coin)."""
    best_epoch: Annotated[int, Field(ge=0)] = 0
    """The epoch early stopping kept."""
    candidates: Annotated[int, Field(ge=0)] = 0
    """Candidates whose rules use the prediction."""
    passed: Annotated[int, Field(ge=0)] = 0
    """Of those, the ones that passed every gate."""


class SelectionSummary(Model):
    """What the last evolution run's gates decided, with the best figures seen."""

    time: datetime
    """When the run finished."""
    run: str | None = None
    """Evolution run id (rows in evolution_runs)."""
    trials: Annotated[int, Field(ge=0)] = 0
    """Trials: distinct genomes tried by all the windows' searches, plus every PPO checkpoint evaluated."""
    candidates: Annotated[int, Field(ge=0)] = 0
    """Candidates (genomes and policies) scored out of sample."""
    passed: Annotated[int, Field(ge=0)] = 0
    """Candidates that passed every gate."""
    to_paper: Annotated[int, Field(ge=0)] = 0
    """Strategies created in paper mode (passed, within maxPaper)."""
    best_deflated_sharpe: float | None = None
    """Highest deflated Sharpe ratio among the candidates."""
    best_pbo: float | None = None
    """Lowest probability of backtest overfitting among the windows' searches."""
    best_oos_return_pct: float | None = None
    """Highest compounded out-of-sample return among the candidates."""
    benchmark_return_pct: float | None = None
    """The benchmark's return over all the out-of-sample windows."""
    message: str = ""
    """E.g. 'no strategy passed: best DSR 0.41' or '3 passed, 3 to paper'."""
    sources: Annotated[list[SourceCounts], Field(max_length=2)] = Field(default_factory=list)
    """The same counts per source of candidates (genomes, rl)."""
    predictor: PredictorSummary | None = None
    """The predictor the run trained (spec.evolution.predictor), and how many candidates use it."""


class PhaseCounts(Model):
    """How many of the goal's strategies are in each phase."""

    pending: Annotated[int, Field(ge=0)] = 0
    """Pending."""
    paper: Annotated[int, Field(ge=0)] = 0
    """Paper trading."""
    live: Annotated[int, Field(ge=0)] = 0
    """Live trading."""
    paused: Annotated[int, Field(ge=0)] = 0
    """Paused."""
    retired: Annotated[int, Field(ge=0)] = 0
    """Retired."""
    failed: Annotated[int, Field(ge=0)] = 0
    """Failed."""


class GoalStatus(Model):
    """Progress towards the target."""

    observed_generation: Annotated[int | None, Field(ge=0), OPERATOR] = None
    """The .metadata.generation this status reflects."""
    equity: float | None = None
    """Current equity of the counted strategies."""
    peak_equity: float | None = None
    """Highest equity seen; the sizing multiplier backs off with the drawdown from it."""
    return_pct: float | None = None
    """Return since the start, as a fraction."""
    progress_pct: float | None = None
    """Return achieved as a fraction of the return targeted by now."""
    on_track: bool | None = None
    """Whether the return is within tolerance of the target path."""
    sizing_multiplier: float | None = None
    """Current goal-oriented position-sizing multiplier."""
    phase_counts: Annotated[PhaseCounts | None, OPERATOR] = None
    """Strategies per phase."""
    cron_job: Annotated[str | None, OPERATOR] = None
    """Name of the evolution CronJob."""
    last_evolution: RunSummary | None = None
    """Last evolution run."""
    last_selection: SelectionSummary | None = None
    """What the last evolution run's gates decided."""
    last_review: Annotated[RunSummary | None, OPERATOR] = None
    """Last review."""
    conditions: Annotated[list[Condition], OPERATOR] = conditions_field()
    """Ready, OnTrack and Degraded conditions."""


class Goal(Resource):
    """A return target with the evolution pipeline and review that pursue it."""

    kind_name: ClassVar[str] = "Goal"
    plural: ClassVar[str] = "goals"
    singular: ClassVar[str] = "goal"
    short_names: ClassVar[tuple[str, ...]] = ("gl",)
    spec_model: ClassVar[type[Model]] = GoalSpec
    status_model: ClassVar[type[Model]] = GoalStatus
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = (
        {"name": "Target", "type": "number", "jsonPath": ".spec.target.returnPct"},
        {"name": "Per", "type": "string", "jsonPath": ".spec.target.period"},
        {"name": "Return", "type": "number", "jsonPath": ".status.returnPct"},
        {"name": "OnTrack", "type": "boolean", "jsonPath": ".status.onTrack"},
        {"name": "Sizing", "type": "number", "jsonPath": ".status.sizingMultiplier"},
        {"name": "Live", "type": "integer", "jsonPath": ".status.phaseCounts.live"},
        {"name": "Paper", "type": "integer", "jsonPath": ".status.phaseCounts.paper"},
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.evolution.schedule", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    kind: Literal["Goal"] = "Goal"
    spec: GoalSpec
    status: GoalStatus | None = None
