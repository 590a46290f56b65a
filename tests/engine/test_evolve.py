"""Evolution: reproducible, guarded against overfitting, and its output is valid Strategy resources."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml

from kubetrade.candles import Candles
from kubetrade.engine import genes
from kubetrade.engine.evolve import EvolveConfig, EvolveResult, evolve
from kubetrade.engine.publish import ManifestSettings, store_run, strategy_manifest, survivor_summary, write_manifests
from kubetrade.engine.runs import Costs, backtest
from kubetrade.resources.strategy import Strategy

CFG = EvolveConfig(population=24, generations=3, seed=11, min_trades=10, top=8, costs=Costs(fee=0.001))


@pytest.fixture(scope="module")
def data(btc_1m: Candles, btc_1m_full: Candles) -> list[Candles]:
    return [btc_1m.slice(0, 8000)]


@pytest.fixture(scope="module")
def result(data: list[Candles]) -> EvolveResult:
    return evolve(data, CFG)


def test_same_seed_same_strategies(data: list[Candles], result: EvolveResult) -> None:
    again = evolve(data, CFG)
    assert [s.genome for s in again.survivors] == [s.genome for s in result.survivors]
    assert [s.validation for s in again.survivors] == [s.validation for s in result.survivors]
    other = evolve(data, EvolveConfig(**{**CFG.__dict__, "seed": 12}))
    assert [s.genome for s in other.survivors] != [s.genome for s in result.survivors]


def test_survivors_pass_the_guards(data: list[Candles], result: EvolveResult) -> None:
    assert result.survivors, "a small run should still leave survivors"
    assert result.trials >= CFG.population
    c = data[0]
    split = int(len(c) * CFG.train_fraction)
    for s in result.survivors:
        (train,) = s.train.values()
        (val,) = s.validation.values()
        assert train.trades >= CFG.min_trades
        assert val.trades >= math.ceil(CFG.min_trades * 0.3 / 0.7)
        assert 0.0 <= s.deflated_sharpe <= 1.0
        # the validation figures are a backtest of the held-out bars only
        again = backtest(s.genome, c, CFG.costs, start=split)
        assert again.metrics == val
        assert val.bars == len(c) - split


def test_genes_always_make_valid_genomes() -> None:
    import random

    r = random.Random(3)
    specs = [genes.random_spec(r, both_sides=i % 2 == 0) for i in range(200)]
    for _ in range(3):
        specs = [genes.mutate(s, r) for s in specs]
        specs = [x for a, b in zip(specs[::2], specs[1::2], strict=True) for x in genes.crossover(a, b, r)]
    from kubetrade.engine.compile import compile_genomes

    genomes = [genes.to_genome(s) for s in specs]
    compile_genomes(genomes, market="perpetual")


def _manifests(result: EvolveResult, data: list[Candles], run_id: str) -> list[Strategy]:
    settings = ManifestSettings(capital=2500, risk_policy="conservative", goal="monthly-8pct")
    return [strategy_manifest(s.genome, survivor_summary(s), i, run_id, data, CFG, settings)
            for i, s in enumerate(result.survivors, start=1)]


def test_manifests_round_trip_without_loss(tmp_path: Path, data: list[Candles], result: EvolveResult) -> None:
    strategies = _manifests(result, data, str(uuid.uuid4()))
    paths = write_manifests(strategies, tmp_path)
    for st, path in zip(strategies, paths, strict=True):
        doc = yaml.safe_load(path.read_text())
        assert doc["spec"]["mode"] == "paper" and doc["spec"]["symbols"] == [data[0].symbol]
        back = Strategy.model_validate(doc)
        assert back.spec.genome == st.spec.genome
        assert back.to_k8s() == st.to_k8s()
        assert json.loads(doc["metadata"]["annotations"]["kubetrade.io/backtest"])["trades"] >= 1


def test_results_are_stored_in_postgres(pg_dsn: str, data: list[Candles], result: EvolveResult) -> None:
    run_id = str(uuid.uuid4())
    strategies = _manifests(result, data, run_id)
    store_run(pg_dsn, run_id, datetime.now(UTC), result, CFG, data, strategies, goal="monthly-8pct")
    with psycopg.connect(pg_dsn) as conn:
        run = conn.execute("SELECT seed, trials, survivors, config->>'population' FROM evolution_runs WHERE id = %s",
                           (run_id,)).fetchone()
        assert run == (CFG.seed, result.trials, len(result.survivors), str(CFG.population))
        rows = conn.execute("SELECT rank, strategy_name, genome, validation_return, manifest FROM evolution_results"
                            " WHERE run_id = %s ORDER BY rank", (run_id,)).fetchall()
    assert [r[0] for r in rows] == list(range(1, len(result.survivors) + 1))
    for (_, name, genome, val_ret, manifest), s, st in zip(rows, result.survivors, strategies, strict=True):
        assert name == st.metadata["name"]
        assert genome == s.genome.to_k8s()
        assert val_ret == pytest.approx(s.validation_return)
        assert Strategy.model_validate(manifest) == st


def test_manifests_are_accepted_by_the_api_server(kube: object, namespace: str, tmp_path: Path,
                                                  data: list[Candles], result: EvolveResult) -> None:
    strategies = _manifests(result, data, str(uuid.uuid4()))
    write_manifests(strategies, tmp_path)
    out = kube.kubectl("apply", "-n", namespace, "-f", str(tmp_path)).stdout  # type: ignore[attr-defined]
    assert out.count("created") == len(strategies), out
    got = json.loads(kube.kubectl("get", "strategies", "-n", namespace, "-o", "json").stdout)  # type: ignore[attr-defined]
    by_name = {i["metadata"]["name"]: i for i in got["items"]}
    for st in strategies:
        assert by_name[st.metadata["name"]]["spec"]["genome"] == st.spec.to_k8s()["genome"]


def test_cli_backtest_and_evolve(tmp_path: Path, market_data: Path) -> None:
    perp = market_data / "binance-usdm" / "SOL_USDT-1m-perp.csv.gz"
    out = subprocess.run([sys.executable, "-m", "kubetrade.cli", "evolve", str(perp), "--market", "perpetual",
                          "--population", "16", "--generations", "1", "--min-trades", "5", "--top", "3",
                          "--out", str(tmp_path / "m"), "--seed", "5"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "survivors" in out.stdout and "wrote" in out.stdout
    manifest = sorted((tmp_path / "m").glob("*.yaml"))[0]
    assert yaml.safe_load(manifest.read_text())["spec"]["market"] == "perpetual"
    bt = subprocess.run([sys.executable, "-m", "kubetrade.cli", "backtest", str(perp), "--strategy", str(manifest),
                         "--plot", str(tmp_path / "eq.png")], capture_output=True, text=True, timeout=300)
    assert bt.returncode == 0, bt.stdout + bt.stderr
    assert "Sharpe" in bt.stdout and (tmp_path / "eq.png").stat().st_size > 10_000
    bad = subprocess.run([sys.executable, "-m", "kubetrade.cli", "backtest", str(perp), "--template", "ema-crossover",
                          "--param", "fast=50", "--param", "slow=20"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "fast (50) must be shorter than slow (20)" in bad.stderr  # errors go to stderr


def test_config_from_a_goal() -> None:
    from kubetrade.resources.goal import EvolutionSettings

    evo = EvolutionSettings.model_validate({"symbols": ["BTC/USDT"], "population": 50, "generations": 7,
                                            "validationFraction": 0.25, "minTrades": 12, "paperFraction": 0.3,
                                            "maxPaper": 40, "market": "perpetual"})
    cfg = EvolveConfig.from_goal(evo, Costs(), seed=99)
    assert (cfg.population, cfg.generations, cfg.seed, cfg.train_fraction, cfg.min_trades, cfg.top,
            cfg.top_fraction, cfg.market) == (52, 7, 99, 0.75, 12, 40, 0.3, "perpetual")
    with pytest.raises(ValueError, match="multiple of 4"):
        EvolveConfig(population=30)
