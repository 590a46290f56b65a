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
    "kubetrade.engine.selectcommands",
    "kubetrade.risk.commands",
    "kubetrade.executor.commands",
    "kubetrade.engine.warmcache",
    "kubetrade.runner.commands",
    "kubetrade.goalevolution.commands",
    "kubetrade.goalmanager.commands",
    "kubetrade.collector.commands",
    "kubetrade.alerts.commands",
    "kubetrade.download.commands",
    "kubetrade.views.commands",
    "kubetrade.training.commands",
)


SERVER_ROLES: tuple[str, ...] = (
    "api", "operator", "collect", "risk-manager", "goal-manager", "executor", "runner", "goal-evolution",
    "backtest-job", "warmup", "alertmanager-config", "install-secrets", "install-admin-key",
)
"""Commands that are the platform's processes (what the chart, the operator and ``kubetrade up`` start);
every other command is one a user types, and ``--help`` lists the two groups apart."""
ROLE_MODULES: dict[str, str] = {
    "api": "kubetrade.api.commands",
    "operator": "kubetrade_operator.commands",
    "collect": "kubetrade.collector.commands",
    "risk-manager": "kubetrade.risk.commands",
    "goal-manager": "kubetrade.goalmanager.commands",
    "executor": "kubetrade.executor.commands",
    "runner": "kubetrade.runner.commands",
    "goal-evolution": "kubetrade.goalevolution.commands",
    "backtest-job": "kubetrade.backtestjobs.commands",
    "warmup": "kubetrade.engine.warmcache",
    "alertmanager-config": "kubetrade.alerts.commands",
    "install-secrets": "kubetrade.install.commands",
    "install-admin-key": "kubetrade.install.commands",
}
"""The module that registers each server role.  A pod runs one role, so ``kubetrade <role> ...`` builds
the parser of that role's module only: every other command module stays out of the process (the API's
key store, rich, the backtester's CLI ...: 2.5 MB of every runner pod's memory, bench runner_footprint)."""
USER_ORDER: tuple[str, ...] = ("download-data", "backtest", "evolve", "train", "up", "trades", "strategies", "validate",
                               "crds", "api-keys")
"""The order user commands are listed in (the first things a trader reaches for first); others follow."""


def _versions() -> str:
    from importlib import metadata

    import kubetrade

    parts = []
    for dist in ("ccxt", "numba", "numpy"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return f"kubetrade {kubetrade.__version__} (python {sys.version.split()[0]}, {', '.join(parts)})"


def _grouped_help(sub: argparse._SubParsersAction) -> str:  # type: ignore[type-arg]
    """The commands, user commands first, then the server roles, each with its one-line help."""
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    user = sorted((n for n in sub.choices if n not in SERVER_ROLES),
                  key=lambda n: USER_ORDER.index(n) if n in USER_ORDER else len(USER_ORDER))
    roles = [n for n in sub.choices if n in SERVER_ROLES]
    width = max(len(n) for n in sub.choices) + 2
    lines = ["commands for traders and operators:"]
    lines += [f"  {n:<{width}}{helps.get(n, '')}" for n in user]
    lines += ["", "server roles (the platform's processes; the chart, the operator and 'kubetrade up' start them):"]
    lines += [f"  {n:<{width}}{helps.get(n, '')}" for n in roles]
    lines += ["", "kubetrade COMMAND --help shows a command's options. Settings come from KUBETRADE_* variables;",
              "a bad value stops the command naming the variable."]
    return "\n".join(lines)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetrade", description=__doc__.splitlines()[0] if __doc__ else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_versions(), help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in modules:
        importlib.import_module(name).register(sub)
    parser.epilog = _grouped_help(sub)
    sub._choices_actions.clear()  # the epilog lists them, grouped; argparse would list them again, mixed
    sub.help = "one of the commands below"
    return parser


def main(argv: Sequence[str] | None = None, modules: Sequence[str] = COMMAND_MODULES) -> int:
    """Run a subcommand; ``modules`` narrows the CLI to some roles (``python -m kubetrade.risk``)."""
    from kubetrade import settings
    from kubetrade.engine.warmcache import seed_from_image

    try:
        settings.load()  # every KUBETRADE_* variable, typed, before anything reads one
    except settings.SettingsError as exc:
        print(f"kubetrade: bad setting: {exc}", file=sys.stderr)
        return 2
    seed_from_image()  # before the command modules are imported: numba looks at its cache then
    words = list(sys.argv[1:] if argv is None else argv)
    if modules is COMMAND_MODULES and words and words[0] in ROLE_MODULES:
        modules = (ROLE_MODULES[words[0]],)  # a server role: its own module only
    parser = build_parser(modules)
    args = parser.parse_args(words)
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
    from kubetrade.observability import metrics
    from kubetrade.observability import tracecontext as tracing

    metrics.serve_from_env(role, kubetrade.__version__)
    tracing.configure(role)


if __name__ == "__main__":
    sys.exit(main())
