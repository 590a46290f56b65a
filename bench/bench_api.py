"""``GET /api/v1/historical/{symbol}`` returning 1,000 candles: the whole API against bare FastAPI.

Both servers run the same way (uvicorn, ``WORKERS`` worker processes, loopback, the same
PostgreSQL holding the bundled real BTC/USDT 5m candles).  The kubetrade side is the real
thing as ``kubetrade api`` serves it: API key checked, rate limits counted in PostgreSQL
(per key and per address), a server span per request, a JSON access log line, HTTP
metrics.  The baseline (``_bare_api.py``) reads the same rows with the same function and
returns them with nothing around it; a third side serves that bare handler inside the
full kubetrade app, behind the same gate, so the report separates what the gate (keys,
limits, spans, logs, metrics) costs from what the market-data route's own code costs.
Two more loads on the kubetrade server show what its candle cache does and does not do:
``varied`` asks pages starting at 500 different candles in random order (each page is sliced
from the cached candles and hashed, not the memo of one page), ``revalidate`` sends the
page's ETag back (If-None-Match: 304, no body).  A fourth server, ``uncached``, is kubetrade
with its cache off (``KUBETRADE_API_CANDLE_CACHE_ROWS=0``): every request reads and encodes
its page, the cost of a first read.  Load comes from ``wrk`` (C, in its own process,
bounded by ``DURATION`` seconds and ``CONNECTIONS`` connections); figures are its
requests/s and 99th-percentile latency, plus the servers' own CPU time per request (from
/proc), which a machine shared with other work disturbs far less than throughput.  The sides
alternate twice and each keeps its best run, so a burst of load from something else on the
machine hurts both alike.

Target: at least 1.5x the bare baseline's requests/s with a p99 below its (stretch 3x), every gate kept.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKERS = int(os.environ.get("BENCH_API_WORKERS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "16"))
THREADS = 2
DURATION = int(os.environ.get("BENCH_API_SECONDS", "10"))
SYMBOL, EXCHANGE, TIMEFRAME = "BTC/USDT", "binance", "5m"
PATH = "/api/v1/historical/BTC-USDT?exchange=binance&timeframe=5m&limit=1000&start={start}"
"""One request; the market-data router's spelling of the symbol and the query."""


def _prepare(dsn: str) -> tuple[int, str]:
    """Candles into the database and a key with room for the whole run; (first candle ms, key)."""
    import psycopg

    from kubetrade.api import keys
    from kubetrade.candles import load_csv
    from kubetrade.storage import migrate
    from kubetrade.storage.candles import SeriesKey, ingest

    migrate.apply(dsn)
    candles = load_csv(REPO / "workloads" / "kubetrade" / "data" / "sample" / "BTC_USDT-5m.csv.gz",
                       symbol=SYMBOL, timeframe=TIMEFRAME)

    async def load() -> str:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await ingest(conn, SeriesKey(EXCHANGE, SYMBOL, TIMEFRAME), candles)
            _, key = await keys.create(conn, "bench", ["read"], "bench-pepper", rate_limit=1_000_000_000)
            return key

    return int(candles.time[0]), asyncio.run(load())


def _serve(argv: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    import httpx

    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=HERE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("server did not start")


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(root: int) -> float:
    """User + system CPU of a server: its master process and every worker under it."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(pid, 0.0) for pid in tree)


def _varied_script(path: Path, url: str, start: int, count: int = 500) -> Path:
    """A wrk script asking pages at ``count`` different starts (every 7th candle), in random order."""
    base = url.split("&start=")[0].split("//", 1)[1].split("/", 1)[1]
    starts = ", ".join(str(start + 7 * i * 300_000) for i in range(count))
    path.write_text(f"""local starts = {{{starts}}}
math.randomseed(42)
request = function()
  return wrk.format("GET", "/{base}&start=" .. starts[math.random(#starts)])
end
""")
    return path


def _wrk(url: str, key: str, seconds: int, server: int | None = None, *extra: str) -> dict[str, float]:
    cpu = _cpu_seconds(server) if server else 0.0
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                          "-H", f"X-API-Key: {key}", *extra, url], capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    assert p99, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)  # a 304 counts here too
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu_ms = (_cpu_seconds(server) - cpu) * 1000 / done if server and done else 0.0
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale, "errors": float(non2xx.group(1)) if non2xx else 0.0,
            "cpu_ms": cpu_ms}


def run() -> dict[str, Any]:
    import httpx

    from kubetrade.localstack.servers import PostgresServer, free_port

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed: apt-get install wrk")
    pg = PostgresServer(durable=False)
    pg.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dsn = pg.create_database("bench_api")
        start, key = _prepare(dsn)
        logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
        env = {**{k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")},
               "KUBETRADE_DATABASE_URL": dsn, "KUBETRADE_API_KEY_PEPPER": "bench-pepper",
               "KUBETRADE_RATE_LIMIT_PER_ADDRESS": "1000000000", "PYTHONPATH": str(REPO)}
        sides = {}
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--workers", str(WORKERS), "--no-access-log",
                   "--log-level", "warning"]
        kubetrade = [sys.executable, "-m", "kubetrade.cli", "api", "--workers", str(WORKERS), "--log-level", "info"]
        for name, argv, path, side_env in (
            ("baseline", [*uvicorn, "_bare_api:app"], PATH, {}),
            ("gated", [*uvicorn, "_bare_api:gated_app"], PATH.replace("/api/v1/", "/bench/"), {}),
            ("kubetrade", kubetrade, PATH, {}),
            ("uncached", kubetrade, PATH, {"KUBETRADE_API_CANDLE_CACHE_ROWS": "0"}),
        ):
            port = free_port()
            procs.append(_serve([*argv, "--host", "127.0.0.1", "--port", str(port)], port, env | side_env,
                                logs / f"{name}.log"))
            url = f"http://127.0.0.1:{port}{path.format(start=start)}"
            check = httpx.get(url, headers={"X-API-Key": key}, timeout=30)
            check.raise_for_status()
            body = check.json()
            candles = body.get("candles", body.get("items", body)) if isinstance(body, dict) else body
            assert len(candles) == 1000, f"{name}: {len(candles)} candles"
            sides[name] = (url, procs[-1].pid, ())
            if name == "kubetrade":
                again = httpx.get(url, headers={"X-API-Key": key, "If-None-Match": check.headers["etag"]}, timeout=30)
                assert again.status_code == 304, again.status_code
                sides["revalidate"] = (url, procs[-1].pid, ("-H", f"If-None-Match: {check.headers['etag']}"))
                script = _varied_script(logs / "varied.lua", url, start)
                sides["varied"] = (url, procs[-1].pid, ("-s", str(script)))
            _wrk(url, key, 2)  # warm-up: connections, pools, caches
        _wrk(sides["varied"][0], key, 4, None, *sides["varied"][2])
        best: dict[str, dict[str, float]] = {}
        for _ in range(2):
            for name, (url, pid, extra) in sides.items():
                got = _wrk(url, key, DURATION, pid, *extra)
                if name not in best or got["rps"] > best[name]["rps"]:
                    best[name] = got
        access_lines = sum(1 for side in ("kubetrade", "gated", "uncached") for line in (logs / f"{side}.log").open()
                           if '"message": "request"' in line)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        pg.cleanup()
    k, g, b, u, v, r = (best[n] for n in ("kubetrade", "gated", "baseline", "uncached", "varied", "revalidate"))
    return {
        "workers": WORKERS,
        "connections": CONNECTIONS,
        "kubetrade_rps": round(k["rps"]),
        "kubetrade_p99_ms": round(k["p99_ms"], 1),
        "kubetrade_non_2xx": int(k["errors"] + g["errors"] + v["errors"] + u["errors"]),
        "varied_pages_rps": round(v["rps"]),
        "varied_pages_p99_ms": round(v["p99_ms"], 1),
        "revalidate_304_rps": round(r["rps"]),
        "uncached_rps": round(u["rps"]),
        "uncached_p99_ms": round(u["p99_ms"], 1),
        "gated_bare_handler_rps": round(g["rps"]),
        "gated_bare_handler_p99_ms": round(g["p99_ms"], 1),
        "baseline_rps": round(b["rps"]),
        "baseline_p99_ms": round(b["p99_ms"], 1),
        "kubetrade_cpu_ms_per_request": round(k["cpu_ms"], 2),
        "varied_pages_cpu_ms_per_request": round(v["cpu_ms"], 2),
        "revalidate_304_cpu_ms_per_request": round(r["cpu_ms"], 2),
        "uncached_cpu_ms_per_request": round(u["cpu_ms"], 2),
        "gated_bare_handler_cpu_ms_per_request": round(g["cpu_ms"], 2),
        "baseline_cpu_ms_per_request": round(b["cpu_ms"], 2),
        "ratio_rps_vs_baseline": round(k["rps"] / b["rps"], 3),
        "ratio_gate_only_vs_baseline": round(g["rps"] / b["rps"], 3),
        "ratio_varied_vs_baseline": round(v["rps"] / b["rps"], 3),
        "ratio_uncached_vs_baseline": round(u["rps"] / b["rps"], 3),
        "ratio_cpu_per_request_baseline_over_kubetrade": round(b["cpu_ms"] / k["cpu_ms"], 2) if k["cpu_ms"] else None,
        "access_log_lines": access_lines,
        "target": ">= 1.5x the baseline's req/s with p99 below the baseline's (stretch 3x)",
        "target_met": k["rps"] >= 1.5 * b["rps"] and k["p99_ms"] < b["p99_ms"],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
