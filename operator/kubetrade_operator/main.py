"""Wiring: settings, NATS, the status feed, the leader lease, the webhook, kopf itself."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from kubetrade.messaging import auth
from kubetrade.messaging.streams import ensure_streams
from kubetrade.observability.logging import configure as configure_logs
from kubetrade_operator import (  # noqa: F401 - importing registers the handlers
    cache,
    collectors,
    goals,
    resourcemetrics,
    riskpolicies,
    statusfeed,
    strategies,
)
from kubetrade_operator.arguments import add_arguments
from kubetrade_operator.leader import LeaseElector
from kubetrade_operator.persistence import ObservedGenerationDiffBase, UnmarkedAnnotationsProgressStorage
from kubetrade_operator.runtime import RUNTIME

log = logging.getLogger("kubetrade.operator")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    cache.capture(kwargs)  # the live indices, for reconciles that run outside a handler
    settings.persistence.finalizer = "kubetrade.io/finalizer"
    # Annotations, not status: the structural schema would prune an undeclared status.kopf.
    # Strategies need neither in the normal case (see persistence.py): one status patch per cycle.
    settings.persistence.progress_storage = UnmarkedAnnotationsProgressStorage(prefix="kubetrade.io")
    settings.persistence.diffbase_storage = ObservedGenerationDiffBase(
        kopf.AnnotationsDiffBaseStorage(prefix="kubetrade.io", key="last-handled")
    )
    settings.posting.loggers = False  # Events come from our handlers, not from every log line
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    watched = getattr(ARGS, "namespace", None) or []
    if watched and all(ns.replace("-", "").replace(".", "").isalnum() for ns in watched):
        # Exact namespaces (operator.watchNamespaces): the operator may not list namespaces at all
        # (a Role per namespace, nothing cluster-wide but its CRDs), so kopf does not scan them;
        # a CRD upgrade is then noticed when the operator restarts (a chart upgrade restarts it).
        settings.scanning.disabled = True
    RUNTIME.loop = asyncio.get_running_loop()
    asyncio.get_running_loop().create_task(_connect_nats())


async def _connect_nats() -> None:
    """Connect in the background and keep trying: reconciles that need no NATS go on meanwhile."""
    import nats

    delay = 1.0
    while RUNTIME.nats is None:
        try:
            nc = await nats.connect(
                RUNTIME.config.nats_url,
                **auth.credentials("operator"), name="kubetrade-operator", max_reconnect_attempts=-1, connect_timeout=3
            )
            await ensure_streams(nc.jetstream())
            await statusfeed.subscribe(nc)
            RUNTIME.nats = nc
            log.info("nats connected", extra={"url": RUNTIME.config.nats_url})
            with contextlib.suppress(Exception):
                removed = await riskpolicies.prune_orphans(getattr(ARGS, "namespace", None) or None)
                if removed:
                    log.info("unpublished orphaned policies", extra={"count": removed})
        except Exception as exc:
            log.warning("nats not reachable yet", extra={"error": type(exc).__name__})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


@kopf.on.cleanup()
async def close_nats(**_: Any) -> None:
    if RUNTIME.nats is not None:
        with contextlib.suppress(Exception):
            await RUNTIME.nats.drain()


class _Args(argparse.Namespace):
    webhook_port: int | None = None
    webhook_addr: str = "0.0.0.0"
    webhook_host: str | None = None
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    webhook_ca: Path | None = None


ARGS = _Args()


async def run(args: argparse.Namespace) -> int:
    for key, value in vars(args).items():
        setattr(ARGS, key, value)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    elector = None
    if not args.no_leader_election:
        elector = LeaseElector(RUNTIME.config.lease_namespace, RUNTIME.config.lease_name)
        log.info("waiting for the leader lease", extra={"identity": elector.identity})
        if not await elector.acquire(stop):
            return 0
    webhooks = None
    if args.webhook_port:
        # Admission is served on threads of its own (admission.py), not by kopf on this loop.
        from kubetrade_operator.admission import AdmissionServer

        if not (args.webhook_cert and args.webhook_key):
            raise SystemExit("--webhook-port needs --webhook-cert and --webhook-key")
        webhooks = AdmissionServer(
            addr=args.webhook_addr,
            port=args.webhook_port,
            host=args.webhook_host,
            certfile=args.webhook_cert,
            keyfile=args.webhook_key,
            cafile=args.webhook_ca,
        )
        await asyncio.to_thread(webhooks.start)
    operator_stop: asyncio.Future[None] = loop.create_future()
    operator = asyncio.create_task(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace or (),
            standalone=True,
            stop_flag=operator_stop,
            liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
        )
    )
    watchers = [asyncio.create_task(stop.wait()), operator]
    lost = None
    if elector is not None:
        lost = asyncio.create_task(elector.hold(stop))
        watchers.append(lost)
    done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if lost is not None and lost in done and not stop.is_set():
        code = 1  # lease lost: stop acting at once; the pod restarts and queues for the lease again
    if not operator_stop.done():
        operator_stop.set_result(None)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(operator, 30)
    if operator in done and operator.exception() is not None:
        log.error("operator failed", exc_info=operator.exception())
        code = 1
    if webhooks is not None:
        # A replica that lost the lease leaves the webhooks to the one that holds it now.
        await asyncio.to_thread(webhooks.stop, code == 0)
    if elector is not None and code == 0:
        await asyncio.to_thread(elector.release)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetrade-operator", description="kubetrade control plane")
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logs("operator", args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
