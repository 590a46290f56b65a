"""A local server answering like the alternative-data providers (request and response shapes of
their public API documentation), checking each provider's own way of sending the key."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

KEY = "test-key-123"
SECRET = "test-secret-456"
T0 = 1_717_200_000  # 2024-06-01T00:00:00Z
WHALE = "0x28c6c06298d514db089934071355e5743bf21d60"


def _unauthorized(message: str = "Unauthorized") -> JSONResponse:
    return JSONResponse({"message": message}, status_code=401)


def create_app() -> FastAPI:
    app = FastAPI()
    app.state.calls = []

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        app.state.calls.append(request.url.path)
        response: Response = await call_next(request)
        return response

    @app.get("/v1/metrics/{group}/{metric}")
    async def glassnode(group: str, metric: str, a: str, i: str = "24h", s: int | None = None,
                        x_api_key: str | None = Header(None)) -> Response:
        if x_api_key != KEY:
            return _unauthorized()
        rows: list[dict[str, Any]] = [{"t": T0 + h * 3600, "v": 1.5 + h / 100} for h in range(24)]
        rows.append({"t": T0 + 24 * 3600, "v": None})  # not computed yet
        return JSONResponse([r for r in rows if s is None or r["t"] >= s])

    @app.get("/api/v2.2/{address}/erc20/transfers")
    async def moralis(address: str, chain: str = "eth", cursor: str | None = None,
                      x_api_key: str | None = Header(None)) -> Response:
        if x_api_key != KEY:
            return JSONResponse({"message": "Invalid key"}, status_code=401)

        def tx(n: int, second: int, to_whale: bool, value: str) -> dict[str, Any]:
            other = f"0x{n:040x}"
            return {"token_name": "Tether USD", "token_symbol": "USDT", "token_decimals": "6",
                    "contract_address": "0xdac17f958d2ee523a2206206994597c13d831ec7",
                    "transaction_hash": f"0x{n:064x}", "address": "0xdac17f958d2ee523a2206206994597c13d831ec7",
                    "block_timestamp": f"2024-06-01T00:00:{second:02d}.000Z", "block_number": str(20_000_000 + n),
                    "to_address": WHALE if to_whale else other, "from_address": other if to_whale else WHALE,
                    "value": value, "value_decimal": str(int(value) / 1e6), "log_index": n,
                    "possible_spam": n == 4, "verified_contract": True}

        if cursor is None:
            page = [tx(1, 30, True, "5000000000000"), tx(2, 30, False, "1000000000000"), tx(4, 20, True, "1")]
            return JSONResponse({"page": 0, "page_size": 3, "cursor": "page-2", "result": page})
        return JSONResponse({"page": 1, "page_size": 3, "cursor": None, "result": [tx(3, 10, True, "2500000000")]})

    @app.get("/2/tweets/counts/recent")
    async def twitter(query: str, granularity: str = "hour", authorization: str | None = Header(None)) -> Response:
        if authorization != f"Bearer {KEY}":
            return JSONResponse({"title": "Unauthorized", "type": "about:blank", "status": 401,
                                 "detail": "Unauthorized"}, status_code=401)
        data = [{"end": f"2024-06-01T{h + 1:02d}:00:00.000Z", "start": f"2024-06-01T{h:02d}:00:00.000Z",
                 "tweet_count": 1000 + h} for h in range(3)]
        return JSONResponse({"data": data, "meta": {"total_tweet_count": sum(d["tweet_count"] for d in data)}})

    @app.get("/api4/public/coins/{coin}/time-series/v2")
    async def lunarcrush(coin: str, authorization: str | None = Header(None)) -> Response:
        if authorization != f"Bearer {KEY}":
            return JSONResponse({"error": "Invalid API key"}, status_code=401)
        data = [{"time": T0 + h * 3600, "open": 67000.0, "close": 67100.0, "sentiment": 80 + h,
                 "galaxy_score": 65, "alt_rank": 3, "social_dominance": 21.5, "interactions": 100_000 + h,
                 "posts_active": 5000, "contributors_active": 2000} for h in range(2)]
        return JSONResponse({"config": {"coin": coin, "bucket": "hour"}, "data": data})

    @app.post("/api/v1/access_token")
    async def reddit_token(request: Request, authorization: str | None = Header(None)) -> Response:
        expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        form = urllib.parse.parse_qs((await request.body()).decode())
        if authorization != expected or form.get("grant_type") != ["client_credentials"]:
            return JSONResponse({"error": 401, "message": "Unauthorized"}, status_code=401)
        return JSONResponse({"access_token": "reddit-token", "token_type": "bearer", "expires_in": 86400,
                             "scope": "*"})

    def _reddit_ok(authorization: str | None) -> bool:
        return authorization == "Bearer reddit-token"

    @app.get("/r/{sub}/about")
    async def reddit_about(sub: str, authorization: str | None = Header(None)) -> Response:
        if not _reddit_ok(authorization):
            return _unauthorized()
        return JSONResponse({"kind": "t5", "data": {"display_name": sub, "subscribers": 7_500_000,
                                                    "active_user_count": 12_345}})

    @app.get("/r/{sub}/new")
    async def reddit_new(sub: str, authorization: str | None = Header(None)) -> Response:
        if not _reddit_ok(authorization):
            return _unauthorized()
        posts = [{"kind": "t3", "data": {"id": f"p{i}", "title": "gm", "score": 10, "num_comments": 2,
                                         "created_utc": float(T0 + 60 * i + (3600 if i >= 3 else 0))}}
                 for i in range(5)]
        return JSONResponse({"kind": "Listing", "data": {"after": None, "children": posts}})

    @app.get("/v8/finance/chart/{ticker}")
    async def yahoo(ticker: str) -> Response:
        if ticker not in ("^GSPC", "^IXIC", "^VIX"):
            return JSONResponse({"chart": {"result": None, "error": {"code": "Not Found",
                                 "description": "No data found, symbol may be delisted"}}}, status_code=404)
        closes = {"^GSPC": [5277.51, 5283.40, None], "^IXIC": [16735.02, 16828.67, None], "^VIX": [12.92, 13.11, None]}
        ts = [T0 + 13 * 3600 + 30 * 60 + d * 86400 for d in range(3)]
        return JSONResponse({"chart": {"result": [{"meta": {"symbol": ticker, "currency": "USD"}, "timestamp": ts,
                                                   "indicators": {"quote": [{"close": closes[ticker]}]}}],
                                       "error": None}})

    @app.get("/q/d/l/")
    async def stooq(s: str, i: str = "d") -> Response:
        if s != "^spx":
            return PlainTextResponse("No data")
        return PlainTextResponse("Date,Open,High,Low,Close,Volume\n2024-05-31,5243.21,5280.33,5191.68,5277.51,"
                                 "2790000000\n2024-06-03,5297.15,5302.11,5234.32,5283.4,2410000000\n")

    return app
