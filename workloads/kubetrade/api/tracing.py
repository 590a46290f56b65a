"""Request ids that are trace ids: one id for "which log lines" and "which trace".

A caller's W3C ``traceparent`` continues the caller's trace.  Without one, an
``X-Request-ID`` that is itself a valid trace id (32 hex digits) becomes the trace id,
so a client's own id threads through our logs and traces; any other ``X-Request-ID`` is
echoed as the request id and the trace id is new (both are in the access log).

Spans go to the process's global tracer provider, which
:func:`kubetrade.observability.tracecontext.configure` installs when traces are exported.
When they are not, the provider is OpenTelemetry's no-op one and makes no ids; the
request then gets a fresh trace id all the same (a non-recording span carrying it), so
log lines and the context propagated onwards over NATS still share one id.
"""

from __future__ import annotations

import re
import secrets

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_PROPAGATOR = TraceContextTextMapPropagator()


def as_trace_id(value: str) -> int | None:
    """The value as a trace id, if it is one (32 lowercase hex digits, not all zero)."""
    if _TRACE_ID.match(value):
        return int(value, 16) or None
    return None


def _remote(trace_id: int) -> Context:
    remote = trace.SpanContext(trace_id=trace_id, span_id=secrets.randbits(64) or 1, is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def parent_context(traceparent: str | None, request_id: str) -> Context | None:
    """The context a request's server span starts in: the caller's trace, or one named by its id."""
    if traceparent:
        return _PROPAGATOR.extract({"traceparent": traceparent})
    wanted = as_trace_id(request_id)
    # The client's id as a remote parent: the trace gets that id; the parent span is the client's call.
    return _remote(wanted) if wanted is not None else None


def server_span(tracer: trace.Tracer, name: str, parent: Context | None) -> trace.Span:
    """The request's span; never one without a trace id, even under the no-op provider."""
    span = tracer.start_span(name, kind=trace.SpanKind.SERVER, context=parent)
    if span.get_span_context().is_valid:
        return span
    context = trace.SpanContext(trace_id=secrets.randbits(128) or 1, span_id=secrets.randbits(64) or 1,
                                is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.NonRecordingSpan(context)


def hex_id(number: int, digits: int = 32) -> str:
    return format(number, f"0{digits}x")
