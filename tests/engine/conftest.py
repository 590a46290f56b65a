"""Real candles for the engine tests, loaded once per session and sliced small."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.candles import Candles, load_csv


@pytest.fixture(scope="session")
def btc_1m_full(market_data: Path) -> Candles:
    """30 days of BTC/USDT perpetual 1m bars (Binance USDT-M), May to June 2025."""
    return load_csv(market_data / "binance-usdm" / "BTC_USDT-1m-perp.csv.gz")


@pytest.fixture(scope="session")
def btc_1m(btc_1m_full: Candles) -> Candles:
    """Two weeks of 1m bars: long enough for real trades, short enough for fast tests."""
    return btc_1m_full.slice(0, 20_000)


@pytest.fixture(scope="session")
def eth_perp(market_data: Path) -> Candles:
    return load_csv(market_data / "binance-usdm" / "ETH_USDT-1m-perp.csv.gz")


@pytest.fixture(scope="session")
def sol_5m(market_data: Path) -> Candles:
    return load_csv(market_data / "binance-spot" / "SOL_USDT-5m.csv.gz")
