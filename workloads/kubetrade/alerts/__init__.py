"""User-defined alert conditions: thresholds on PnL, drawdown, equity, price and goal progress.

``conditions`` (pure: which observations a message carries, whether a rule fires or
resolves), ``store`` (the ``alert_rules`` and ``alert_history`` tables) and ``evaluator``
(the loop that follows NATS, decides, records and publishes ``events.alerts.<severity>``).
"""
