"""``kubetrade validate FILE...``: every check the API server, the webhook and the operator make, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from kubetrade.validation.manifests import manifest_problems


def register(sub: Any) -> None:
    val = sub.add_parser(
        "validate",
        help="check kubetrade manifests offline as the API server, its webhook and the operator would",
    )
    val.add_argument("paths", nargs="+", type=Path, help="manifest files, or folders of *.yaml files")
    val.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    """Every check the API server, the admission webhook and the operator make, offline."""
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
