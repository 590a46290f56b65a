"""``kubetrade crds ...``: generate and check the CRDs, validate manifests offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubetrade.resources import BY_KIND, crdgen


def register(sub: Any) -> None:
    crds = sub.add_parser("crds", help="generate or check the CustomResourceDefinitions")
    crds_sub = crds.add_subparsers(dest="crds_command", required=True)
    gen = crds_sub.add_parser("generate", help="write crds/*.yaml from the typed models")
    gen.add_argument("--out", type=Path, default=Path("crds"), help="folder for the CRD files (default crds)")
    gen.add_argument("--check", action="store_true", help="fail if the files differ instead of writing")
    gen.set_defaults(func=_generate)

    val = sub.add_parser("validate", help="validate kubetrade manifests offline with the typed models")
    val.add_argument("paths", nargs="+", type=Path, help="manifest files or folders (YAML, several documents each)")
    val.set_defaults(func=_validate)


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


def _validate(args: argparse.Namespace) -> int:
    failures = 0
    files = [p for path in args.paths for p in (sorted(path.glob("*.yaml")) if path.is_dir() else [path])]
    for path in files:
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if not isinstance(doc, dict) or doc.get("apiVersion", "").split("/")[0] != "kubetrade.io":
                continue
            model = BY_KIND.get(doc.get("kind", ""))
            name = f"{path}#{index} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            if model is None:
                print(f"{name}: unknown kind", file=sys.stderr)
                failures += 1
                continue
            try:
                model.parse(doc)
            except ValidationError as exc:
                failures += 1
                for err in exc.errors():
                    loc = ".".join(str(p) for p in err["loc"])
                    print(f"{name}: {loc}: {err['msg']}", file=sys.stderr)
            else:
                print(f"{name}: valid")
    return 1 if failures else 0
