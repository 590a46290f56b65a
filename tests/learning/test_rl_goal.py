"""A Goal's evolution with ``spec.evolution.sources``: PPO policies beside genomes, one selection, the same gates.

Real ETH hourly bars (tests/data) reshaped into a planted trend (something to learn) or a random walk
(nothing to learn); PPO kept to a few checkpoints of a few thousand steps so that a run takes seconds.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from kubetrade.candles import Candles, from_arrays
from kubetrade.engine.evolve import EvolveConfig
from kubetrade.engine.runs import Costs
from kubetrade.engine.walkforward import WalkForwardConfig, windows_only
from kubetrade.goalevolution.goalrun import run_goal_evolution
from kubetrade.learning.walkforward import policy_walk_forward
from kubetrade.lifecycle.gates import judged
from kubetrade.prediction.model import ModelReference, from_bytes, policy_genome
from kubetrade.resources.goal import GoalSpec, RLSettings
from tests.engine.series import random_walk
from tests.learning.conftest import evolve_without_jax
from tests.learning.test_rl import planted

RL = {"timesteps": 2048, "checkpoints": 4, "hidden": 16}


def goal(symbol: str, **evolution: Any) -> GoalSpec:
    evo = {"symbols": [symbol], "timeframe": "1h", "population": 24, "generations": 2, "backtestDays": 200,
           "minTrades": 10, "paperFraction": 1.0, "maxPaper": 3, "seed": 3,
           "walkForward": {"windows": 3, "outOfSampleFraction": 0.1, "blocks": 10}, **evolution}
    return GoalSpec.model_validate({"target": {"capital": {"amount": 10_000}, "returnPct": 0.05},
                                    "riskPolicyRef": {"name": "default"}, "evolution": evo})


@pytest.fixture(scope="module")
def plant(eth_1h: Candles) -> Candles:
    return planted(eth_1h)


@pytest.fixture(scope="module")
def noise(eth_1h: Candles) -> Candles:
    return random_walk(eth_1h, seed=1)


@pytest.fixture(scope="module")
def both(plant: Candles):
    return run_goal_evolution("grow", goal(plant.symbol, sources=["genomes", "rl"], rl=RL), {plant.symbol: plant},
                              seed=3)


def test_policies_and_genomes_are_one_selection_judged_by_the_same_gates(both) -> None:
    sel = both.selection
    by = {c.source: c for c in sel.sources}
    assert set(by) == {"genomes", "rl"}
    assert by["rl"].trials == 3 * RL["checkpoints"] == both.rl_trials  # every checkpoint evaluated, per window
    assert sel.trials == by["genomes"].trials + by["rl"].trials == both.walk.trials + both.rl_trials
    assert sel.candidates == len(both.ranked) == by["genomes"].candidates + by["rl"].candidates
    assert by["rl"].candidates == 3
    assert sel.passed == by["genomes"].passed + by["rl"].passed and sel.to_paper == by["genomes"].to_paper + \
        by["rl"].to_paper
    g, p = by["genomes"], by["rl"]
    assert (f"by source: genomes {g.candidates} candidates from {g.trials} tried, {g.passed} passed; "
            f"RL policies 3 candidates from {p.trials} checkpoints, {p.passed} passed") in sel.message
    # one ranking, by the deflated Sharpe ratio that counts every trial of both sources
    dsr = [r.evidence.deflated_sharpe for r in both.ranked]
    assert dsr == sorted(dsr, reverse=True)
    for r in both.ranked:
        e = r.evidence
        assert e.trials == sel.trials
        assert e == judged(e.model_copy(update={"passed": False, "failures": []}), goal("BTC/USDT").gates)
    policies = [r for r in both.ranked if r.evidence.source == "rl"]
    assert sorted(r.evidence.chosen_in_window for r in policies) == [0, 1, 2]
    for r in policies:
        e = r.evidence
        assert e.pbo is not None and 0 <= e.pbo <= 1  # CSCV over its window's checkpoints
        assert [w.index for w in e.windows] == list(range(e.chosen_in_window, 3))
    last = next(r for r in policies if r.evidence.chosen_in_window == 2)
    assert not last.evidence.passed and "1 out-of-sample window(s) < minWindows 2" in last.evidence.failures
    # the planted trend is learnable: a policy chosen early passes, as genomes do
    assert any(r.evidence.passed for r in policies), [r.evidence.failures for r in policies]


def test_a_passing_policy_goes_to_paper_with_its_model_in_the_store(both, plant: Candles) -> None:
    papers = [st for st in both.strategies if st.spec.policy is not None]
    assert papers, "no policy went to paper"
    for st in papers:
        name = st.metadata["name"]
        ref = st.spec.policy
        assert ref.uri == f"registry://{name}" and ref.features == "bars-v1"
        published = both.policies[name]
        assert ref.sha256 == published.sha256
        assert st.spec.genome == policy_genome("spot") and st.spec.mode == "paper"
        assert st.status.evidence.source == "rl" and st.status.evidence.passed
        # the stored bytes are the policy that was scored: loadable as the runner loads it, by digest
        m = from_bytes(published.onnx, name, ModelReference(uri=ref.uri, sha256=ref.sha256, features="bars-v1"),
                       "policy")
        assert m.kind == "policy" and published.metrics["checkpoints"] == RL["checkpoints"]
        assert published.train_to.timestamp() * 1000 <= both.walk.windows[st.status.evidence.chosen_in_window].oos_from
    assert set(both.policies) == {r.strategy.metadata["name"] for r in both.ranked if r.evidence.source == "rl"}


def test_a_policy_on_a_random_walk_is_refused_with_the_reason(noise: Candles) -> None:
    run = run_goal_evolution("grow", goal(noise.symbol, sources=["rl"], rl=RL), {noise.symbol: noise}, seed=3)
    assert run.walk.trials == 0 and not run.walk.candidates  # no genome search at all
    assert [c.source for c in run.selection.sources] == ["rl"]
    assert run.selection.passed == 0 and run.strategies == [] and len(run.ranked) == 3
    assert run.selection.message.startswith("no strategy passed: best DSR ")
    assert run.tried() == f"{3 * RL['checkpoints']} PPO checkpoints evaluated"
    for r in run.ranked:
        e = r.evidence
        assert not e.passed and e.failures and e.trials == 3 * RL["checkpoints"]
    early = next(r.evidence for r in run.ranked if r.evidence.chosen_in_window == 0)
    assert any(f.startswith("deflated Sharpe ") for f in early.failures), early.failures


def _altered_from(c: Candles, start: int, seed: int) -> Candles:
    """The same candles up to ``start``; from there on other prices (a random walk of other returns)."""
    rng = np.random.default_rng(seed)
    close = c.close.copy()
    close[start:] = close[start - 1] * np.exp(np.cumsum(rng.normal(0, 0.02, len(c) - start)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    open_[:start] = c.open[:start]
    before = np.arange(len(c)) < start
    high = np.where(before, c.high, np.maximum(open_, close) * 1.001)
    low = np.where(before, c.low, np.minimum(open_, close) * 0.999)
    volume = c.volume.copy()
    volume[start:] = rng.uniform(1, 1e4, len(c) - start)
    return from_arrays(c.time, open_, high, low, close, volume, timeframe=c.timeframe, symbol=c.symbol)


def test_the_policy_of_window_k_never_saw_window_k_test_bars(plant: Candles) -> None:
    c = plant.slice(0, 3000)
    data = [from_arrays(c.time, c.open, c.high, c.low, c.close, c.volume, timeframe=c.timeframe, symbol=c.symbol)]
    cfg = EvolveConfig(costs=Costs(fee=0.001, slippage=0.0002, init_cash=10_000), seed=5)
    wf = WalkForwardConfig(windows=3, oos_fraction=0.1, blocks=10)
    rl = RLSettings(**RL)
    walk = windows_only(data, cfg, wf)
    first = policy_walk_forward(data, walk, cfg, rl, seed=5)
    k = 1
    cut = walk.windows[k].window.oos_start
    changed = [_altered_from(data[0], cut, seed=2)]
    for f in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(changed[0], f)[:cut], getattr(data[0], f)[:cut]), f
    assert not np.allclose(changed[0].close[cut:], data[0].close[cut:])
    second = policy_walk_forward(changed, windows_only(changed, cfg, wf), cfg, rl, seed=5)
    sha = {c.window: c.trained.sha256 for c in first.candidates.values()}
    again = {c.window: c.trained.sha256 for c in second.candidates.values()}
    # windows 0 and 1 were trained on bars before window 1's test part: byte for byte the same policy
    # (same seed, same bars: training is reproducible), the same checkpoints' PBO
    assert again[0] == sha[0] and again[1] == sha[1]
    assert second.candidates["rl:window-1"].pbo.pbo == first.candidates["rl:window-1"].pbo.pbo
    h1, h2 = (r.candidates["rl:window-1"].trained.result.history for r in (first, second))
    assert h1 == h2
    # window 2's in-sample bars hold window 1's test part (its validation rows, the newest in sample): the
    # changed bars show in how its checkpoints scored, so the test can tell a window that saw them
    h1, h2 = (r.candidates["rl:window-2"].trained.result.history for r in (first, second))
    assert [h["validation"] for h in h1] != [h["validation"] for h in h2]
    # and what it did score on the changed bars differs (the scores are out of sample, the policy is not)
    assert (second.candidates["rl:window-1"].scores[1] != first.candidates["rl:window-1"].scores[1])
    for c in first.candidates.values():
        w = walk.windows[c.window]
        assert c.trained.train_to <= w.oos_from - data[0].bar_ms  # the last row's reward reads the last in-sample close
        assert c.pbo is not None and c.pbo.trials == rl.checkpoints and c.pbo.blocks == 10


def test_sources_genomes_is_what_the_evolution_did_before(noise: Candles) -> None:
    plain = run_goal_evolution("grow", goal(noise.symbol), {noise.symbol: noise}, seed=3)
    explicit = run_goal_evolution("grow", goal(noise.symbol, sources=["genomes"]), {noise.symbol: noise}, seed=3)
    for run in (plain, explicit):
        assert run.policies == {} and run.rl_trials == 0
        assert [c.source for c in run.selection.sources] == ["genomes"]
        assert "by source" not in run.selection.message
        assert run.tried() == f"{run.walk.trials} genomes tried"
        assert run.selection.trials == run.walk.trials
        # each candidate's evidence is the walk-forward's own, judged: nothing re-deflated
        for r in run.ranked:
            assert r.evidence == judged(run.walk.evidence[r.key], goal(noise.symbol).gates)
            assert r.strategy.spec.policy is None and r.evidence.source == "genomes"
    assert [r.evidence for r in plain.ranked] == [r.evidence for r in explicit.ranked]
    assert plain.selection.model_copy(update={"run": None, "time": None}) == \
        explicit.selection.model_copy(update={"run": None, "time": None})


def test_without_jax_an_rl_goal_says_it_needs_the_training_image(noise: Candles, tmp_path) -> None:
    # a process in which jax cannot be imported, as in the runtime image
    spec = goal(noise.symbol, sources=["genomes", "rl"]).to_k8s()
    out = evolve_without_jax(spec, noise, tmp_path)
    assert out.returncode == 0, out.stderr
    assert ("refused: spec.evolution.sources asks for rl, but this image has no training libraries (jax cannot be "
            "imported): the operator runs such a Goal's evolution in its training image") in out.stdout, out.stdout
    assert "jax imported: False" in out.stdout


def test_the_runtime_modules_of_the_evolution_import_no_jax() -> None:
    code = ("import sys; import kubetrade.goalevolution.commands, kubetrade.goalevolution.goalrun, "
            "kubetrade.goalevolution.outcome, kubetrade.resources.goal; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'optax', 'gymnasium')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_bad_rl_settings_are_refused_naming_the_field() -> None:
    for evolution, message in (
        ({"sources": []}, "List should have at least 1 item"),
        ({"sources": ["rl", "rl"]}, "duplicate value 'rl'"),
        ({"sources": ["ppo"]}, "Input should be 'genomes' or 'rl'"),
        ({"rl": {}}, "evolution.rl is set but evolution.sources is ['genomes']"),
        ({"sources": ["rl"], "rl": {"timesteps": 1000, "checkpoints": 10}},
         "evolution.rl.timesteps 1000 is fewer than checkpoints 10 x 128 steps"),
        ({"sources": ["rl"], "rl": {"checkpoints": 1}}, "greater than or equal to 2"),
        ({"sources": ["rl"], "rl": {"timesteps": 10**9}}, "less than or equal to 5000000"),
        ({"sources": ["rl"], "rl": {"window": 0}}, "greater than or equal to 2"),
    ):
        with pytest.raises(ValueError) as err:
            goal("BTC/USDT", **evolution)
        assert message in str(err.value), (evolution, str(err.value))
