"""A small LSTM-Transformer trained once per session on real candles (tests/data), and a clean indicator registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.candles import Candles, load_csv

SMALL = {"window": 12, "hidden": 8, "heads": 2, "layers": 1, "ffn": 16, "epochs": 2, "batch": 128, "seed": 7}


@pytest.fixture(scope="session")
def eth_1h(market_data: Path) -> Candles:
    """ETH/USDT 1h, Binance spot, 2024: 5,980 bars."""
    return load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz", symbol="ETH/USDT")


@pytest.fixture(scope="session")
def sol_5m(market_data: Path) -> Candles:
    return load_csv(market_data / "binance-spot" / "SOL_USDT-5m.csv.gz", symbol="SOL/USDT")


@pytest.fixture(scope="session")
def trained(eth_1h: Candles):
    """The network trained on the first 3,000 bars (seed 7): the file and the JAX result behind it."""
    from kubetrade.prediction import learn
    from kubetrade.prediction.network import NetConfig

    return learn.train_predictor([eth_1h], NetConfig(**SMALL), until_ms=int(eth_1h.time[3000]))


@pytest.fixture
def clean_indicators():
    """Leave the process's model indicators as they were found."""
    from kubetrade.prediction import model

    model.unbind()
    yield
    model.unbind()
