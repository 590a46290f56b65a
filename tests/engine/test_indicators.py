"""Indicator kernels against TA-Lib (and `ta` for VWAP) on real candles, and against the plain references.

TA-Lib is the independent, widely used implementation: the kernels must agree with it to
1e-9 (relative) everywhere, and produce NaN on exactly the same warm-up bars.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import talib
from ta.volume import VolumeWeightedAveragePrice

from kubetrade.candles import Candles
from kubetrade.engine import indicators
from kubetrade_testbed.reference import indicators as reference

RTOL = 1e-9


def same(ours: npt.ArrayLike, theirs: npt.ArrayLike, rtol: float = RTOL) -> None:
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg="warm-up (NaN) bars differ")
    ok = ~np.isnan(theirs)
    assert ok.any()
    np.testing.assert_allclose(ours[ok], theirs[ok], rtol=rtol, atol=1e-9 * np.nanmax(np.abs(theirs)))


def ours(name: str, c: Candles, output: str | None = None, **params: float) -> np.ndarray:
    out = indicators.compute(name, c, params)
    return out[output or indicators.get(name).outputs[0]]


@pytest.fixture(scope="module", params=["btc_1m", "sol_5m", "eth_perp"])
def candles(request: pytest.FixtureRequest) -> Candles:
    c: Candles = request.getfixturevalue(request.param)
    return c


@pytest.mark.parametrize("period", [2, 14, 50, 200])
def test_moving_averages_and_rsi_match_talib(candles: Candles, period: int) -> None:
    c = candles.close
    same(ours("sma", candles, period=period), talib.SMA(c, period))
    same(ours("ema", candles, period=period), talib.EMA(c, period))
    same(ours("rsi", candles, period=period), talib.RSI(c, period))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (2, 3, 2)])
def test_macd_matches_talib(candles: Candles, fast: int, slow: int, signal: int) -> None:
    theirs = talib.MACD(candles.close, fast, slow, signal)
    for output, t in zip(("macd", "signal", "hist"), theirs, strict=True):
        same(ours("macd", candles, output, fast=fast, slow=slow, signal=signal), t)


@pytest.mark.parametrize(("period", "up", "down"), [(20, 2.0, 2.0), (50, 1.5, 2.5), (5, 1.0, 1.0)])
def test_bbands_match_talib(candles: Candles, period: int, up: float, down: float) -> None:
    upper, middle, lower = talib.BBANDS(candles.close, timeperiod=period, nbdevup=up, nbdevdn=down)  # SMA
    p = {"period": period, "nbdev_up": up, "nbdev_down": down}
    same(ours("bbands", candles, "upper", **p), upper)
    same(ours("bbands", candles, "middle", **p), middle)
    same(ours("bbands", candles, "lower", **p), lower)


@pytest.mark.parametrize("period", [1, 14, 100])
def test_atr_matches_talib(candles: Candles, period: int) -> None:
    same(ours("atr", candles, period=period), talib.ATR(candles.high, candles.low, candles.close, period))


@pytest.mark.parametrize(("fastk", "slowk", "slowd"), [(14, 3, 3), (5, 1, 1), (30, 5, 8)])
def test_stoch_matches_talib(candles: Candles, fastk: int, slowk: int, slowd: int) -> None:
    k, d = talib.STOCH(candles.high, candles.low, candles.close, fastk_period=fastk, slowk_period=slowk,
                       slowd_period=slowd)  # SMA smoothing, TA-Lib's default
    p = {"fastk": fastk, "slowk": slowk, "slowd": slowd}
    same(ours("stoch", candles, "k", **p), k)
    same(ours("stoch", candles, "d", **p), d)


def test_obv_matches_talib(candles: Candles) -> None:
    same(ours("obv", candles), talib.OBV(candles.close, candles.volume))


@pytest.mark.parametrize("period", [1, 14, 240])
def test_vwap_matches_ta_library(candles: Candles, period: int) -> None:
    f = pd.DataFrame({n: candles.field(n) for n in ("high", "low", "close", "volume")})
    theirs = VolumeWeightedAveragePrice(f.high, f.low, f.close, f.volume, window=period).volume_weighted_average_price()
    same(ours("vwap", candles, period=period), theirs.to_numpy())


def test_leading_nan_input_warms_up_like_talib(btc_1m: Candles) -> None:
    """An indicator of an indicator: warm-up counts from the first valid input, as TA-Lib does."""
    from kubetrade.engine import kernels

    x = talib.EMA(btc_1m.close, 30)  # 29 leading NaN
    same(kernels.ema(x, 10), talib.EMA(x, 10))
    same(kernels.sma(x, 10), talib.SMA(x, 10))
    same(kernels.rsi(x, 14), talib.RSI(x, 14))
    for a, b in zip(kernels.macd(x, 12, 26, 9), talib.MACD(x, 12, 26, 9), strict=True):
        same(a, b)


def test_kernels_match_plain_references(btc_1m: Candles) -> None:
    c = btc_1m.slice(0, 1500)
    h, lo, cl, v = (list(map(float, c.field(n))) for n in ("high", "low", "close", "volume"))
    same(ours("sma", c, period=30), reference.sma(cl, 30))
    same(ours("ema", c, period=30), reference.ema(cl, 30))
    same(ours("rsi", c, period=14), reference.rsi(cl, 14))
    for out, r in zip(("macd", "signal", "hist"), reference.macd(cl, 12, 26, 9), strict=True):
        same(ours("macd", c, out), r)
    for out, r in zip(("middle", "upper", "lower"), reference.bbands(cl, 20, 2.0, 1.5), strict=True):
        same(ours("bbands", c, out, period=20, nbdev_down=1.5), r)
    same(ours("atr", c, period=14), reference.atr(h, lo, cl, 14))
    for out, r in zip(("k", "d"), reference.stoch(h, lo, cl, 14, 3, 3), strict=True):
        same(ours("stoch", c, out), r)
    same(ours("obv", c), reference.obv(cl, v))
    same(ours("vwap", c, period=60), reference.vwap(h, lo, cl, v, 60))


def test_short_series_is_all_warmup(btc_1m: Candles) -> None:
    c = btc_1m.slice(0, 10)
    assert np.isnan(ours("ema", c, period=50)).all()
    assert np.isnan(ours("macd", c)).all()
    same(ours("rsi", c, period=9), talib.RSI(c.close, 9))


@pytest.mark.parametrize(
    ("name", "params", "output", "message"),
    [
        ("ichimoku", {}, None, "unknown indicator 'ichimoku'"),
        ("ema", {"length": 5}, None, "unknown parameter"),
        ("ema", {"period": 1}, None, r"period=1 is outside \[2, 1000\]"),
        ("ema", {"period": 10.5}, None, "must be a whole number"),
        ("macd", {"fast": 30, "slow": 10}, None, "fast .30. must be shorter than slow"),
        ("macd", {}, "upper", "has no output 'upper'"),
        ("rsi", {"period": float("nan")}, None, "outside"),
    ],
)
def test_bad_indicator_requests_name_the_problem(name: str, params: dict[str, float], output: str | None,
                                                 message: str) -> None:
    with pytest.raises(indicators.IndicatorError, match=message):
        indicators.resolve(name, params, output)


def test_custom_indicator_can_be_registered(btc_1m: Candles) -> None:
    def roc(close: np.ndarray, period: int) -> tuple[np.ndarray]:
        out = np.full(close.shape, np.nan)
        out[period:] = (close[period:] / close[:-period] - 1) * 100
        return (out,)

    spec = indicators.IndicatorSpec("roc_test", ("close",), (indicators.Param("period", 10, 1, 500),), ("value",),
                                    roc, lambda p: int(p["period"]))
    indicators.register(spec, replace=True)
    try:
        same(ours("roc_test", btc_1m, period=10), talib.ROC(btc_1m.close, 10))
        with pytest.raises(indicators.IndicatorError, match="already registered"):
            indicators.register(spec)
    finally:
        indicators.REGISTRY.pop("roc_test")
