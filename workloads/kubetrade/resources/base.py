"""Building blocks shared by every custom-resource model.

The models in this package are the single source of truth for the CRDs under ``crds/``:
field names, types, bounds, defaults and descriptions all come from here, and
:mod:`kubetrade.resources.crdgen` turns them into structural OpenAPI v3 schemas.
Kubernetes spells fields in camelCase, Python in snake_case; the alias generator
bridges the two so that both ``Model(max_position_pct=...)`` and the YAML
``maxPositionPct`` work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "kubetrade.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Model(BaseModel):
    """Base for every spec/status fragment: camelCase on the wire, unknown fields refused.

    NaN and infinities are refused in every float field: JSON has no way to write them,
    Kubernetes stores none, and a quantity of Infinity passes ``gt=0``.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def defaulted(factory: Any) -> Any:
    """A nested object that defaults to its own defaults, on the API server too.

    Pydantic does not write ``default_factory`` into the JSON schema; ``default: {}``
    makes the API server create the object and then fill in its fields' defaults.
    """
    return Field(default_factory=factory, json_schema_extra={"default": {}})


def cel(rule: str, message: str) -> dict[str, Any]:
    """A CEL validation rule the API server evaluates (``x-kubernetes-validations``)."""
    return {"rule": rule, "message": message}


# --- common field types ----------------------------------------------------------------

DNS1123Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]
"""A Kubernetes object name (RFC 1123 subdomain)."""

Symbol = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}(:[A-Z0-9]{2,15})?$", max_length=40),
]
"""A ccxt unified market symbol: ``BASE/QUOTE`` for spot, ``BASE/QUOTE:SETTLE`` for perpetuals."""

ExchangeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,31}$")]
"""A ccxt exchange id, e.g. ``binance``, ``binanceusdm``, ``kraken``."""

LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LabelKey = Annotated[
    str,
    StringConstraints(pattern=rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{LABEL_NAME}$", max_length=317),
]
"""A label or annotation key: an optional DNS-subdomain prefix and ``/``, then a name of at most 63 characters."""

LabelValue = Annotated[str, StringConstraints(pattern=rf"^({LABEL_NAME})?$", max_length=63)]
"""A label value: empty, or at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends."""


def _distinct(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate value {item!r}")
        seen.add(item)
    return items


Distinct = AfterValidator(_distinct)
"""A list whose items must differ; put ``json_schema_extra=SET`` on its Field so the API server refuses
duplicates too."""

SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}


Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFraction = Annotated[float, Field(gt=0.0, le=1.0)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,15}$")]


class LocalObjectReference(Model):
    """A reference to another object in the same namespace, by name."""

    name: DNS1123Name
    """Name of the referenced object."""


class SecretReference(Model):
    """Exchange or provider credentials held in a Kubernetes Secret of this namespace.

    Only the reference lives in the custom resource; the values never do.
    """

    name: DNS1123Name
    """Name of the Secret."""
    api_key_key: str = "apiKey"
    """Key in the Secret that holds the API key."""
    secret_key: str = "secret"  # noqa: S105 - the name of a key in the Secret, not a secret
    """Key in the Secret that holds the API secret (HMAC key), where the provider needs one."""


class Money(Model):
    """An amount of a currency."""

    amount: Annotated[float, Field(gt=0, le=1e12)]
    """Amount, strictly positive."""
    currency: Currency = "USDT"
    """Currency code, e.g. USDT."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """One observation of the object's state, shaped like ``metav1.Condition``."""

    type: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)]
    """Condition type, e.g. Ready, Progressing, Degraded."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)]
    """One CamelCase word saying why the condition is in this state."""
    message: Annotated[str, StringConstraints(max_length=32768)] = ""
    """Human-readable detail."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The .metadata.generation the condition was computed from."""


class Owner:
    """Who writes a status field.  A field marked :data:`OPERATOR` (``Annotated[T, OPERATOR]``) is
    the operator's own (its phase, conditions, children); the status feed never takes it from a
    workload's report.  Unmarked fields are what the workloads report."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Owner({self.name!r})"


OPERATOR = Owner("operator")


def operator_owned(model: type[BaseModel]) -> frozenset[str]:
    """The wire names (camelCase) of the fields of ``model`` the operator owns."""
    return frozenset(f.alias or to_camel(name) for name, f in model.model_fields.items() if OPERATOR in f.metadata)


def conditions_field() -> Any:
    """A status's conditions: a list keyed by ``type`` (server-side apply merges it per condition)."""
    return Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Resource(Model):
    """A whole custom resource: apiVersion, kind, metadata, spec, status."""

    kind_name: ClassVar[str]
    plural: ClassVar[str]
    singular: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = ()
    spec_model: ClassVar[type[Model]]
    status_model: ClassVar[type[Model]]

    api_version: Literal["kubetrade.io/v1alpha1"] = Field(default="kubetrade.io/v1alpha1", alias="apiVersion")
    kind: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Self:
        """Validate a dict as read from the API server or a YAML file."""
        return cls.model_validate(obj)
