"""Property-based fuzzing of the whole API with schemathesis, against real uvicorn, PostgreSQL and NATS.

Every operation in the served OpenAPI document (so routes other areas add are fuzzed
too) gets schema-valid cases (positive) and schema-breaking ones (negative), sent with an
all-scope key.  Checks: no 5xx, every response matches the schema and status codes the
document declares, and invalid input is refused with a 4xx.  The number of generated cases
is printed (``-s``) and must reach a floor, so the run cannot silently test nothing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import nats
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from kubetrade.api import create_app
from kubetrade.messaging.subjects import RISK_CONTROL
from tests.api.conftest import Api, make_key, settings_for
from tests.support.server import serving

EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 30}
"""Examples per operation and mode: bounded so the run stays around a minute on two cores."""

CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, response_schema_conformance, status_code_conformance,
                              content_type_conformance],
    GenerationMode.NEGATIVE: [not_a_server_error, negative_data_rejection, status_code_conformance],
}


@pytest.fixture
def risk_manager(pg_dsn, nats_url) -> Iterator[None]:
    """The real risk manager, so risk checks and orders are answered rather than refused with 503."""
    proc = subprocess.Popen([sys.executable, "-m", "kubetrade.cli", "risk-manager", "--database-url", pg_dsn,
                             "--nats-url", nats_url, "--log-level", "warning"])

    async def answers() -> bool:
        nc = await nats.connect(nats_url)
        try:
            await nc.request(RISK_CONTROL, json.dumps({"action": "metrics"}).encode(), timeout=1)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    try:
        deadline = time.monotonic() + 120
        while not asyncio.run(answers()):
            assert proc.poll() is None and time.monotonic() < deadline, "the risk manager did not start"
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def configured_api(pg_dsn, nats_url, local_env) -> Iterator[Api]:
    """The API as the chart deploys it: with an Alertmanager receiver token (which the fuzzer does not
    have, so the receiver routes answer 401; without a token they answer 503, tests/api/test_alerts.py)."""
    settings = settings_for(pg_dsn, nats_url, alert_receiver_token="fuzz-receiver-token-not-a-secret")
    with serving(create_app(settings)) as url:
        yield Api(url, pg_dsn, make_key(pg_dsn, ["read", "trade", "admin"], "admin")[1])


@pytest.mark.slow
def test_fuzz_every_operation(configured_api, risk_manager) -> None:
    api = configured_api
    doc = httpx.get(f"{api.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    counts: dict[str, int] = {}
    failures: list[str] = []
    session_headers = api.headers()

    def fuzz(operation, label: str, mode: GenerationMode) -> None:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES[mode], deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            counts[label] = counts.get(label, 0) + 1
            case.call_and_validate(base_url=api.url, headers=session_headers, checks=CHECKS[mode], timeout=30)

        run()

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        for mode in EXAMPLES:
            try:
                fuzz(operation, label, mode)
            except Unsatisfiable:  # nothing about the operation can be made invalid (no parameters, no body)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # report every failing operation, not just the first
                failures.append(f"{label} [{mode.value}]: {str(exc)[:1500]}")

    total = sum(counts.values())
    print(f"\nschemathesis: {total} generated cases over {len(operations)} operations")
    for label, n in sorted(counts.items()):
        print(f"  {n:5d}  {label}")
    assert not failures, "\n\n".join(failures)
    assert total >= 20 * len(operations)
