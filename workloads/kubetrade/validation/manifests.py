"""One judgement of a kubetrade resource, used wherever one enters.

* :func:`spec_problems` - a spec as the API server stored it: the model (with its
  cross-field rules) and the semantic checks of :mod:`kubetrade.validation.semantic`.  The
  admission webhook and every reconcile call it.
* :func:`manifest_problems` - a whole manifest as a person wrote it: apiVersion, kind, the
  metadata rules the API server applies (names, labels, annotations), the schema with the
  API server's strict JSON types (``warmupBars: "500"`` and ``paused: "yes"`` are refused,
  as the API server refuses them), then :func:`spec_problems`.  ``kubetrade validate`` and
  the API's write routes call it.

A problem names its field and never quotes more than a few dozen characters of what was
sent.  A test applies a corpus of bad manifests to the real API server with the webhook,
to ``kubetrade validate`` and, with the webhook out of the way, to the operator, and
requires the same verdict everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from kubetrade.resources import API_VERSION, BY_KIND, GROUP
from kubetrade.resources.base import LABEL_NAME
from kubetrade.validation.semantic import (
    collector_problems,
    goal_problems,
    riskpolicy_problems,
    short,
    strategy_problems,
)

MAX_PROBLEMS = 10
"""At most this many problems are reported per object (a 10,000-item list has one line, not 10,000)."""

_SEMANTIC: dict[str, Callable[[Any], list[str]]] = {
    "Strategy": strategy_problems,
    "Goal": goal_problems,
    "RiskPolicy": riskpolicy_problems,
    "Collector": collector_problems,
}
PLURAL_KIND = {model.plural: kind for kind, model in BY_KIND.items()}

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(rf"^{LABEL_NAME}$")
_ANNOTATIONS_MAX = 256 * 1024


def _errors(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for err in exc.errors(include_input=False, include_url=False)[:MAX_PROBLEMS]:
        where = f"{prefix}{'.'.join(str(p) for p in err['loc'])}".rstrip(".")
        out.append(f"{where}: {err['msg'][:300]}" if where else err["msg"][:300])
    if exc.error_count() > MAX_PROBLEMS:
        out.append(f"... and {exc.error_count() - MAX_PROBLEMS} more")
    return out


def parse_spec(kind: str, spec: Mapping[str, Any] | None) -> tuple[BaseModel | None, list[str]]:
    """(the typed spec or None, everything wrong with it): schema errors and semantic problems alike."""
    model = BY_KIND[kind].spec_model
    try:
        parsed = model.model_validate(dict(spec or {}))
    except ValidationError as exc:
        return None, _errors(exc, "spec.")
    return parsed, _SEMANTIC[kind](parsed)[:MAX_PROBLEMS]


def spec_problems(kind: str, spec: Mapping[str, Any] | None) -> list[str]:
    """Why a spec of this kind is refused (empty: it is fine)."""
    return parse_spec(kind, spec)[1]


def _qualified_name_problems(field: str, key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        problems.append(f"{field} {short(key)}: the prefix must be a DNS subdomain (example.com/)")
    if not _LABEL_NAME.match(name):
        problems.append(
            f"{field} {short(key)}: a name of at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends"
        )
    return problems


def metadata_problems(meta: Any) -> list[str]:
    """What the API server refuses in an object's metadata (names, labels, annotations)."""
    if not isinstance(meta, Mapping):
        return ["metadata: must be an object"]
    problems = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        if not meta.get("generateName"):
            problems.append("metadata.name: required")
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        problems.append(
            f"metadata.name {short(name)}: a DNS subdomain (lower-case letters, digits, '-' and '.', "
            "alphanumeric at both ends, at most 253 characters)"
        )
    namespace = meta.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or len(namespace) > 63
                                  or not _DNS_LABEL.match(namespace)):
        problems.append(f"metadata.namespace {short(namespace)}: a DNS label (at most 63 characters)")
    labels = meta.get("labels") or {}
    if not isinstance(labels, Mapping):
        problems.append("metadata.labels: must be a map of strings")
    else:
        for key, value in labels.items():
            problems += _qualified_name_problems("metadata.labels key", str(key))
            if not isinstance(value, str) or (value and not _LABEL_NAME.match(value)):
                problems.append(
                    f"metadata.labels[{short(key, 40)}] {short(value)}: at most 63 characters of [A-Za-z0-9-_.], "
                    "alphanumeric at both ends"
                )
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        problems.append("metadata.annotations: must be a map of strings")
    else:
        for key, value in annotations.items():
            problems += _qualified_name_problems("metadata.annotations key", str(key))
            if not isinstance(value, str):
                problems.append(f"metadata.annotations[{short(key, 40)}]: must be a string")
        if sum(len(str(k)) + len(str(v)) for k, v in annotations.items()) > _ANNOTATIONS_MAX:
            problems.append("metadata.annotations: larger than 256 KiB in total")
    return problems[:MAX_PROBLEMS]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):  # YAML's unquoted dates: strings once kubectl sends them
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be sent to the API server")


def manifest_problems(doc: Any, expect_kind: str | None = None) -> list[str]:
    """Everything the API server, its webhook or the operator would refuse in this manifest."""
    if not isinstance(doc, Mapping):
        return ["not an object"]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or api_version.split("/")[0] != GROUP:
        return [f"apiVersion {short(api_version)}: not a {GROUP} resource"]
    if api_version != API_VERSION:
        return [f"apiVersion {short(api_version)}: this version serves {API_VERSION} only"]
    if kind not in BY_KIND or (expect_kind is not None and kind != expect_kind):
        return [f"kind {short(kind)}: not one of {', '.join(BY_KIND) if expect_kind is None else expect_kind}"]
    problems = metadata_problems(doc.get("metadata"))
    try:
        # Strict JSON types, as the API server checks them: a string is no integer or boolean.
        text = json.dumps({k: v for k, v in doc.items() if k not in ("metadata", "status")},
                          default=_json_default, allow_nan=False)
        BY_KIND[kind].model_validate_json(text, strict=True)
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            return problems + _errors(exc, "")
        return [*problems, f"{exc}"[:300]]
    return problems + spec_problems(kind, doc.get("spec"))
