"""Collectors: market data from exchanges (ccxt), replays of stored candles, alternative data.

``exchange`` (ccxt REST, woken by ccxt.pro streams), ``replay`` (bundled or any candle
files), ``alt/`` (one module per provider), ``publish`` (JetStream with message-id
de-duplication), ``sink`` (JetStream -> PostgreSQL/TimescaleDB), ``health`` (metrics, KV
record, status report), ``runtime`` + ``commands`` (``kubetrade collect``).
"""
