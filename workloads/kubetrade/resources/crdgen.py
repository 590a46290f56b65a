"""Generate CustomResourceDefinitions from the typed models.

Pydantic emits JSON Schema (draft 2020-12) with ``$ref``s, ``anyOf: [X, null]`` for
optionals and titles everywhere.  Kubernetes wants a *structural* OpenAPI v3 schema:
every node typed, no references, no ``additionalProperties: false`` beside
``properties``, OpenAPI 3.0's boolean ``exclusiveMinimum``.  This module does that
translation and nothing else, so the models stay the one place where a field is defined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubetrade.resources import GROUP, RESOURCES, VERSION, Resource

_DROP = {"title", "$defs"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every $ref and normalise one schema node (recursively)."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node

    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = dict(target)
        merged.update(node)  # the field's own description/default win over the class docstring
        node = merged

    # Optional[X] arrives as anyOf [X, null]: Kubernetes omits a field rather than nulling it.
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {len(variants)} types in a structural schema: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        merged = dict(_resolve(variants[0], defs))
        merged.update(rest)
        node = merged
        if node.get("default", ...) is None:
            del node["default"]

    out: dict[str, Any] = {}
    key_pattern: str | None = None
    key_max: int | None = None
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _resolve(value, defs)
            # `false` (extra=forbid) is implied: the API server prunes and, with strict
            # field validation (kubectl's default), rejects unknown fields.
        elif key == "items":
            out[key] = _resolve(value, defs)
        elif key == "propertyNames":
            key_max = value.get("maxLength")
            key_pattern = key_pattern or value.get("pattern")
        elif key == "patternProperties":
            # Structural schemas have no patternProperties: the values' schema becomes
            # additionalProperties and the key pattern a CEL rule.
            if len(value) != 1:
                raise ValueError(f"cannot express {len(value)} key patterns: {value}")
            (key_pattern, sub), = value.items()
            out["additionalProperties"] = _resolve(sub, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value

    if key_pattern is not None or key_max is not None:
        out.setdefault("x-kubernetes-validations", []).append(_key_rule(key_pattern, key_max))
    if "enum" in out and "type" not in out:
        out["type"] = "string" if all(isinstance(v, str) for v in out["enum"]) else "number"
    if "properties" in out:
        out.setdefault("type", "object")
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "default" in out and isinstance(out["default"], list) and not out["default"]:
        del out["default"]  # an empty list default only adds noise to every object
    # type and description first: the generated YAML is read by people too.
    first = {k: out[k] for k in ("type", "description") if k in out}
    return first | {k: v for k, v in out.items() if k not in first}


def _key_rule(pattern: str | None, max_length: int | None) -> dict[str, str]:
    """A CEL rule checking every key of a map (structural schemas cannot constrain keys)."""
    checks = []
    if pattern is not None:
        if "'" in pattern or "\\" in pattern:
            raise ValueError(f"cannot quote key pattern {pattern!r} in CEL")
        checks.append(f"k.matches('{pattern}')")
    if max_length is not None:
        checks.append(f"size(k) <= {max_length}")
    return {"rule": f"self.all(k, {' && '.join(checks)})", "message": "keys must be valid label keys"}


def structural_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _resolve(raw, defs)  # type: ignore[no-any-return]


def crd(resource: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = structural_schema(resource.spec_model)
    status_schema = structural_schema(resource.status_model)
    status_schema.pop("required", None)
    spec_field = resource.model_fields["spec"]
    required = ["spec"] if spec_field.is_required() else []
    if not required:
        spec_schema["default"] = {}
    root: dict[str, Any] = {
        "type": "object",
        "description": (resource.__doc__ or "").strip().splitlines()[0],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of the object: kubetrade.io/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind of the object: {resource.kind_name}."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if required:
        root["required"] = required
    plural = resource.plural
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubetrade"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind_name,
                "listKind": f"{resource.kind_name}List",
                "plural": plural,
                "singular": resource.singular,
                "shortNames": list(resource.short_names),
                "categories": ["kubetrade"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in resource.printer_columns],
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """A YAML dumper that writes repeated values out instead of as anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


HEADER = "# Generated by `kubetrade crds generate` from kubetrade.resources. Do not edit.\n"


def render(resource: type[Resource]) -> str:
    return HEADER + yaml.dump(crd(resource), Dumper=_Dumper, sort_keys=False, width=100)


def file_name(resource: type[Resource]) -> str:
    return f"{GROUP}_{resource.plural}.yaml"


def generate(out_dir: Path) -> list[Path]:
    """Write one YAML file per kind into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in RESOURCES:
        path = out_dir / file_name(resource)
        path.write_text(render(resource))
        written.append(path)
    return written


def drift(out_dir: Path) -> list[str]:
    """Names of the CRD files that differ from what the models generate (or are missing)."""
    stale = []
    for resource in RESOURCES:
        path = out_dir / file_name(resource)
        if not path.exists() or path.read_text() != render(resource):
            stale.append(path.name)
    expected = {file_name(r) for r in RESOURCES}
    stale += sorted(p.name for p in out_dir.glob("*.yaml") if p.name not in expected)
    return stale
