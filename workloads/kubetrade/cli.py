"""The one command-line entry point, ``kubetrade``: every role of the image is a subcommand.

Subcommands live next to the code they drive; each module listed in ``COMMAND_MODULES``
exposes ``register(subparsers)``, which adds its parsers and sets ``func`` to a callable
taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "kubetrade.resources.commands",
    "kubetrade.validation.commands",
    "kubetrade.install.commands",
    "kubetrade.api.commands",
    "kubetrade.api.keycommands",
    "kubetrade.backtestjobs.commands",
    "kubetrade.localstack.commands",
    "kubetrade_operator.commands",
    "kubetrade.engine.commands",
    "kubetrade.risk.commands",
    "kubetrade.executor.commands",
    "kubetrade.engine.warmcache",
    "kubetrade.runner.commands",
    "kubetrade.goalevolution.commands",
    "kubetrade.collector.commands",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetrade", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None, modules: Sequence[str] = COMMAND_MODULES) -> int:
    """Run a subcommand; ``modules`` narrows the CLI to some roles (``python -m kubetrade.risk``)."""
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _observe(args.command)
    code: int = args.func(args)
    return code


def _observe(role: str) -> None:
    """Metrics endpoint and tracing for every role, from the environment the chart sets.

    Here rather than in each command, so every workload is scrapeable and traced alike
    (``KUBETRADE_METRICS_PORT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``); both are off when unset.
    """
    import kubetrade
    from kubetrade.engine.warmcache import seed_from_image
    from kubetrade.observability import metrics
    from kubetrade.observability import tracecontext as tracing

    seed_from_image()
    metrics.serve_from_env(role, kubetrade.__version__)
    tracing.configure(role)


if __name__ == "__main__":
    sys.exit(main())
