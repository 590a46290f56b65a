"""``kubetrade download-data``: incremental, resumable candle downloads from any ccxt exchange."""
