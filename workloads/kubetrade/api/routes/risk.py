"""``/api/v1/risk``: ask for a decision, read the risk figures, read and set the limits.

The risk manager answers over NATS (``risk.check``, ``control.risk``); when it does not,
metrics fall back to what it last saved in the database, marked as such.  Limits are the
RiskPolicy resources: in a cluster the resource is the source of truth (PUT answers 409
and says to edit it); without one (``kubetrade up``) PUT writes the policy to the NATS KV
bucket the risk manager hot-reloads from, exactly as the operator would.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import nats.js.errors
from fastapi import APIRouter, HTTPException, Request
from psycopg.rows import dict_row

from kubetrade import cluster
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import RiskControlReply, RiskControlRequest, RiskDecision, Signal
from kubetrade.resources.base import DNS1123Name, Model
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.validation.manifests import spec_problems

router = APIRouter(prefix="/api/v1/risk", tags=["risk"])
log = logging.getLogger("kubetrade.api.risk")


class PolicyUpdate(Model):
    namespace: DNS1123Name = "default"
    name: DNS1123Name
    spec: dict[str, Any]
    """A RiskPolicy spec, judged as the admission webhook judges one."""


def _nats(request: Request) -> Any:
    nc = request.app.state.nats
    if nc is None or not nc.is_connected:
        raise HTTPException(503, "NATS is not reachable", headers={"Retry-After": "5"})
    return nc


async def decide(request: Request, signal: Signal, retry_hint: str = "") -> RiskDecision:
    """The risk manager's decision on ``signal``; every other outcome is an HTTP error that says whose it is.

    The risk manager answers a message it cannot read with ``{"error": ...}``: that is a
    refusal of what the client sent (422), never a decision.  No answer is a 503; an answer
    that is neither is the risk manager's fault (502).
    """
    from nats.errors import MaxPayloadError

    try:
        reply = await _nats(request).request(subjects.RISK_CHECK, codec.encode(signal), timeout=5)
    except HTTPException:
        raise
    except MaxPayloadError as exc:
        raise HTTPException(413, "the signal is too large to send to the risk manager") from exc
    except Exception as exc:
        raise HTTPException(503, f"risk manager did not answer ({type(exc).__name__}){retry_hint}",
                            headers={"Retry-After": "5"}) from exc
    try:
        return codec.decode(RiskDecision, reply.data)
    except codec.BadMessage as exc:
        try:
            refusal = json.loads(reply.data)
        except ValueError:
            refusal = None
        if isinstance(refusal, dict) and isinstance(refusal.get("error"), str):
            raise HTTPException(422, f"the risk manager refused the signal: {refusal['error'][:500]}") from exc
        log.warning("unreadable risk manager reply", extra={"error": str(exc)[:300]})
        raise HTTPException(502, f"the risk manager's answer is not a decision: {str(exc)[:300]}") from exc


@router.post("/check")
async def check(signal: Signal, request: Request) -> dict[str, Any]:
    """What the risk manager would decide on this signal - a dry run: nothing is reserved or
    submitted (orders are placed with ``POST /api/v1/orders``, which passes the same checks)."""
    decision = await decide(request, signal.model_copy(update={"dry_run": True}))
    return decision.model_dump(by_alias=True, exclude_none=True)


@router.get("/metrics")
async def metrics(request: Request) -> dict[str, Any]:
    nc = request.app.state.nats
    if nc is not None and nc.is_connected:
        try:
            msg = await nc.request(subjects.RISK_CONTROL, codec.encode(RiskControlRequest(action="metrics")), timeout=3)
            reply = codec.decode(RiskControlReply, msg.data)
            return {
                "source": "risk-manager",
                "portfolios": [p.model_dump(by_alias=True, exclude_none=True) for p in reply.portfolios],
            }
        except Exception as exc:  # fall back to the saved state below
            log.info("risk manager did not answer; serving saved state", extra={"error": type(exc).__name__})
    pool = request.app.state.db_pool
    if pool is None:
        raise HTTPException(503, "neither the risk manager nor the database is reachable")
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM risk_state ORDER BY environment, namespace, policy")
        rows = await cur.fetchall()
    return {
        "source": "database",
        "portfolios": [
            {
                "environment": r["environment"],
                "namespace": r["namespace"],
                "policy": r["policy"],
                "peakEquity": r["peak_equity"],
                "dayStartEquity": r["day_start_equity"],
                "breakerOpen": r["breaker_open"],
                "breakerReason": r["breaker_reason"],
                "violations": r["violations"],
            }
            for r in rows
        ],
    }


async def _bucket(request: Request) -> Any:
    return await kv.policy_bucket(_nats(request).jetstream())


@router.get("/limits")
async def limits(request: Request) -> list[dict[str, Any]]:
    """Every published policy, by key.  The keys come from the bucket's stream state (one
    request, read-your-writes), not from a key watcher, which can end before it has seen a
    value that was just written and report the bucket empty."""
    js = _nats(request).jetstream()
    bucket = await _bucket(request)
    prefix = f"$KV.{kv.RISK_POLICY_BUCKET}."
    info = await js.stream_info(f"KV_{kv.RISK_POLICY_BUCKET}", subjects_filter=f"{prefix}>")
    out = []
    for subject in sorted(info.state.subjects or {}):
        try:
            entry = await bucket.get(subject[len(prefix) :])
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            continue  # deleted (or purged) since the stream state was read
        if entry.value is None:
            continue
        doc = json.loads(entry.value)
        out.append({"key": entry.key, "revision": entry.revision, **doc})
    return out


@router.put("/limits")
async def set_limits(body: PolicyUpdate, request: Request) -> dict[str, Any]:
    problems = spec_problems("RiskPolicy", body.spec)
    if problems:
        raise HTTPException(422, "; ".join(problems))
    spec = RiskPolicySpec.model_validate(body.spec)
    if cluster.configured():
        raise HTTPException(
            409,
            f"in a cluster the RiskPolicy resource is the source of truth: "
            f"kubectl -n {body.namespace} edit riskpolicy {body.name}",
        )
    bucket = await _bucket(request)
    key = kv.policy_key(body.namespace, body.name)
    revision = await bucket.put(key, kv.encode(kv.PolicyEntry(namespace=body.namespace, name=body.name, spec=spec)))
    return {"key": key, "revision": revision, "spec": spec.to_k8s()}


class BreakerReset(Model):
    environment: Literal["paper", "live"] | None = None
    namespace: DNS1123Name | None = None
    policy: DNS1123Name | None = None


@router.post("/breaker/reset")
async def reset_breaker(body: BreakerReset, request: Request) -> dict[str, Any]:
    """Close circuit breakers tripped by drawdown (a person's decision; the equity peak restarts from now)."""
    req = RiskControlRequest(
        action="reset-breaker", environment=body.environment, namespace=body.namespace, policy=body.policy
    )
    try:
        msg = await _nats(request).request(subjects.RISK_CONTROL, codec.encode(req), timeout=5)
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(503, f"risk manager did not answer ({type(exc).__name__})",
                            headers={"Retry-After": "5"}) from exc
    try:
        reply = codec.decode(RiskControlReply, msg.data)
    except codec.BadMessage as exc:
        raise HTTPException(502, f"the risk manager's answer is not readable: {str(exc)[:300]}") from exc
    if not reply.ok:
        raise HTTPException(422, f"the risk manager refused: {(reply.message or '')[:500]}")
    return reply.model_dump(by_alias=True, exclude_none=True)
