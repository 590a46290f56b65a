"""Hand-written genomes covering every rule type, operand kind, direction and stop."""

from __future__ import annotations

from kubetrade.resources.genome import Genome


def g(spec: dict[str, object]) -> Genome:
    return Genome.model_validate(spec)


def ind(name: str, output: str | None = None, **params: float) -> dict[str, object]:
    d: dict[str, object] = {"indicator": name, "params": params}
    if output:
        d["output"] = output
    return d


def rule(left: dict[str, object], op: str, right: dict[str, object]) -> dict[str, object]:
    return {"left": left, "op": op, "right": right}


def val(v: float) -> dict[str, object]:
    return {"value": v}


CLOSE: dict[str, object] = {"price": "close"}

LONG_GENOMES = [
    g({"entry": {"rules": [rule(ind("ema", period=9), "crossesAbove", ind("ema", period=40))]},
       "exit": {"rules": [rule(ind("ema", period=9), "crossesBelow", ind("ema", period=40))]}}),
    g({"entry": {"combine": "all", "rules": [rule(ind("rsi", period=14), "lt", val(30)),
                                              rule(CLOSE, "lt", ind("bbands", "lower", period=20))]},
       "exit": {"rules": [rule(ind("rsi", period=14), "gt", val(60))]},
       "stopLossPct": 0.004, "takeProfitPct": 0.006}),
    g({"entry": {"combine": "any", "rules": [rule(ind("macd", "macd"), "crossesAbove", ind("macd", "signal")),
                                              rule(ind("stoch", "k"), "crossesAbove", val(20))]},
       "trailingStopPct": 0.003, "positionPct": 0.5}),
    g({"entry": {"rules": [rule(CLOSE, "ge", ind("vwap", period=30)), rule(ind("atr", period=14), "le", val(60))]},
       "exit": {"rules": [rule(CLOSE, "le", ind("sma", period=30))]},
       "stopLossPct": 0.003, "trailingStopPct": 0.002, "takeProfitPct": 0.01}),
]

PERP_GENOMES = [
    g({"direction": "both",
       "entry": {"rules": [rule(ind("ema", period=12), "crossesAbove", ind("ema", period=30))]},
       "shortEntry": {"rules": [rule(ind("ema", period=12), "crossesBelow", ind("ema", period=30))]},
       "stopLossPct": 0.01}),
    g({"direction": "short",
       "entry": {"rules": [rule(ind("rsi", period=7), "lt", val(25))]},
       "shortEntry": {"rules": [rule(ind("rsi", period=7), "gt", val(75))]},
       "shortExit": {"rules": [rule(ind("rsi", period=7), "lt", val(45))]},
       "stopLossPct": 0.005, "trailingStopPct": 0.004, "takeProfitPct": 0.01}),
    g({"direction": "both",
       "entry": {"rules": [rule(ind("obv"), "crossesAbove", ind("ema", period=5)),
                           rule(CLOSE, "gt", ind("sma", period=50))]},
       "exit": {"rules": [rule(ind("stoch", "d", fastk=9, slowk=3, slowd=3), "gt", val(85))]},
       "shortEntry": {"rules": [rule(ind("stoch", "k", fastk=9), "crossesBelow", val(80))]},
       "shortExit": {"rules": [rule(ind("stoch", "k", fastk=9), "lt", val(20))]},
       "takeProfitPct": 0.004, "positionPct": 0.8}),
]
