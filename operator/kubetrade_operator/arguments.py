"""Command-line arguments of the operator (kept apart so ``kubetrade --help`` does not import kopf)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", action="append", help="watch these namespaces (default: all)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port (default 9090)")
    parser.add_argument("--health-port", type=int, default=8080, help="kopf liveness endpoint (/healthz)")
    parser.add_argument("--webhook-port", type=int, help="serve the validating webhook on this port")
    parser.add_argument("--webhook-addr", default="0.0.0.0", help="address the webhook listens on")
    parser.add_argument("--webhook-host", help="host name the API server uses to reach the webhook")
    parser.add_argument("--webhook-cert", type=Path, help="TLS certificate of the webhook (PEM)")
    parser.add_argument("--webhook-key", type=Path, help="TLS key of the webhook (PEM)")
    parser.add_argument("--webhook-ca", type=Path, help="CA bundle the API server verifies the webhook with")
    parser.add_argument("--no-leader-election", action="store_true", help="run without the Lease (one replica only)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
