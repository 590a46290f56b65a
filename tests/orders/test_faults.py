"""Faults that must lose nothing: the live executor SIGKILLed at random points and at
crash points between the database and the exchange, NATS restarted, PostgreSQL crashed and
restarted, the exchange timing out after accepting, filling partially, rejecting and
rate-limiting.  Afterwards the exchange's orders and fills equal the database's, no order
was accepted twice by the exchange and none is lost.

The suite runs 10 trials; ``python -m kubetrade_testbed.soak --trials 120`` runs the long soak
through the same harness (see the note for its figures).
"""

from __future__ import annotations

from kubetrade_testbed.soak import run_soak


async def test_sigkill_restarts_and_exchange_faults_lose_and_double_nothing() -> None:
    report = await run_soak(trials=10, orders_per_trial=3, seed=42)
    summary = report.as_dict()
    assert report.trials == 10 and report.sigkills + report.crash_point_kills == 10
    assert report.nats_restarts == 1 and report.pg_restarts == 1
    assert report.orders_published == 30 and report.orders_in_db == 30
    assert report.fills_in_db == report.trades_on_exchange > 0
    assert not report.lost, summary
    assert not report.doubled, summary
    assert not report.mismatches, summary
