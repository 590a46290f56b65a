"""The typed models: the single source of truth for the CRDs, and their own validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from kubetrade.resources import BY_KIND, RESOURCES, RiskPolicy, Strategy, crdgen

REPO = Path(__file__).resolve().parents[2]


def _schemas(node: dict, path: str = "$"):
    """Every schema position in a schema: the node, its properties, items and map values."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _schemas(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _schemas(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schemas(node["additionalProperties"], f"{path}{{}}")


def test_crds_match_the_models() -> None:
    stale = crdgen.drift(REPO / "crds")
    assert not stale, f"crds/ drifted from the models: {stale}; run `kubetrade crds generate`"


def test_drift_is_detected(tmp_path: Path) -> None:
    crdgen.generate(tmp_path)
    assert crdgen.drift(tmp_path) == []
    target = tmp_path / crdgen.file_name(Strategy)
    target.write_text(target.read_text().replace("maxItems: 50", "maxItems: 51"))
    (tmp_path / "kubetrade.io_strays.yaml").write_text("{}")
    assert crdgen.drift(tmp_path) == [target.name, "kubetrade.io_strays.yaml"]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind_name)
def test_schema_is_structural_and_documented(resource) -> None:
    """Every node is typed, nothing is a $ref/anyOf/null, and every spec field says what it is."""
    schema = crdgen.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _schemas(schema):
        assert "type" in node, f"{path} has no type"
        assert node["type"] != "null", path
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & set(node), path
        if path.startswith("$.spec.") and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{resource.kind_name} {path} has no description"


def test_crd_metadata() -> None:
    for resource in RESOURCES:
        doc = crdgen.crd(resource)
        names = doc["spec"]["names"]
        assert names["categories"] == ["kubetrade"]
        assert names["shortNames"]
        version = doc["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert any(c["name"] == "Age" for c in version["additionalPrinterColumns"])
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        cond = status["conditions"]
        assert cond["x-kubernetes-list-type"] == "map"
        assert set(cond["items"]["properties"]) == {
            "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"
        }
        assert "observedGeneration" in status


def test_seed_risk_defaults() -> None:
    policy = RiskPolicy(metadata={"name": "p"})
    assert policy.spec.strategy_limits.max_position_pct == 0.20
    assert policy.spec.strategy_limits.max_risk_per_trade_pct == 0.05
    assert policy.spec.portfolio_limits.max_drawdown_pct == 0.15
    crd = crdgen.crd(RiskPolicy)
    limits = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert limits["strategyLimits"]["properties"]["maxPositionPct"]["default"] == 0.2
    assert limits["portfolioLimits"]["properties"]["maxDrawdownPct"]["default"] == 0.15


def test_examples_validate_and_round_trip() -> None:
    seen = set()
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            model = BY_KIND[doc["kind"]]
            obj = model.parse(doc)
            again = model.parse(obj.to_k8s())
            assert again == obj, path
            seen.add(doc["kind"])
    assert seen == set(BY_KIND), f"examples/ lacks {set(BY_KIND) - seen}"


def _strategy(**spec_overrides):
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    doc["spec"].update(spec_overrides)
    return doc


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mode": "sideways"}, "Input should be 'paper' or 'live'"),
        ({"capital": {"amount": -5}}, "greater than 0"),
        ({"symbols": ["btcusdt"]}, "String should match pattern"),
        ({"mode": "live"}, "mode live needs credentialsSecretRef"),
        ({"template": "ema-crossover"}, "exactly one of genome or template"),
        ({"leverage": 3}, "Extra inputs are not permitted"),
    ],
)
def test_model_rejects_bad_strategies(overrides, message) -> None:
    with pytest.raises(ValidationError, match=message):
        Strategy.parse(_strategy(**overrides))


def test_operand_needs_exactly_one_source() -> None:
    doc = _strategy()
    doc["spec"]["genome"]["entry"]["rules"][0]["right"] = {"value": 3, "price": "close"}
    with pytest.raises(ValidationError, match="exactly one of indicator, price, alt or value"):
        Strategy.parse(doc)
