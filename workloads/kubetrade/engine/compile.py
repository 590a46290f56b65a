"""Genome -> kernel tables, for a whole batch at once, and the live signal function.

Compiling a batch collects every distinct operand series (an indicator output with its
parameters, or a price column) into one :class:`FeaturePlan`; each series is computed once
per candle set (:func:`build_features`) and shared by every strategy that mentions it.
The rules become small integer/float tables that :func:`kubetrade.engine.backtest.simulate`
interprets.  :class:`kubetrade.engine.live.LiveSignal` runs the very same tables through the
very same ``simulate`` bar by bar, which is what makes backtest and live agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # numpy only where arrays are made: the live signal compiles a genome without it
    import numpy as np
    import numpy.typing as npt

    from kubetrade.candles import Candles, FloatArray
    from kubetrade.engine.altdata import AltData
from kubetrade.engine import codes as bt
from kubetrade.engine import indicators
from kubetrade.resources.genome import AltSeriesRef, Genome, Operand, RuleSet

MAX_RULES = 8
OPS = {"gt": bt.GT, "lt": bt.LT, "ge": bt.GE, "le": bt.LE, "crossesAbove": bt.XABOVE, "crossesBelow": bt.XBELOW}
DIRECTIONS = {"long": bt.LONG, "short": bt.SHORT, "both": bt.BOTH}
Market = Literal["spot", "perpetual"]

SeriesKey = tuple[str, str, tuple[float, ...], str]
"""(kind, name, parameter values, output): ("price", "close", (), ""), ("indicator", "ema", (20.0,), "value")
or ("alt", "glassnode/BTC/mvrv", (), "")."""


class GenomeError(ValueError):
    """A genome that cannot be compiled; the message names the strategy and the field."""


@dataclass
class FeaturePlan:
    """The distinct operand series of a batch, in matrix-row order."""

    keys: list[SeriesKey] = field(default_factory=list)
    index: dict[SeriesKey, int] = field(default_factory=dict)

    def add(self, key: SeriesKey) -> int:
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)
        return self.index[key]

    @property
    def warmup(self) -> int:
        """Longest indicator warm-up in bars."""
        out = 0
        for kind, name, values, _ in self.keys:
            if kind == "indicator":
                spec = indicators.get(name)
                out = max(out, spec.lookback(dict(zip((p.name for p in spec.params), values, strict=True))))
        return out


@dataclass
class Program:
    """Kernel tables for a batch of S strategies (see :mod:`kubetrade.engine.backtest`)."""

    rules: npt.NDArray[np.int64]  # (S, 4, MAX_RULES, 3)
    consts: FloatArray  # (S, 4, MAX_RULES, 2)
    nrules: npt.NDArray[np.int64]  # (S, 4)
    combine: npt.NDArray[np.int64]  # (S, 4)
    risk: FloatArray  # (S, 4)
    direction: npt.NDArray[np.int64]  # (S,)

    def __len__(self) -> int:
        return int(self.rules.shape[0])

    def take(self, s: int) -> tuple[npt.NDArray[np.generic], ...]:
        """The tables of strategy ``s`` in ``simulate`` argument order."""
        return (self.rules[s], self.consts[s], self.nrules[s], self.combine[s], self.risk[s], self.direction[s])


def _operand(plan: FeaturePlan, op: Operand, where: str) -> tuple[int, float]:
    if op.value is not None:
        return -1, float(op.value)
    if op.price is not None:
        return plan.add(("price", op.price, (), "")), 0.0
    if op.alt is not None:
        return plan.add(("alt", op.alt.key, (), "")), 0.0
    assert op.indicator is not None
    try:
        values, output = indicators.resolve(op.indicator, op.params, op.output)
    except indicators.IndicatorError as e:
        raise GenomeError(f"{where}: {e}") from None
    return plan.add(("indicator", op.indicator, values, output)), 0.0


@dataclass
class Tables:
    """One strategy's kernel tables as plain Python lists (what the live signal steps without numpy)."""

    rules: list[list[list[int]]]  # (4, MAX_RULES, 3)
    consts: list[list[list[float]]]  # (4, MAX_RULES, 2)
    nrules: list[int]  # (4,)
    combine: list[int]  # (4,)
    risk: list[float]  # (4,)
    direction: int


def compile_tables(
    genomes: Sequence[Genome], *, market: Market = "spot", plan: FeaturePlan | None = None, names: Sequence[str] = ()
) -> tuple[FeaturePlan, list[Tables]]:
    """Compile a batch into plain tables; :func:`compile_genomes` makes the kernel's arrays of them."""
    plan = plan if plan is not None else FeaturePlan()
    out = []
    for s, g in enumerate(genomes):
        label = names[s] if s < len(names) else f"genome[{s}]"
        if market == "spot" and g.direction != "long":
            raise GenomeError(f"{label}: direction {g.direction} needs a perpetual market; spot is long/flat only")
        t = Tables([[[0, 0, 0] for _ in range(MAX_RULES)] for _ in range(4)],
                   [[[0.0, 0.0] for _ in range(MAX_RULES)] for _ in range(4)], [0] * 4, [0] * 4, [0.0] * 4, 0)
        sets: tuple[tuple[str, RuleSet | None], ...] = (
            ("entry", g.entry), ("exit", g.exit), ("shortEntry", g.short_entry), ("shortExit", g.short_exit)
        )
        for k, (set_name, rs) in enumerate(sets):
            if rs is None:
                continue
            if len(rs.rules) > MAX_RULES:
                raise GenomeError(f"{label}: {set_name} has {len(rs.rules)} rules, at most {MAX_RULES}")
            t.nrules[k] = len(rs.rules)
            t.combine[k] = int(rs.combine == "any")
            for r, rule in enumerate(rs.rules):
                where = f"{label}: {set_name}.rules[{r}]"
                left, lc = _operand(plan, rule.left, where + ".left")
                right, rc = _operand(plan, rule.right, where + ".right")
                if left < 0 and right < 0:
                    raise GenomeError(f"{where}: compares two constants, which never changes")
                t.rules[k][r] = [left, OPS[rule.op], right]
                t.consts[k][r] = [lc, rc]
        t.risk = [g.stop_loss_pct or 0.0, g.take_profit_pct or 0.0, g.trailing_stop_pct or 0.0, g.position_pct]
        t.direction = DIRECTIONS[g.direction]
        out.append(t)
    return plan, out


def compile_genomes(
    genomes: Sequence[Genome], *, market: Market = "spot", plan: FeaturePlan | None = None, names: Sequence[str] = ()
) -> tuple[FeaturePlan, Program]:
    """Compile a batch; ``plan`` may be shared with earlier batches so series are reused."""
    import numpy as np

    plan, tables = compile_tables(genomes, market=market, plan=plan, names=names)
    n = len(tables)
    prog = Program(
        rules=np.zeros((n, 4, MAX_RULES, 3), dtype=np.int64),
        consts=np.zeros((n, 4, MAX_RULES, 2)),
        nrules=np.zeros((n, 4), dtype=np.int64),
        combine=np.zeros((n, 4), dtype=np.int64),
        risk=np.zeros((n, 4)),
        direction=np.zeros(n, dtype=np.int64),
    )
    for s, t in enumerate(tables):
        prog.rules[s] = t.rules
        prog.consts[s] = t.consts
        prog.nrules[s] = t.nrules
        prog.combine[s] = t.combine
        prog.risk[s] = t.risk
        prog.direction[s] = t.direction
    return plan, prog


def alt_refs(genome: Genome) -> list[AltSeriesRef]:
    """The alternative-data series a genome's rules use, each once."""
    refs: dict[str, AltSeriesRef] = {}
    for rs in (genome.entry, genome.exit, genome.short_entry, genome.short_exit):
        for rule in (rs.rules if rs is not None else []):
            for op in (rule.left, rule.right):
                if op.alt is not None:
                    refs.setdefault(op.alt.key, op.alt)
    return list(refs.values())


def build_features(plan: FeaturePlan, candles: Candles, cache: dict[SeriesKey, FloatArray] | None = None,
                   alt: AltData | None = None) -> FloatArray:
    """The feature matrix (series x bars); each indicator is computed once for all its outputs.

    ``cache`` (keyed like the plan, per candle set) lets successive batches, e.g.
    generations of an evolution, reuse series computed before.  ``alt`` holds the
    alternative-data series the plan's ``alt`` operands name, each joined as of every
    bar's close (:func:`kubetrade.engine.altdata.as_of`); a series the plan needs and
    ``alt`` lacks is an error naming it.
    """
    import numpy as np

    from kubetrade.engine.altdata import as_of  # with numpy: arrays are made here, not where genomes compile

    cache = cache if cache is not None else {}
    F = np.empty((len(plan.keys), len(candles)))
    for row, key in enumerate(plan.keys):
        if key not in cache:
            kind, name, values, _output = key
            if kind == "price":
                cache[key] = candles.field(name)
            elif kind == "alt":
                series = (alt or {}).get(name)
                if series is None:
                    have = ", ".join(sorted(alt or {})) or "none"
                    raise GenomeError(f"the genome uses alternative data {name}, which is not loaded (loaded: {have}); "
                                      f"a Collector must store it before a strategy can use it")
                cache[key] = as_of(series, candles.time, candles.bar_ms)
            else:
                outs = indicators.compute(name, candles, dict(zip((p.name for p in indicators.get(name).params),
                                                                   values, strict=True)))
                for o, arr in outs.items():
                    cache[(kind, name, values, o)] = arr
        F[row] = cache[key]
    return F
