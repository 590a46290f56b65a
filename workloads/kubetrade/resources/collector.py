"""The Collector resource: one source of market or alternative data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from kubetrade.resources.base import (
    OPERATOR,
    SET,
    Condition,
    Distinct,
    ExchangeId,
    Model,
    Resource,
    SecretReference,
    Symbol,
    Timeframe,
    cel,
    conditions_field,
)

Source = Literal["exchange", "replay", "onchain", "social", "macro"]
Provider = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]

PROVIDERS: dict[str, tuple[str, ...]] = {
    "onchain": ("moralis", "glassnode"),
    "social": ("twitter", "reddit", "lunarcrush"),
    "macro": ("stooq", "yahoo"),
}
"""Providers of the alternative sources; exchanges are any ccxt id."""


def _one_minute() -> list[Timeframe]:
    return ["1m"]


class ReplaySettings(Model):
    """Play stored candles as if they arrived live."""

    path: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")] = "bundled"
    """Folder of PAIR_QUOTE-TIMEFRAME candle files (.csv.gz, .feather, .parquet or .json; no '..'), or 'bundled'."""
    speed: Annotated[float, Field(gt=0, le=1e7)] = 60.0
    """Playback speed relative to real time (60 = one minute of candles per second)."""
    loop: bool = False
    """Start again from the beginning at the end of the data."""
    start: datetime | None = None
    """Skip candles before this time."""


class CollectorSpec(Model):
    """Where data comes from, which symbols and timeframes, and how often."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.source != 'replay' || has(self.replay)", "source replay needs replay settings"),
                cel(
                    "!(self.source in ['exchange', 'replay']) || (has(self.symbols) && size(self.symbols) > 0)",
                    "exchange and replay sources need at least one symbol",
                ),
            ]
        }
    }

    source: Source
    """exchange (ccxt), replay (stored candles), onchain, social or macro."""
    provider: Provider
    """For exchange: the ccxt id (binance); for onchain: moralis or glassnode; for social: twitter,
    reddit or lunarcrush; for macro: stooq or yahoo; for replay: a label for the data set."""
    exchange: ExchangeId | None = None
    """Exchange the data is attributed to (defaults to provider for exchange sources, binance for replay)."""
    symbols: Annotated[list[Symbol], Field(max_length=500, json_schema_extra=SET), Distinct] = Field(
        default_factory=list
    )
    """Markets to collect, as ccxt unified symbols."""
    timeframes: Annotated[list[Timeframe], Field(min_length=1, max_length=11, json_schema_extra=SET), Distinct] = Field(
        default_factory=_one_minute
    )
    """Candle timeframes to collect."""
    topics: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=128)]], Field(max_length=100)] = (
        Field(default_factory=list)
    )
    """For alternative sources: metrics, accounts, subreddits or tickers to follow (e.g. mvrv, ^VIX)."""
    interval_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60
    """Polling interval where no stream is available."""
    backfill_days: Annotated[int, Field(ge=0, le=3650)] = 7
    """History loaded on start and after an outage."""
    websocket: bool = True
    """Use the exchange's websocket stream where ccxt offers one."""
    replay: ReplaySettings | None = None
    """Replay settings (source replay)."""
    credentials_secret_ref: SecretReference | None = None
    """API key of the provider, by Secret reference; without one a keyed provider reports Disabled."""
    suspend: bool = False
    """Stop collecting; the workload is scaled to zero."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.source == "replay" and self.replay is None:
            raise ValueError("source replay needs replay settings")
        if self.source in ("exchange", "replay") and not self.symbols:
            raise ValueError("exchange and replay sources need at least one symbol")
        allowed = PROVIDERS.get(self.source)
        if allowed is not None and self.provider not in allowed:
            raise ValueError(f"provider {self.provider!r} is not one of {', '.join(allowed)} for source {self.source}")
        return self


class CollectorStatus(Model):
    """What the collector reports."""

    phase: Annotated[Literal["Pending", "Running", "Suspended", "Disabled", "Failed"], OPERATOR] = "Pending"
    """Pending, Running, Suspended, Disabled (no credentials) or Failed."""
    observed_generation: Annotated[int | None, Field(ge=0), OPERATOR] = None
    """The .metadata.generation this status reflects."""
    workload: Annotated[str | None, OPERATOR] = None
    """Name of the collector Deployment."""
    last_sample_time: datetime | None = None
    """Time of the newest sample collected."""
    lag_seconds: float | None = None
    """How far the newest sample is behind now."""
    samples_total: Annotated[int, Field(ge=0)] | None = None
    """Samples published since the collector started."""
    error_count: Annotated[int, Field(ge=0)] | None = None
    """Errors since the collector started."""
    last_error: str | None = None
    """The last error, without secrets."""
    conditions: Annotated[list[Condition], OPERATOR] = conditions_field()
    """Ready, Disabled and Degraded conditions."""


class Collector(Resource):
    """A market or alternative data source, collected by its own workload."""

    kind_name: ClassVar[str] = "Collector"
    plural: ClassVar[str] = "collectors"
    singular: ClassVar[str] = "collector"
    short_names: ClassVar[tuple[str, ...]] = ("col",)
    spec_model: ClassVar[type[Model]] = CollectorSpec
    status_model: ClassVar[type[Model]] = CollectorStatus
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = (
        {"name": "Source", "type": "string", "jsonPath": ".spec.source"},
        {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Lag", "type": "number", "jsonPath": ".status.lagSeconds"},
        {"name": "Errors", "type": "integer", "jsonPath": ".status.errorCount"},
        {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    kind: Literal["Collector"] = "Collector"
    spec: CollectorSpec
    status: CollectorStatus | None = None
