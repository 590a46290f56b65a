"""Pair selection on the real candles of ten Binance pairs."""

from __future__ import annotations

from kubetrade.candles import load_csv
from kubetrade.selection.pairs import pair_stats, rank_pairs


def _daily(market_data):
    folder = market_data / "binance-spot"
    return {p.name.split("-")[0].replace("_", "/"): load_csv(p) for p in sorted(folder.glob("*-1d.csv.gz"))}


def test_ranks_real_pairs_by_documented_criteria(market_data) -> None:
    candles = _daily(market_data)
    assert len(candles) >= 8
    top, rejected = rank_pairs(candles, top_n=3, min_daily_volume=5e7, lookback_days=60)
    assert len(top) == 3
    assert [p.score for p in top] == sorted((p.score for p in top), reverse=True)
    # every pair is accounted for: selected or left out with a reason
    assert {p.symbol for p in top} | {r.symbol for r in rejected} == set(candles)
    # BTC is the most liquid market in the set: it gets the full liquidity mark
    btc = pair_stats("BTC/USDT", candles["BTC/USDT"], 60)
    assert btc.daily_volume == max(pair_stats(s, c, 60).daily_volume for s, c in candles.items())
    for p in top:
        assert 0 <= p.stats.trend <= 1 and p.stats.volatility > 0
        assert p.score == sum({"liquidity": 0.4, "volatility": 0.3, "trend": 0.3}[k] * v
                              for k, v in p.components.items())


def test_volume_floor_and_quote_filter_leave_reasons(market_data) -> None:
    candles = _daily(market_data)
    top, rejected = rank_pairs(candles, quote="BTC", top_n=5)
    assert top == [] and all("quote" in r.reason for r in rejected)
    top, rejected = rank_pairs(candles, top_n=10, min_daily_volume=1e15)
    assert top == [] and all("below" in r.reason for r in rejected)


def test_intraday_candles_give_the_same_daily_volume(market_data) -> None:
    folder = market_data / "binance-spot"
    h1 = pair_stats("ETH/USDT", load_csv(folder / "ETH_USDT-1h.csv.gz"), 30)
    d1 = pair_stats("ETH/USDT", load_csv(folder / "ETH_USDT-1d.csv.gz"), 30)
    assert abs(h1.daily_volume / d1.daily_volume - 1) < 0.05
