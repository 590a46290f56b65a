"""``kubetrade crds ...``: generate and check the CRDs (``kubetrade validate`` is in kubetrade.validation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kubetrade.resources import crdgen


def register(sub: Any) -> None:
    crds = sub.add_parser("crds", help="generate or check the CustomResourceDefinitions")
    crds_sub = crds.add_subparsers(dest="crds_command", required=True)
    gen = crds_sub.add_parser("generate", help="write crds/*.yaml from the typed models")
    gen.add_argument("--out", type=Path, default=Path("crds"), help="folder for the CRD files (default crds)")
    gen.add_argument("--check", action="store_true", help="fail if the files differ instead of writing")
    gen.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    if args.check:
        stale = crdgen.drift(args.out)
        if stale:
            print(f"CRDs out of date: {', '.join(stale)}; run `kubetrade crds generate`", file=sys.stderr)
            return 1
        print("CRDs up to date")
        return 0
    for path in crdgen.generate(args.out):
        print(f"wrote {path}")
    return 0
