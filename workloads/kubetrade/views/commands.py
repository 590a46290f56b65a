"""``kubetrade trades`` and ``kubetrade strategies``: what the platform is doing, from the API or the database.

By default they ask the API (``--api-url``, ``$KUBETRADE_API_URL``, else http://127.0.0.1:8000,
where ``kubetrade up`` serves it) with the key in ``$KUBETRADE_API_KEY`` or the file
``--api-key-file`` (default ``.kubetrade/api-key``, the key ``kubetrade up`` writes; a key is
never taken from the command line, where other users' ``ps`` would see it).  With ``--dsn``
they read PostgreSQL directly (the same tables the API reads).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_KEY_FILE = Path(".kubetrade/api-key")


class SourceError(RuntimeError):
    """The API or database could not answer; the message says which and why, in one line."""


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-url", help=f"the kubetrade API (default $KUBETRADE_API_URL, else {DEFAULT_API})")
    p.add_argument("--api-key-file", type=Path,
                   help=f"file holding the API key (default $KUBETRADE_API_KEY, else {DEFAULT_KEY_FILE})")
    p.add_argument("--dsn", help="read PostgreSQL directly instead of the API")
    p.add_argument("--output", choices=("table", "json"), default="table", help="a table (default) or JSON")


def register(sub: Any) -> None:
    t = sub.add_parser("trades", help="list recent fills (trades) from the API or the database")
    _source_args(t)
    t.add_argument("--environment", choices=("paper", "live"), help="only this environment")
    t.add_argument("--strategy", help="only this strategy")
    t.add_argument("--symbol", help="only this symbol, e.g. BTC/USDT")
    t.add_argument("--limit", type=int, default=50, help="newest N fills (default 50, at most 1000)")
    t.set_defaults(func=_trades)

    st = sub.add_parser("strategies", help="list strategies with their mode, phase and performance")
    _source_args(st)
    st.add_argument("--namespace", help="namespace (default: the API's; with --dsn every namespace)")
    st.add_argument("--mode", choices=("paper", "live"), help="only paper or only live strategies")
    st.add_argument("--phase", help="only strategies in this phase: Pending, Paper, Live, Paused, Retired, Failed")
    st.set_defaults(func=_strategies)


# --- where the rows come from ---------------------------------------------------------------


def api_key(args: argparse.Namespace) -> str:
    from kubetrade import settings

    env = settings.current()
    if env.api_key is not None and not args.api_key_file:
        return env.api_key.get_secret_value()
    path: Path = args.api_key_file or DEFAULT_KEY_FILE
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise SourceError(f"no API key: set KUBETRADE_API_KEY or --api-key-file (cannot read {path}: "
                          f"{exc.strerror})") from exc
    if not key:
        raise SourceError(f"no API key: {path} is empty")
    return key


def api_get(args: argparse.Namespace, path: str, params: dict[str, Any]) -> Any:
    import httpx

    from kubetrade import settings

    base = (args.api_url or settings.current().api_url or DEFAULT_API).rstrip("/")
    headers = {"X-API-Key": api_key(args)}
    try:
        r = httpx.get(f"{base}{path}", params={k: v for k, v in params.items() if v is not None}, headers=headers,
                      timeout=30)
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot reach the API at {base}: {type(exc).__name__}: {exc}; is it running "
                          "(kubetrade up)? or read the database with --dsn") from exc
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise SourceError(f"the API answered {r.status_code} for {path}: {str(detail)[:300]}")
    return r.json()


def db_rows(dsn: str, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    try:
        with psycopg.connect(dsn, row_factory=dict_row, connect_timeout=10) as conn:
            return list(conn.execute(sql, params).fetchall())
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"database: {first}") from exc


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return value.replace("T", " ")[:19]
    return "-" if value is None else str(value)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


# --- trades --------------------------------------------------------------------------------


def db_fills(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The fills ``GET /api/v1/trades`` lists, by the ledger's own query (``kubetrade.ledger.queries``)."""
    import asyncio

    import psycopg

    from kubetrade.ledger import queries

    async def read() -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(args.dsn, connect_timeout=10) as conn:
            return list(await queries.list_fills(conn, args.environment, args.strategy, args.symbol, args.limit))

    try:
        return asyncio.run(read())
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"database: {first}") from exc


def _trades(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        return _fail(ValueError("--limit must be between 1 and 1000"))
    try:
        if args.dsn:
            rows = db_fills(args)
        else:
            rows = api_get(args, "/api/v1/trades", {"environment": args.environment, "strategy": args.strategy,
                                                    "symbol": args.symbol, "limit": args.limit})
    except SourceError as exc:
        return _fail(exc)
    if args.output == "json":
        print(json.dumps([_jsonable(r) for r in rows], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} most recent trades" + (f" of {args.strategy}" if args.strategy else ""))
    for col in ("time (UTC)", "environment", "strategy", "symbol", "side", "quantity", "price", "fee",
                "realised PnL", "order"):
        table.add_column(col, justify="left" if col in ("strategy", "symbol", "order") else "right")
    total_pnl = 0.0
    for r in rows:
        pnl = float(r.get("realised_pnl") or 0.0)
        total_pnl += pnl
        table.add_row(_when(r.get("time")), r.get("environment", ""), r.get("strategy", ""), r.get("symbol", ""),
                      r.get("side", ""), f"{float(r['quantity']):.8g}", f"{float(r['price']):,.4f}",
                      f"{float(r.get('fee') or 0):.6g} {r.get('fee_currency') or ''}".strip(),
                      f"{pnl:+,.2f}", r.get("client_order_id", ""))
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    if rows:
        console.print(f"realised PnL of these trades: {total_pnl:+,.2f}", highlight=False)
    return 0


# --- strategies -----------------------------------------------------------------------------


STRATEGIES_SQL = ("SELECT namespace, body FROM kube_resources WHERE kind = 'strategies' "
                  "AND (%s::text IS NULL OR namespace = %s) ORDER BY namespace, name")
"""The local stack's store of Strategy resources (on a cluster they live in the API server: use the API)."""


def _all_strategies(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.dsn:
        rows = db_rows(args.dsn, STRATEGIES_SQL, (args.namespace, args.namespace))
        out = []
        for r in rows:
            body = dict(r["body"])
            body.setdefault("metadata", {}).setdefault("namespace", r["namespace"])
            out.append(body)
        return out
    items: list[dict[str, Any]] = []
    after = None
    while True:
        page = api_get(args, "/api/v1/strategies", {"namespace": args.namespace, "mode": args.mode,
                                                    "phase": args.phase, "limit": 500, "after": after})
        items += page.get("items", [])
        after = page.get("next")
        if not after:
            return items


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(float(value), fmt)


def _strategies(args: argparse.Namespace) -> int:
    try:
        items = _all_strategies(args)
    except SourceError as exc:
        return _fail(exc)
    chosen = [o for o in items if (not args.mode or (o.get("spec") or {}).get("mode", "paper") == args.mode)
              and (not args.phase or (o.get("status") or {}).get("phase", "Pending") == args.phase)]
    if args.output == "json":
        print(json.dumps(chosen, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(chosen)} strategies")
    for col in ("namespace/name", "mode", "phase", "symbols", "equity", "PnL", "Sharpe", "drawdown", "trades",
                "open"):
        table.add_column(col, justify="left" if col in ("namespace/name", "mode", "phase", "symbols") else "right")
    for o in chosen:
        meta, spec, status = o.get("metadata") or {}, o.get("spec") or {}, o.get("status") or {}
        table.add_row(f"{meta.get('namespace', '')}/{meta.get('name', '')}", spec.get("mode", "paper"),
                      status.get("phase", "Pending"), ", ".join(spec.get("symbols", [])),
                      _num(status.get("equity"), ",.2f"), _num(status.get("pnl"), "+,.2f"),
                      _num(status.get("sharpe"), ".2f"), _num(status.get("drawdown"), ".2%"),
                      "-" if status.get("trades") is None else str(status["trades"]),
                      "-" if status.get("openPositions") is None else str(status["openPositions"]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0
