"""The strategy runner: the process inside each Strategy's pod.

Layers: ``config`` (the mounted Strategy -> a compiled, checked plan), ``account`` (fills ->
position, cash, PnL, Sharpe, drawdown: pure), ``intents`` (a bar's signal -> order intents:
pure), ``runner`` (the I/O shell: NATS candles in, risk requests out, order events in,
status reports out) and ``probes`` (health and Prometheus metrics on one port).
"""
