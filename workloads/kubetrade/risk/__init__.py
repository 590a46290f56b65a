"""The risk manager: pure decisions on signals (``decide``), the stop-loss rules (``stops``),
and the NATS service around them (``manager``) that answers ``risk.check`` requests.

Layers, inside out: ``state`` (what the decision looks at) and ``measures`` (VaR, CVaR,
correlation) are plain data and arithmetic; ``decide`` and ``breaker`` are pure functions
of (policy, state, signal, time); ``portfolios`` keeps the state up to date from fills and
market data; ``manager`` is the thin I/O shell.
"""
