"""``kubetrade up``: the local default."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("up", help="run the whole platform locally (embedded NATS and PostgreSQL)")
    parser.add_argument(
        "-f", "--resources", type=Path, action="append",
        help="resource YAML files or folders (default: examples/)",
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".kubetrade"), help="where data is kept")
    parser.add_argument("--api-port", type=int, default=8000, help="port of the local API (default 8000)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (scripted runs)")
    parser.add_argument("--speed", type=float, help="replay speed (default: each replay Collector's own)")
    parser.add_argument("--live-days", type=float, default=7.0, help="days at the end of the data replayed live")
    parser.add_argument("--population", type=int, default=48, help="evolution population per Goal (local scale)")
    parser.add_argument("--generations", type=int, default=4, help="evolution generations per Goal (local scale)")
    parser.add_argument("--max-evolved", type=int, default=3, help="evolved strategies sent to paper per Goal")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the local evolution")
    parser.add_argument("--no-evolve", action="store_true", help="skip the evolution; trade the given strategies")
    parser.set_defaults(func=_up)


def _up(args: argparse.Namespace) -> int:
    import logging

    from kubetrade.localstack import logfiles
    from kubetrade.localstack.up import UpOptions, run
    from kubetrade.observability.logging import configure

    configure("local", "INFO")
    # the console is for people; the JSON log lines of every in-process role go to a file. Each run
    # starts fresh logs; the last few runs' are kept as NAME.log.1, .2, .3 (older ones deleted)
    log_dir = args.state_dir.resolve() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    logfiles.rotate(log_dir)
    root = logging.getLogger()
    handler = logfiles.run_handler(log_dir / "kubetrade-up.log")
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    return run(
        UpOptions(
            resources=args.resources or [Path("examples")],
            state_dir=args.state_dir.resolve(),
            api_port=args.api_port,
            duration=args.duration,
            speed=args.speed,
            live_days=args.live_days,
            population=args.population,
            generations=args.generations,
            max_evolved=args.max_evolved,
            seed=args.seed,
            evolve=not args.no_evolve,
        )
    )
