"""``kubetrade alertmanager-config``: Alertmanager's configuration with its credentials from a Secret.

::

    kubetrade alertmanager-config render --template /etc/alertmanager/template/alertmanager.yml \\
        --secrets /etc/alertmanager/secrets/kubetrade-alerting --out /etc/alertmanager/config/alertmanager.yml
    kubetrade alertmanager-config check --template ... --secrets ...

The chart's Alertmanager runs ``render`` as its init container (see :mod:`kubetrade.alerts.amconfig`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("alertmanager-config",
                            help="write Alertmanager's configuration with credentials read from a mounted Secret")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, what in (("render", "write the configuration with the Secret's values in place"),
                       ("check", "only say what an enabled channel misses from the Secret")):
        p = actions.add_parser(name, help=what)
        p.add_argument("--template", type=Path, required=True,
                       help="configuration naming credentials as kubetrade-secret:<key>")
        p.add_argument("--secrets", type=Path, required=True, help="folder of the mounted Secret (one file per key)")
        if name == "render":
            p.add_argument("--out", type=Path, required=True, help="where to write the configuration (mode 0600)")
        p.set_defaults(func=_render if name == "render" else _check)


def _render(args: argparse.Namespace) -> int:
    from kubetrade.alerts.amconfig import ConfigError, render

    try:
        text = render(args.template.read_text(), args.secrets)
    except (OSError, ConfigError) as exc:
        print(f"alertmanager-config: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(args.out)
    print(f"alertmanager-config: wrote {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    import yaml

    from kubetrade.alerts.amconfig import problems

    missing = problems(yaml.safe_load(args.template.read_text()), args.secrets)
    for line in missing:
        print(f"alertmanager-config: {line}", file=sys.stderr)
    return 1 if missing else 0
