"""``kubetrade train predictor|policy|list``: train the LSTM-Transformer or a PPO policy, store it, say how it did.

Candles come from files (``kubetrade train predictor data/BTC_USDT-5m.csv.gz ...``) or, in the Goal's
training Job, from the candle store (``--exchange/--timeframe/--symbols/--days`` with ``--dsn``).  The
last ``--holdout`` of the bars is never trained on: the model is scored there against the baselines
(predictor: predicting no change and the ridge regression; policy: cash and buy-and-hold).  The model
goes to the model store (``--dsn``: table ``models``, ``registry://NAME`` with its sha256) and/or a
file (``--out``); the command prints the Strategy reference to use.  Needs the ``train`` extra (JAX).
Exit codes: 0 trained and stored, 1 input it cannot use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train the LSTM-Transformer predictor or an RL policy and store it")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in (("predictor", "the LSTM-Transformer price predictor"),
                       ("policy", "a PPO reinforcement-learning policy (target position per bar)")):
        k = kinds.add_parser(kind, help=f"train {text}")
        k.add_argument("files", nargs="*", type=Path, help="candle files (default: the candle store, see --dsn)")
        k.add_argument("--name", default=f"{'lstm-transformer' if kind == 'predictor' else 'ppo-policy'}",
                       help="model name in the store")
        k.add_argument("--dsn", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                       help="PostgreSQL: the model store (and candles when no files are given)")
        k.add_argument("--out", type=Path, help="also write the ONNX file here")
        k.add_argument("--exchange", default="binance", help="exchange of the stored candles (with --dsn)")
        k.add_argument("--timeframe", default="5m", help="candle timeframe of the stored candles (with --dsn)")
        k.add_argument("--symbols", default="BTC/USDT,ETH/USDT", help="comma-separated, for the candle store")
        k.add_argument("--days", type=float, default=60.0, help="days of stored candles to use")
        k.add_argument("--holdout", type=float, default=0.2, help="last fraction of bars kept out of training")
        k.add_argument("--seed", type=int, default=0, help="random seed: the same seed and data give the same model")
        k.add_argument("--epochs", type=int, default=20 if kind == "predictor" else 30,
                       help="predictor: epochs; policy: PPO iterations")
        k.add_argument("--window", type=int, default=32 if kind == "predictor" else 8,
                       help="bars of history in each input")
        if kind == "predictor":
            k.add_argument("--hidden", type=int, default=16, help="width of the LSTM state and attention layers")
            k.add_argument("--heads", type=int, default=2, help="attention heads")
            k.add_argument("--layers", type=int, default=1, help="self-attention blocks over the LSTM states")
            k.add_argument("--horizon", type=int, default=1, help="bars ahead whose return is predicted")
        else:
            k.add_argument("--market", choices=("spot", "perpetual"), default="spot",
                       help="spot: long or flat; perpetual: long, flat or short")
            k.add_argument("--predictor", help="registry://NAME@SHA256 or a file: observe this predictor's output")
        k.set_defaults(func=_run)
    ls = kinds.add_parser("list", help="the models in the store")
    ls.add_argument("--dsn", default=os.environ.get("KUBETRADE_DATABASE_URL"), help="PostgreSQL: the model store")
    ls.add_argument("--name", help="only the models of this name")
    ls.set_defaults(func=_list)


TRAINING_LIBRARIES = ("jax", "jaxlib", "optax", "gymnasium", "onnx")
"""The ``train`` extra's packages: the runtime image leaves them out, the training image has them."""


def _fail(msg: str) -> int:
    print(f"train: {msg}", file=sys.stderr)
    return 1


async def _stored_candles(dsn: str, exchange: str, timeframe: str, symbols: list[str], days: float) -> list[Any]:
    import psycopg

    from kubetrade.candles import from_arrays, timeframe_ms
    from kubetrade.storage import history
    from kubetrade.storage.candles import SeriesKey

    bar = timeframe_ms(timeframe)
    out = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for s in symbols:
            end = datetime.now(UTC)
            start = end - timedelta(days=days)
            limit = int(days * 86_400_000 / bar) + 1
            rows, _ = await history.page(conn, SeriesKey(exchange, s, timeframe), start, end, limit)
            if len(rows) < 100:
                raise ValueError(f"{exchange} {s} {timeframe}: {len(rows)} stored candles in the last {days:g} days")
            out.append(from_arrays(*zip(*rows, strict=True), timeframe=timeframe, symbol=s))
    return out


def _data(args: argparse.Namespace) -> list[Any]:
    from kubetrade import candlefiles

    if args.files:
        return [candlefiles.load(f) for f in args.files]
    if not args.dsn:
        raise ValueError("no candle files and no --dsn (KUBETRADE_DATABASE_URL) to read stored candles from")
    return asyncio.run(_stored_candles(args.dsn, args.exchange, args.timeframe,
                                       [s.strip() for s in args.symbols.split(",") if s.strip()], args.days))


def _cut(data: list[Any], holdout: float) -> int:
    """The time that splits training from held-out bars: the same for every set."""
    if not 0 < holdout < 0.9:
        raise ValueError(f"--holdout {holdout} must be within (0, 0.9)")
    t0 = max(int(c.time[0]) for c in data)
    t1 = min(int(c.time[-1]) for c in data)
    if t1 <= t0:
        raise ValueError("the candle sets share no time span")
    return int(t1 - (t1 - t0) * holdout)


def _run(args: argparse.Namespace) -> int:
    try:
        data = _data(args)
        cut = _cut(data, args.holdout)
        result = _predictor(args, data, cut) if args.kind == "predictor" else _policy(args, data, cut)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in TRAINING_LIBRARIES:
            raise
        return _fail(f"this environment has no training libraries ({exc.name} cannot be imported): run kubetrade "
                     f"train from the training image (kubetrade-train, chart value image.train) or install "
                     f"kubetrade[train]")
    blob, kind, features, t_from, t_to, metrics, config = result
    import hashlib

    sha = hashlib.sha256(blob).hexdigest()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(blob)
    uri = str(args.out.resolve()) if args.out else None
    if args.dsn:
        from kubetrade.prediction import registry

        registry.store(args.dsn, args.name, blob, kind=kind, features=features,
                       train_from=datetime.fromtimestamp(t_from / 1000, UTC),
                       train_to=datetime.fromtimestamp(t_to / 1000, UTC), metrics=metrics, config=config)
        uri = f"registry://{args.name}"
    if uri is None:
        return _fail("nowhere to store the model: give --dsn (the model store) or --out FILE")
    field = "model" if kind == "predictor" else "policy"
    print(json.dumps({"sha256": sha, "kind": kind, "metrics": metrics}, indent=2, default=str))
    print(f"\nStrategy reference:\n  {field}: {{uri: \"{uri}\", sha256: {sha}, features: {features}}}")
    return 0


def _predictor(args: argparse.Namespace, data: list[Any], cut: int) -> tuple[Any, ...]:
    import numpy as np

    from kubetrade.prediction import features as feat
    from kubetrade.prediction import learn
    from kubetrade.prediction.network import NetConfig

    cfg = NetConfig(window=args.window, hidden=args.hidden, heads=args.heads, layers=args.layers,
                    horizon=args.horizon, epochs=args.epochs, seed=args.seed)
    trained = learn.train_predictor(data, cfg, until_ms=cut, progress=lambda e, r: print(
        f"epoch {e}: train {r['train_mse']:.4f} validation {r['val_mse']:.4f}", file=sys.stderr))
    metrics: dict[str, Any] = {"training": trained.result.summary(), "held_out": {}}
    for c in data:
        start = int(np.searchsorted(c.time, cut))
        net = learn.evaluate(learn.onnx_series(trained.onnx, c), c, start, len(c), cfg.horizon)
        base = learn.evaluate(learn.ridge_series(data, cut, c), c, start, len(c), cfg.horizon)
        metrics["held_out"][c.label] = {"network": learn.report(net), "ridge": learn.report(base)}
    return (trained.onnx, "predictor", feat.BAR_FEATURES, trained.train_from, trained.train_to, metrics,
            trained.config())


def _policy(args: argparse.Namespace, data: list[Any], cut: int) -> tuple[Any, ...]:
    from kubetrade.learning import training

    return training.policy_command(args, data, cut)


def _list(args: argparse.Namespace) -> int:
    if not args.dsn:
        return _fail("--dsn (KUBETRADE_DATABASE_URL) names the model store")
    from kubetrade.prediction import registry

    for m in registry.describe(args.dsn, args.name):
        print(f"{m.name:<24} {m.kind:<9} {m.features:<10} {m.sha256}  trained on {m.train_from:%Y-%m-%d} .. "
              f"{m.train_to:%Y-%m-%d}  stored {m.created_at:%Y-%m-%d %H:%M}")
    return 0
