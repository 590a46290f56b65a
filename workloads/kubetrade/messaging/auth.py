"""Who may say what on NATS: one identity per role, each allowed only its own subjects.

Every kubetrade process connects as its role (``KUBETRADE_NATS_USER`` /
``KUBETRADE_NATS_PASSWORD``, from a Secret of that role alone), and the server allows each
role exactly the subjects below - publish and subscribe alike, JetStream's API included,
so that no role can create a stream that republishes into ``orders.>`` or write a permissive
RiskPolicy into the KV bucket.  Above all: only the risk manager publishes
``orders.<environment>.submit`` (an executor only its own environment's, for the closing
orders of a deleted strategy); runners send signals (``risk.check``) and their status,
collectors market data.  The executor also checks every order's signature
(:mod:`kubetrade.messaging.signing`).

:func:`server_authorization` writes the ``authorization`` block of ``nats-server.conf``;
the chart renders it with passwords as ``$VARIABLES`` the server reads from its
environment (from the Secrets), ``kubetrade up`` with generated ones.  Runners share the
``runner`` identity: a runner can send a signal in another strategy's name, which the risk
manager then judges against that strategy's own limits and ledger.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetrade.messaging.subjects import (
    COLLECTOR_HEALTH_BUCKET,
    GOAL_SIZING_BUCKET,
    RISK_CHECK,
    RISK_CONTROL,
    RISK_POLICY_BUCKET,
    STREAMS,
)

USER_ENV = "KUBETRADE_NATS_USER"
PASSWORD_ENV = "KUBETRADE_NATS_PASSWORD"  # noqa: S105 - the variable's name, not a password
INBOX = "_INBOX.>"


_LOCAL: dict[str, str] = {}
"""role -> password, when one process runs several roles (``kubetrade up``: see :func:`use_local`)."""


def credentials(role: str) -> dict[str, Any]:
    """``user``/``password`` for ``nats.connect`` as ``role``, or nothing (an open server).

    A pod has one identity, from its environment (``KUBETRADE_NATS_USER`` and
    ``KUBETRADE_NATS_PASSWORD``, from its role's Secret); that wins.  A process that runs
    several roles (``kubetrade up`` runs runners, collectors and its control loop in one)
    registers every role's password with :func:`use_local`, and each connection names its role.
    """
    user = os.environ.get(USER_ENV, "")
    if user:
        return {"user": user, "password": os.environ.get(PASSWORD_ENV, "")}
    if role in _LOCAL:
        return {"user": role, "password": _LOCAL[role]}
    return {}


def use_local(passwords: Mapping[str, str]) -> None:
    """Connections in this process use these per-role passwords (``kubetrade up``)."""
    _LOCAL.clear()
    _LOCAL.update(passwords)


def _stream_admin(*streams: str) -> list[str]:
    """Look at, create and converge these streams (``ensure_streams``)."""
    return [f"$JS.API.STREAM.{verb}.{s}" for s in streams for verb in ("INFO", "CREATE", "UPDATE")]


def _stream_read(*streams: str) -> list[str]:
    """Stream info and single-message reads (``get_last_msg``, a KV ``get``)."""
    out = []
    for s in streams:
        out += [f"$JS.API.STREAM.INFO.{s}", f"$JS.API.STREAM.MSG.GET.{s}", f"$JS.API.DIRECT.GET.{s}",
                f"$JS.API.DIRECT.GET.{s}.>"]
    return out


def _consume(*streams: str) -> list[str]:
    """Durable and ordered consumers on these streams: create, look at, pull, ack, flow control."""
    out = []
    for s in streams:
        out += [f"$JS.API.CONSUMER.CREATE.{s}", f"$JS.API.CONSUMER.CREATE.{s}.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.>", f"$JS.API.CONSUMER.INFO.{s}.>",
                f"$JS.API.CONSUMER.DELETE.{s}.>", f"$JS.API.CONSUMER.MSG.NEXT.{s}.>", f"$JS.ACK.{s}.>"]
    return [*out, "$JS.FC.>"]


def _kv_read(bucket: str) -> list[str]:
    return [*_stream_read(f"KV_{bucket}"), *_consume(f"KV_{bucket}")]


def _kv_write(bucket: str) -> list[str]:
    return [*_kv_read(bucket), *_stream_admin(f"KV_{bucket}"), f"$KV.{bucket}.>"]


@dataclass(frozen=True)
class Role:
    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    why: str
    responds: bool = False
    """May answer requests (``allow_responses``): publish to the reply subject of a message it received."""
    publish_deny: tuple[str, ...] = field(default=())


_ORDER_STREAMS = ("ORDERS", "EVENTS", "DLQ")
_MARKET_STREAMS = ("MARKET_DATA", "MARKET_TICKS", "ALT_DATA")


def roles(local: bool = False) -> dict[str, Role]:
    """Every role's permissions.  ``local``: ``kubetrade up``, where the API writes the risk policies
    (in a cluster the RiskPolicy resource is the source of truth) and the control loop (the
    operator's role) asks the risk manager for the figures of its summary."""
    base = ("$JS.API.INFO",)
    api_policy = _kv_write(RISK_POLICY_BUCKET) if local else _kv_read(RISK_POLICY_BUCKET)
    out = [
        Role(
            "operator",
            publish=(*base, "control.orders.*.close-strategy", "dlq.>", *_stream_admin(*STREAMS),
                     *_kv_write(RISK_POLICY_BUCKET), *_kv_write(GOAL_SIZING_BUCKET),
                     # kubetrade up's stop drains ORDERS: it reads the executors' consumers (no write)
                     *((RISK_CONTROL, "$JS.API.CONSUMER.INFO.ORDERS.>") if local else ())),
            subscribe=("status.>", INBOX),
            why="streams and KV buckets, policies and sizing published, status from workloads, closing a deleted "
                "strategy's positions",
        ),
        Role(
            "api",
            publish=(*base, RISK_CHECK, RISK_CONTROL, "orders.*.cancel", "control.collector.>", "events.alerts.>",
                     "dlq.>", *api_policy, *_kv_read(COLLECTOR_HEALTH_BUCKET), "$JS.API.STREAM.NAMES",
                     *_consume("EVENTS")),
            subscribe=(INBOX, "status.>", "md.*.*.ticker", "md.*.*.candle.*", "events.orders.>", "events.alerts.>",
                       "events.strategy.*.rejected", f"$KV.{COLLECTOR_HEALTH_BUCKET}.>"),
            why="orders go to the risk manager like any signal; cancels, collector control, alerts, reads; the "
                "console's live feed (status, order events, alerts, refusals, collector health)",
        ),
        Role(
            "risk-manager",
            publish=(*base, "orders.*.submit", "events.strategy.*.rejected", "status.riskpolicy.>", "dlq.>",
                     *_stream_admin(*_ORDER_STREAMS),
                     *_kv_read(RISK_POLICY_BUCKET), *_stream_admin(f"KV_{RISK_POLICY_BUCKET}")),
            subscribe=(INBOX, "md.>", "events.exchange-errors.>", RISK_CHECK, RISK_CONTROL),
            responds=True,
            why="the only one that submits orders: it decides on every signal and places the stops",
        ),
        Role(
            "runner",
            publish=(*base, RISK_CHECK, "status.strategy.>", *_kv_read(GOAL_SIZING_BUCKET)),
            subscribe=(INBOX, "md.*.*.candle.*", "alt.>", "events.orders.*.>"),
            why="signals to the risk manager, its status; candles, alternative data and its orders' events",
        ),
        Role(
            "goal-manager",
            publish=(*base, "status.goal.>", *_kv_write(GOAL_SIZING_BUCKET)),
            subscribe=(INBOX,),
            why="each Goal's figures, reported as its status, and its sizing multiplier where runners read it "
                "(it reads Goals and Strategies from Kubernetes)",
        ),
        Role(
            "collector",
            publish=(*base, "md.>", "alt.>", "status.collector.>", "dlq.>", *_stream_admin(*_MARKET_STREAMS, "DLQ"),
                     *_stream_read("MARKET_DATA"), *_consume("MARKET_DATA"), *_kv_write(COLLECTOR_HEALTH_BUCKET)),
            subscribe=(INBOX, "control.collector.>"),
            why="market and alternative data only (and its candle sink's consumer and dead letters), its health",
        ),
    ]
    for env in ("paper", "live"):
        out.append(Role(
            f"executor-{env}",
            publish=(*base, f"orders.{env}.submit", f"events.orders.{env}.>", f"events.exchange-errors.{env}",
                     "dlq.>", *_stream_admin(*_ORDER_STREAMS), *_consume("ORDERS")),
            subscribe=(INBOX, "md.>", f"control.orders.{env}.close-strategy"),
            responds=True,
            why=f"executes {env} orders (and submits the closing orders of a deleted strategy), reports their events",
        ))
    return {r.name: r for r in out}


ROLES = tuple(roles())
"""The role names: operator, api, risk-manager, runner, goal-manager, collector, executor-paper, executor-live."""


def _quoted(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in dict.fromkeys(items)) + "]"


def server_authorization(passwords: Mapping[str, str], local: bool = False) -> str:
    """The ``authorization { users = [...] }`` block of a nats-server configuration.

    ``passwords``: role -> password, written as given; pass ``"$NATS_PASSWORD_RISK_MANAGER"``-style
    references (unquoted variables nats-server reads from its environment) to keep the secrets out
    of the file.  Roles without a password get no user: nobody connects as them.
    """
    lines = ["authorization {", "  users = ["]
    for name, role in roles(local).items():
        if name not in passwords:
            continue
        password = passwords[name]
        pw = password if password.startswith("$") else '"' + password.replace('"', '\\"') + '"'
        perms = [f"publish: {{allow: {_quoted(role.publish)}"]
        if role.publish_deny:
            perms[-1] += f", deny: {_quoted(role.publish_deny)}"
        perms[-1] += "}"
        perms.append(f"subscribe: {{allow: {_quoted(role.subscribe)}}}")
        if role.responds:
            perms.append("allow_responses: true")
        lines.append(f'    {{user: "{name}", password: {pw}, permissions: {{{", ".join(perms)}}}}}')
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def password_variable(role: str) -> str:
    """The environment variable nats-server reads a role's password from (``NATS_PASSWORD_RISK_MANAGER``)."""
    return "NATS_PASSWORD_" + role.upper().replace("-", "_")


def local_credentials(passwords: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """role -> the environment a local process of that role connects with (``kubetrade up``)."""
    return {role: {USER_ENV: role, PASSWORD_ENV: pw} for role, pw in passwords.items()}


def generate_passwords() -> dict[str, str]:
    """A fresh random password per role (``kubetrade up``, the chart's secrets Job)."""
    import secrets

    return {role: secrets.token_urlsafe(24) for role in ROLES}
