"""``kubetrade crds ...``: generate and check the CRDs, validate manifests offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from kubetrade.resources import crdgen


def register(sub: Any) -> None:
    crds = sub.add_parser("crds", help="generate or check the CustomResourceDefinitions")
    crds_sub = crds.add_subparsers(dest="crds_command", required=True)
    gen = crds_sub.add_parser("generate", help="write crds/*.yaml from the typed models")
    gen.add_argument("--out", type=Path, default=Path("crds"))
    gen.add_argument("--check", action="store_true", help="fail if the files differ instead of writing")
    gen.set_defaults(func=_generate)

    val = sub.add_parser("validate", help="validate kubetrade manifests offline with the typed models")
    val.add_argument("paths", nargs="+", type=Path)
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
    """Every check the API server, the admission webhook and the operator make, offline."""
    from kubetrade.resources.validation import manifest_problems

    failures = 0
    files = [p for path in args.paths for p in (sorted(path.glob("*.yaml")) if path.is_dir() else [path])]
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            print(f"{path}#0: cannot be read: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
            failures += 1
            continue
        for index, doc in enumerate(docs):
            if not isinstance(doc, dict) or str(doc.get("apiVersion", "")).split("/")[0] != "kubetrade.io":
                continue
            meta = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
            name = f"{path}#{index} {doc.get('kind')}/{str(meta.get('name'))[:80]}"
            problems = manifest_problems(doc)
            if problems:
                failures += 1
                for problem in problems:
                    print(f"{name}: {problem}", file=sys.stderr)
            else:
                print(f"{name}: valid")
    return 1 if failures else 0
