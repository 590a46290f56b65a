"""Property-based fuzzing of the whole API with schemathesis, against real uvicorn, PostgreSQL and NATS.

Every operation in the served OpenAPI document (so routes other areas add are fuzzed
too) gets schema-valid cases (positive) and schema-breaking ones (negative), sent with an
all-scope key.  Checks: no 5xx, every response matches the schema and status codes the
document declares, and invalid input is refused with a 4xx.  The number of generated cases
is printed (``-s``) and must reach a floor, so the run cannot silently test nothing.

A third pass is hostile: schema-valid cases with one JSON value (or query parameter)
replaced by what JSON Schema cannot describe and Python's ``json`` still reads - NaN,
Infinity, numbers beyond float range, 400-digit integers, 100,000-character strings.  Check:
no 5xx, an answer that is JSON and does not echo the input whole.  Before the models refused
non-finite numbers and the 422 stopped echoing input, 111 of 385 such cases got a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 30}
"""Examples per operation and mode: bounded so the run stays around a minute on two cores."""

HOSTILE_EXAMPLES = 25
HOSTILE_VALUES = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400, json.dumps("x" * 100_000)]
HOSTILE_QUERY = ["nan", "inf", "-Infinity", "1e999", "9" * 400, "x" * 4000]

CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, response_schema_conformance, status_code_conformance,
                              content_type_conformance],
    GenerationMode.NEGATIVE: [not_a_server_error, negative_data_rejection, status_code_conformance],
}


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths to the scalar values of a JSON document."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


def _with_raw(body: Any, path: tuple, raw: str) -> bytes:
    """The body as JSON text with the value at ``path`` replaced by ``raw`` (which need not be JSON)."""
    marker = "\u0000hostile\u0000"
    doc = json.loads(json.dumps(body))
    if not path:
        return raw.encode()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return json.dumps(doc).replace(json.dumps(marker), raw).encode()


def _hostile(api, operation, label: str, counts: dict[str, int], server_errors: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), data=st.data())
    @settings(max_examples=HOSTILE_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case, data) -> None:
        if isinstance(case.body, dict | list) and _leaves(case.body):
            path = data.draw(st.sampled_from(_leaves(case.body)))
            raw = data.draw(st.sampled_from(HOSTILE_VALUES))
            case.body = _with_raw(case.body, path, raw)
            what = f"body {'.'.join(map(str, path))}={raw[:10]}"
        elif case.query:
            key = data.draw(st.sampled_from(sorted(case.query)))
            raw = data.draw(st.sampled_from(HOSTILE_QUERY))
            case.query = {**case.query, key: raw}
            what = f"query {key}={raw[:10]}"
        else:
            return
        counts[label] = counts.get(label, 0) + 1
        try:
            response = case.call(base_url=api.url, headers=api.headers(), timeout=30)
        except Exception as exc:  # the connection dropped: the server failed
            server_errors.append(f"{label} {what}: no answer ({type(exc).__name__})")
            return
        if response.status_code >= 500:
            server_errors.append(f"{label} {what}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400:
            assert len(response.content) < 20_000, f"{label} {what}: the refusal echoes the input"
            json.loads(response.text)

    run()


@pytest.mark.slow
def test_fuzz_every_operation(api, risk_manager) -> None:
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

    hostile: dict[str, int] = {}
    server_errors: list[str] = []
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        try:
            _hostile(api, operation, label, hostile, server_errors)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{label} [hostile]: {str(exc)[:1500]}")
    print(f"hostile values: {len(server_errors)} 5xx over {sum(hostile.values())} cases on {len(hostile)} operations")
    assert not server_errors, "\n".join(server_errors[:50])
    assert not failures, "\n\n".join(failures)
    assert total >= 20 * len(operations)
    assert sum(hostile.values()) >= 10 * len(hostile) and len(hostile) >= 10
