"""Run the benchmarks: ``python bench/run.py [NAME...] [--json FILE]``.

Every ``bench/bench_NAME.py`` exposes ``run() -> dict`` that measures its own baseline in
the same run and reports ratios against it.  Without names, all benchmarks run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench.{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    found = discover()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(found)}")
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(found)}")
    from kubetrade.candles import MissingData

    results: dict[str, Any] = {}
    not_run: list[str] = []
    for name in args.names or list(found):
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            res = load(found[name]).run()
        except MissingData as exc:  # the data is not shipped: say what is missing and how to get it
            print(f"  not run: {exc}", flush=True)
            results[name] = {"not_run": str(exc)}
            not_run.append(name)
            continue
        res["bench_seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = res
        width = max(len(k) for k in res)
        for key, value in res.items():
            print(f"  {key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not_run:
        print(f"not run for want of data: {', '.join(not_run)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
