"""Data shipped inside the package.

``sample/`` holds real Binance spot candles (BTC/USDT and ETH/USDT at 5m, 1h and 1d,
2024-01-01 to 2024-09-07) from the MIT-licensed imsatoshi/GeneTrader data set, in the
project's candle format (see :mod:`kubetrade.candles`).  The replay collector plays them
when a Collector says ``replay.path: bundled``, so the platform runs without an exchange.
"""

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "sample"
