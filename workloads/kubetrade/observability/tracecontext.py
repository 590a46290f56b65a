"""OpenTelemetry tracing across the NATS hops: one trace from a candle to a fill.

Each hop of the pipeline (collector -> runner -> risk manager -> executor) is a different
process, so the trace context travels in the NATS message headers as W3C ``traceparent``
(and ``tracestate``).  A publisher calls :func:`inject` on the headers it sends; a
consumer opens its span with :func:`consumer_span`, whose parent is the context
:func:`extract`-ed from the message.  The result is one trace per candle that shows the
signal, the risk decision, the order and the fill under it.

Configuration follows the OpenTelemetry conventions (the chart sets them from values):
``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP/HTTP; unset means no export), ``OTEL_SERVICE_NAME``,
``OTEL_TRACES_SAMPLER_ARG`` (ratio of a parent-based sampler, so a sampled candle keeps its
whole trace).  With no endpoint the functions below still work - spans are no-ops and
headers pass on whatever context arrived - so the call sites need no ``if tracing:``.
That pass-through costs no OpenTelemetry work at all: the consumer span only remembers the
message's ``traceparent``/``tracestate`` in a context variable and :func:`inject` copies
them, a few dictionary lookups on a path that handles a thousand orders a second.

(``tracing.py`` beside this module is the API's request-id tracing; this one is the
global provider every other role uses.)
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind

log = logging.getLogger("kubetrade.observability.tracecontext")

TRACER_NAME = "kubetrade"
TRACE_HEADERS = ("traceparent", "tracestate")
_configured = False
_passing: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("kubetrade_trace", default=None)
"""With tracing off: the trace headers of the message being handled, passed on untouched."""


def configure(service: str, *, exporter: Any = None, sampler_ratio: float | None = None) -> bool:
    """Install the global tracer provider once per process; returns True if spans are exported.

    ``exporter`` (a SpanExporter) wins over the environment; tests pass an in-memory one.
    Without either, nothing is installed and OpenTelemetry's no-op tracer stays in place.
    """
    global _configured
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if exporter is None and not endpoint:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if _configured:
        # The global provider can be set only once per process: a later call (a test
        # fixture) adds its exporter to the provider already in place.
        current = trace.get_tracer_provider()
        if exporter is not None and hasattr(current, "add_span_processor"):
            current.add_span_processor(SimpleSpanProcessor(exporter))
        return True
    if sampler_ratio is None:
        sampler_ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0") or 1.0)
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"kubetrade-{service}"})
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(sampler_ratio)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the OTEL_* endpoint itself
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing enabled", extra={"endpoint": endpoint or "in-process", "sampler_ratio": sampler_ratio})
    return True


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


_installed = (False, -1.0)
"""(whether something other than :func:`configure` installed an SDK provider, when that was last looked at)"""


def enabled() -> bool:
    """Whether this process records spans: :func:`configure`, or anything else, installed an SDK provider.

    Asked twice per message on the order path; OpenTelemetry's global lookup reads the
    environment each time, so a provider installed by someone else is noticed within a second.
    """
    global _installed
    if _configured:
        return True
    seen, at = _installed
    now = time.monotonic()
    if seen or now - at < 1.0:
        return seen
    seen = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    _installed = (seen, now)
    return seen


def inject(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers with the current trace context added (a new dict; the input is not changed)."""
    out = dict(headers or {})
    if enabled():
        propagate.inject(out)
    else:
        out.update(_passing.get() or {})
    return out


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context a message carries (an empty context when it carries none)."""
    return propagate.extract(dict(headers or {}))


@contextlib.contextmanager
def consumer_span(name: str, msg: Any, **attributes: Any) -> Iterator[Span]:
    """A CONSUMER span for handling one NATS message, continuing the publisher's trace.

    While it is open, :func:`inject` puts *this* span into outgoing headers, so whatever
    the handler publishes continues the same trace.
    """
    if not enabled():
        incoming = getattr(msg, "headers", None) or {}
        token = _passing.set({k: incoming[k] for k in TRACE_HEADERS if k in incoming})
        try:
            yield INVALID_SPAN
        finally:
            _passing.reset(token)
        return
    parent = extract(getattr(msg, "headers", None))
    attrs: dict[str, Any] = {"messaging.system": "nats", "messaging.destination.name": getattr(msg, "subject", "")}
    attrs.update({k: v for k, v in attributes.items() if v is not None})
    with tracer().start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attrs) as span:
        yield span


@contextlib.contextmanager
def producer_span(name: str, subject: str, **attributes: Any) -> Iterator[Span]:
    """A PRODUCER span around publishing one message (a new trace if none is current)."""
    attrs: dict[str, Any] = {"messaging.system": "nats", "messaging.destination.name": subject}
    attrs.update({k: v for k, v in attributes.items() if v is not None})
    with tracer().start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attrs) as span:
        yield span


def current_trace_id() -> str | None:
    """Hex trace id of the current span, for log lines and alert annotations."""
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None
