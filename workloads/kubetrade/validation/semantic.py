"""Checks a schema cannot express: does the genome compile, is the cron valid, does the
exchange exist, does the symbol fit the market, does a path stay where it points.

The admission webhook, every reconcile, the API and ``kubetrade validate`` all call these
(through :mod:`kubetrade.validation.manifests`), so a resource is judged the same way
wherever it enters.  Each function returns a list of problems, each naming the field,
empty when all is well; a value a client sent is quoted short, never whole.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from kubetrade.resources.collector import CollectorSpec
from kubetrade.resources.genome import Genome, Operand, RuleSet
from kubetrade.resources.goal import GoalSpec
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.resources.strategy import StrategySpec


def short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: problems quote what was sent, never all of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
        },
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
)
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_problems(expr: str) -> list[str]:
    """Problems with a standard five-field cron expression (as Kubernetes CronJobs accept)."""
    expr = expr.strip()
    if expr in _MACROS:
        return []
    if not expr.isascii():
        return ["only ASCII digits, names and * ? , / - are allowed"]
    if expr.upper().startswith(("TZ=", "CRON_TZ=")):
        return ["time zones go in timeZone, not in the schedule"]
    fields = expr.split()
    if len(fields) != 5:
        return [f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"]
    problems = []
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            problem = _cron_part(part.lower(), low, high, names)
            if problem:
                problems.append(f"{name} {short(text, 30)}: {problem}")
    return problems


_ASCII_NUMBER = re.compile(r"[0-9]{1,4}")
"""ASCII digits only: ``str.isdigit()`` also takes Arabic-Indic, full-width and superscript digits,
which Python's ``int`` reads but a CronJob refuses."""


def _cron_value(token: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names[token] if token in names else int(token) if _ASCII_NUMBER.fullmatch(token) else None
    if value is None:
        raise ValueError(f"{short(token, 20)} is not a number")
    if not low <= value <= high:
        raise ValueError(f"{value} outside {low}-{high}")
    return value


def _cron_part(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    base, _, step = part.partition("/")
    try:
        if step and (not _ASCII_NUMBER.fullmatch(step) or int(step) == 0):
            return f"step {short(step, 20)} must be a positive number"
        if base in ("*", "?"):
            return None
        start, dash, end = base.partition("-")
        first = _cron_value(start, low, high, names)
        if dash:
            last = _cron_value(end, low, high, names)
            if last < first:
                return f"range {base} runs backwards"
    except ValueError as exc:
        return str(exc)
    return None


@functools.cache
def _ccxt_exchanges() -> frozenset[str]:
    """The exchange ids ccxt has: one module per exchange in the ccxt package.

    Listed on disk rather than via ``import ccxt``, which loads every exchange class
    (some 60 MB) into the operator and the webhook just to read a list of names.  Read
    once per process: finding the package walks ``sys.path`` with a stat per entry, which
    the webhook and every reconcile would otherwise pay on each call.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ccxt is not installed")
    return frozenset(p.stem for loc in spec.submodule_search_locations for p in Path(loc).glob("*.py"))


def _known_exchange(exchange: str) -> bool:
    return exchange in _ccxt_exchanges()


_PERP = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$")


def exchange_problems(field: str, exchange: str | None) -> list[str]:
    if exchange is None or _known_exchange(exchange):
        return []
    return [f"{field}: unknown exchange {short(exchange)} (not a ccxt exchange id)"]


def symbol_problems(field: str, symbols: Iterable[str], market: str) -> list[str]:
    problems = []
    for i, symbol in enumerate(symbols):
        perpetual = bool(_PERP.match(symbol))
        if market == "perpetual" and not perpetual:
            problems.append(f"{field}[{i}]: {symbol!r} is a spot symbol; perpetuals are BASE/QUOTE:SETTLE")
        if market == "spot" and perpetual:
            problems.append(f"{field}[{i}]: {symbol!r} is a perpetual symbol but market is spot")
    return problems


def _climbs(path: str) -> bool:
    return ".." in PurePosixPath(path).parts


def model_uri_problems(field: str, uri: str) -> list[str]:
    """The URIs the runner loads (:func:`kubetrade.prediction.model.resolve`), and no others.

    ``bundled://NAME`` must name a model shipped in the image; ``registry://NAME`` one in the model
    store (found with its sha256, checked by the runner); ``file:///PATH`` is an
    absolute path; a plain path has no scheme.  None of them may climb with ``..``: a model
    is read from where the manifest says, not from wherever ``..`` leads.
    """
    if uri.startswith("registry://"):
        name = uri.removeprefix("registry://")
        if not name or not (name[0].isascii() and name[0].isalnum()) or any(
                not (c.isascii() and (c.isalnum() or c in "._-")) for c in name):
            return [f"{field}: registry://NAME takes a model store name (letters, digits, . _ -), got {short(uri)}"]
        return []
    if uri.startswith("bundled://"):
        name = uri.removeprefix("bundled://")
        if "/" in name or name in ("", ".", "..") or not (_models_dir() / name).is_file():
            known = ", ".join(sorted(p.name for p in _models_dir().glob("*.onnx")))
            return [f"{field}: no bundled model {short(name)} (bundled: {known})"]
        return []
    if uri.startswith("file://"):
        path = uri.removeprefix("file://")
        if not path.startswith("/"):
            return [f"{field}: file:// needs an absolute path (file:///models/x.onnx), got {short(uri)}"]
    elif ":" in uri:
        return [f"{field}: {short(uri)}: only bundled://NAME, registry://NAME, file:///PATH or a plain path are loaded"]
    else:
        path = uri
    if "\x00" in path:
        return [f"{field}: the path contains a NUL character"]
    if _climbs(path):
        return [f"{field}: {short(uri)} climbs out of its folder with '..'"]
    return []


@functools.cache
def _models_dir() -> Path:
    """Where bundled models are (the package folder; found without importing the runtime that loads them)."""
    import importlib.util

    spec = importlib.util.find_spec("kubetrade")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "prediction" / "models"


def replay_path_problems(field: str, path: str) -> list[str]:
    if path == "bundled":
        return []
    if "\x00" in path:
        return [f"{field}: the path contains a NUL character"]
    if _climbs(path):
        return [f"{field}: {short(path)} climbs out of its folder with '..'"]
    return []


@functools.cache
def _time_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def time_zone_problems(field: str, zone: str) -> list[str]:
    if zone in _time_zones():
        return []
    return [f"{field}: unknown time zone {short(zone)} (an IANA name such as Etc/UTC or Europe/Berlin)"]


def strategy_problems(spec: StrategySpec) -> list[str]:
    """Everything wrong with a Strategy spec beyond its schema."""
    from kubetrade.engine.compile import GenomeError, compile_genomes
    from kubetrade.engine.templates import expand

    problems = exchange_problems("spec.exchange", spec.exchange)
    problems += symbol_problems("spec.symbols", spec.symbols, spec.market)
    if spec.mode == "live" and spec.credentials_secret_ref is None:
        problems.append("spec.credentialsSecretRef: live mode needs exchange credentials in a Secret")
    for field, ref in (("spec.model", spec.model), ("spec.policy", spec.policy)):
        if ref is not None:
            problems += model_uri_problems(f"{field}.uri", ref.uri)
            if ref.uri.startswith("registry://") and ref.sha256 is None:
                problems.append(f"{field}.sha256: a registry:// model is found by its name and digest: set sha256")
    genome = spec.genome
    if spec.template is not None:
        try:
            genome = expand(spec.template, spec.parameters)
        except ValueError as exc:
            problems.append(f"spec.template: {exc}")
    if genome is not None:
        if _uses(genome, "prediction") or _uses(genome, "policy"):
            if _uses(genome, "prediction") and spec.model is None:
                problems.append("spec.genome uses the prediction indicator but spec.model is not set")
            if _uses(genome, "policy") and spec.policy is None:
                problems.append("spec.genome uses the policy indicator but spec.policy is not set")
            # the model is loaded where it is mounted (the runner, which says so if it cannot read it);
            # every other rule is checked here, the prediction operands standing in as a plain series
            genome = _without_prediction(genome)
        try:
            compile_genomes([genome], market=spec.market, names=["spec.genome"])
        except (GenomeError, ValueError) as exc:
            problems.append(f"genome does not compile: {exc}")
    return problems


def _rule_sets(genome: Genome) -> list[RuleSet]:
    return [rs for rs in (genome.entry, genome.exit, genome.short_entry, genome.short_exit) if rs is not None]


def _uses(genome: Genome, indicator: str) -> bool:
    return any(op.indicator == indicator for rs in _rule_sets(genome) for r in rs.rules for op in (r.left, r.right))


def _without_prediction(genome: Genome) -> Genome:
    close = Operand(price="close")

    def swap(op: Operand) -> Operand:
        return close if op.indicator in ("prediction", "policy") else op

    def rules(rs: RuleSet | None) -> RuleSet | None:
        if rs is None:
            return None
        return rs.model_copy(update={"rules": [r.model_copy(update={"left": swap(r.left), "right": swap(r.right)})
                                               for r in rs.rules]})

    return genome.model_copy(update={"entry": rules(genome.entry), "exit": rules(genome.exit),
                                     "short_entry": rules(genome.short_entry), "short_exit": rules(genome.short_exit)})


def goal_problems(spec: GoalSpec) -> list[str]:
    evo = spec.evolution
    problems = [f"spec.evolution.schedule: {p}" for p in cron_problems(evo.schedule)]
    problems += exchange_problems("spec.evolution.exchange", evo.exchange)
    problems += symbol_problems("spec.evolution.symbols", evo.symbols or [], evo.market)
    problems += time_zone_problems("spec.evolution.timeZone", evo.time_zone)
    return problems


def collector_problems(spec: CollectorSpec) -> list[str]:
    problems: list[str] = []
    if spec.source == "exchange":
        problems += exchange_problems("spec.provider", spec.provider)
    problems += exchange_problems("spec.exchange", spec.exchange)
    if spec.replay is not None:
        problems += replay_path_problems("spec.replay.path", spec.replay.path)
    return problems


def riskpolicy_problems(spec: RiskPolicySpec) -> list[str]:
    """A RiskPolicy's cross-field rules (CVaR >= VaR, risk per trade <= position) are in its model
    and its CRD's CEL rules; nothing beyond them yet."""
    return []
