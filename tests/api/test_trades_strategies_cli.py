"""``kubetrade trades`` and ``kubetrade strategies`` against the real API (uvicorn, PostgreSQL) and
straight from the database: the same rows either way, the key from the environment or a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetrade.cli import main
from kubetrade.ledger import allocation, connection, record
from tests.orders.conftest import order


async def _fills(dsn: str) -> None:
    conn = await connection.connect(dsn)
    try:
        await allocation.allocate(conn, "paper", "cli-alpha", 10_000.0)
        await allocation.allocate(conn, "paper", "cli-beta", 10_000.0)
        for i, (strategy, side, price) in enumerate([("cli-alpha", "buy", 50_000.0), ("cli-alpha", "sell", 51_000.0),
                                                     ("cli-beta", "buy", 49_000.0)]):
            coid = f"cli-{i}"
            await record.record_new(conn, order(coid, strategy=strategy, side=side, price=price, qty=0.01))
            fill = {"trade_id": f"t-{coid}", "quantity": 0.01, "price": price, "fee": 0.5, "fee_currency": "USDT",
                    "time": 1_735_000_000_000 + i}
            await record.apply(conn, coid, "filled", [fill])
    finally:
        await conn.close()


@pytest.fixture
async def with_fills(api):
    await _fills(api.dsn)
    return api


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_trades_from_the_api_and_from_the_database_agree(with_fills, capsys, monkeypatch) -> None:
    api = with_fills
    monkeypatch.setenv("KUBETRADE_API_KEY", api.admin)
    via_api = _json(capsys, "trades", "--api-url", api.url, "--strategy", "cli-alpha", "--output", "json")
    via_db = _json(capsys, "trades", "--dsn", api.dsn, "--strategy", "cli-alpha", "--output", "json")
    assert [t["client_order_id"] for t in via_api] == ["cli-1", "cli-0"]  # newest first
    assert [(t["side"], t["price"], t["quantity"]) for t in via_api] == [("sell", 51_000.0, 0.01),
                                                                          ("buy", 50_000.0, 0.01)]
    assert [t["id"] for t in via_api] == [t["id"] for t in via_db]
    assert main(["trades", "--api-url", api.url]) == 0  # the table
    out = capsys.readouterr().out
    assert "cli-alpha" in out and "cli-beta" in out and "realised PnL" in out


def test_the_key_from_a_file(with_fills, capsys, monkeypatch, tmp_path: Path) -> None:
    api = with_fills
    monkeypatch.delenv("KUBETRADE_API_KEY", raising=False)
    key_file = tmp_path / "api-key"
    key_file.write_text(api.admin + "\n")
    rows = _json(capsys, "trades", "--api-url", api.url, "--api-key-file", str(key_file), "--output", "json")
    assert {t["strategy"] for t in rows} >= {"cli-alpha", "cli-beta"}


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("no-key", [], "no API key: set KUBETRADE_API_KEY or --api-key-file"),
    ("bad-key", [], "the API answered 401"),
    ("none", ["--api-url", "http://127.0.0.1:9"], "cannot reach the API at http://127.0.0.1:9"),
    ("none", ["--dsn", "postgresql://nobody@127.0.0.1:9/none"], "database: "),
    ("none", ["--limit", "0"], "--limit must be between 1 and 1000"),
])
def test_refusals_are_one_line(api, capsys, monkeypatch, tmp_path: Path, setup: str, args: list[str],
                               message: str) -> None:
    monkeypatch.chdir(tmp_path)  # no .kubetrade/api-key here
    monkeypatch.delenv("KUBETRADE_API_KEY", raising=False)
    if setup == "bad-key":
        monkeypatch.setenv("KUBETRADE_API_KEY", "kt_nope_nope")
    if setup == "none":
        monkeypatch.setenv("KUBETRADE_API_KEY", api.admin)
    assert main(["trades", "--api-url", api.url, *args]) == 1
    # the CLI's own words, apart from the JSON log lines the in-process API server writes to the same stderr
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("{"))
    assert err.startswith("error: ") and message in err and "\n" not in err, err


STRATEGY = {
    "apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy", "metadata": {"name": "cli-btc-ema"},
    "spec": {"template": "ema-crossover", "parameters": {"fast": 12, "slow": 26}, "symbols": ["BTC/USDT"],
             "timeframe": "5m", "capital": {"amount": 1000, "currency": "USDT"}, "riskPolicyRef": {"name": "default"}},
}


def test_strategies_from_the_api_and_from_the_database(api, capsys, monkeypatch) -> None:
    import copy

    import httpx
    import psycopg
    from psycopg.types.json import Jsonb

    ns = "cli-views"
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as client:
        for name, mode in (("cli-btc-ema", "paper"), ("cli-eth-ema", "paper")):
            body = copy.deepcopy(STRATEGY)
            body["metadata"]["name"] = name
            body["spec"]["mode"] = mode
            assert client.post("/api/v1/strategies", json=body, params={"namespace": ns}).status_code == 201
    status = {"phase": "Paper", "equity": 1012.5, "pnl": 12.5, "sharpe": 1.4, "drawdown": 0.012, "trades": 3,
              "openPositions": 1}
    with psycopg.connect(api.dsn, autocommit=True) as conn:  # what the runner's status report writes
        conn.execute("UPDATE kube_resources SET body = body || jsonb_build_object('status', %s::jsonb) "
                     "WHERE kind = 'strategies' AND namespace = %s AND name = 'cli-btc-ema'", (Jsonb(status), ns))
    monkeypatch.setenv("KUBETRADE_API_KEY", api.admin)
    via_api = _json(capsys, "strategies", "--api-url", api.url, "--namespace", ns, "--output", "json")
    via_db = _json(capsys, "strategies", "--dsn", api.dsn, "--namespace", ns, "--output", "json")
    assert [o["metadata"]["name"] for o in via_api] == [o["metadata"]["name"] for o in via_db] == [
        "cli-btc-ema", "cli-eth-ema"]
    paper = _json(capsys, "strategies", "--api-url", api.url, "--namespace", ns, "--phase", "Paper",
                    "--output", "json")
    assert [o["metadata"]["name"] for o in paper] == ["cli-btc-ema"] and paper[0]["status"]["pnl"] == 12.5
    assert main(["strategies", "--api-url", api.url, "--namespace", ns]) == 0
    out = capsys.readouterr().out
    assert f"{ns}/cli-btc-ema" in out and "Paper" in out and "+12.50" in out and "1.20%" in out
