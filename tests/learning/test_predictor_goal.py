"""A Goal's evolution with ``spec.evolution.predictor``: the LSTM-Transformer trained on bars no out-of-sample
window sees, its output an operand of the genetic search, its genomes judged by the same gates.

Real ETH hourly bars (tests/data) reshaped two ways: ``volume_led`` - each bar's close-to-close return follows
the sign of the previous bar's volume step (volume a random walk of +-10 % steps, so price alone holds nothing:
the steps are independent, and no indicator family of the search reads the volume step) - and a random walk of
the real returns (nothing to learn).  The network is kept tiny (window 8, 8 units, at most 8 epochs) so that a
run takes seconds.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from kubetrade.candles import Candles, from_arrays
from kubetrade.engine.evolve import EvolveConfig
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.walkforward import WalkForwardConfig
from kubetrade.goalevolution import outcome
from kubetrade.goalevolution.goalrun import (
    GoalRunError,
    predictor_cut,
    run_goal_evolution,
    train_predictor,
)
from kubetrade.prediction import registry
from kubetrade.prediction.model import ModelError, uses
from kubetrade.resources.goal import GoalSpec, PredictorSettings
from kubetrade.runner import config as runner_config
from tests.engine.series import _rebuild, random_walk
from tests.learning.conftest import evolve_without_jax

PREDICTOR = {"window": 8, "hidden": 8, "heads": 2, "epochs": 8}


def goal(symbol: str, **evolution: Any) -> GoalSpec:
    evo = {"symbols": [symbol], "timeframe": "1h", "population": 48, "generations": 3, "backtestDays": 200,
           "minTrades": 10, "paperFraction": 1.0, "maxPaper": 3, "seed": 3,
           "walkForward": {"windows": 3, "outOfSampleFraction": 0.1, "blocks": 10}, **evolution}
    return GoalSpec.model_validate({"target": {"capital": {"amount": 10_000}, "returnPct": 0.05},
                                    "riskPolicyRef": {"name": "default"}, "evolution": evo})


def volume_led(real: Candles, seed: int = 1, edge: float = 0.005, noise: float = 0.002) -> Candles:
    """The real candles' times and wicks; volume a random walk of +-10 % steps; the return from bar t to t+1 is
    ``edge`` times the sign of bar t's volume step plus normal noise: predictable from the bar features only."""
    rng = np.random.default_rng(seed)
    n = len(real)
    step = rng.choice([-1.0, 1.0], n)
    volume = np.exp(np.log(1e6) + np.cumsum(0.1 * step))
    r = edge * step[:-1] + rng.normal(0, noise, n - 1)
    c = _rebuild(real, np.log(real.close[0]) + np.concatenate([[0.0], np.cumsum(r)]), "LEAD/USDT")
    return from_arrays(c.time, c.open, c.high, c.low, c.close, volume, symbol="LEAD/USDT", timeframe=c.timeframe)


@pytest.fixture(scope="module")
def lead(eth_1h: Candles) -> Candles:
    return volume_led(eth_1h)


@pytest.fixture(scope="module")
def noise(eth_1h: Candles) -> Candles:
    return random_walk(eth_1h, seed=1)


@pytest.fixture(scope="module")
def predicted(lead: Candles):
    return run_goal_evolution("grow", goal(lead.symbol, predictor=PREDICTOR), {lead.symbol: lead}, seed=3)


def _ms(t) -> int:  # type: ignore[no-untyped-def]
    return int(t.timestamp() * 1000)


def test_the_predictor_is_trained_before_the_first_window_search_validation_part(predicted, lead: Candles) -> None:
    p, sel = predicted.predictor, predicted.selection.predictor
    assert p is not None and sel is not None
    w0 = predicted.walk.windows[0]
    bar = lead.bar_ms
    # window 0's search trains on the first trainFraction of its in-sample bars and ranks on the rest
    is_bars = (w0.is_to - w0.is_from) // bar
    split = w0.is_from + int(is_bars * predicted.config.train_fraction) * bar
    assert _ms(p.train_to) == split < w0.oos_from  # nothing from the validation part on, nor out of sample
    assert _ms(p.train_from) == int(predicted.data[0].time[0])  # from the first bar loaded (the warm-up too)
    assert (_ms(p.validation_from), _ms(p.validation_to)) == (split, w0.oos_from)
    assert all(w.oos_from >= _ms(p.train_to) for w in predicted.walk.windows)
    assert (sel.sha256, sel.model, sel.train_to) == (p.sha256, "registry://grow-predictor", p.train_to)
    # the file says the same about itself
    from kubetrade.prediction.model import from_bytes

    m = from_bytes(p.onnx, "run", p.reference)
    assert m.metadata["kubetrade.train_to"].startswith(p.train_to.strftime("%Y-%m-%dT%H:%M"))
    # on the planted signal it has skill on bars it never saw; the training history is the run's
    assert sel.validation_skill is not None and sel.validation_skill > 0.3, sel
    assert sel.validation_direction is not None and sel.validation_direction > 0.8
    assert sel.best_epoch == p.metrics["training"]["best_epoch"] >= 1


def test_bars_from_the_cut_on_never_reach_the_predictor(lead: Candles) -> None:
    """Change every bar from the training cut on: the very same model (same seed, same bars); change one bar
    before it: another model - so the first comparison can tell."""
    spec = goal(lead.symbol)
    part = lead.slice(len(lead) - (200 * 24 + 300), len(lead))
    # a set of its own (a slice's label names its range, and the file records the labels it was trained on)
    data = [from_arrays(part.time, part.open, part.high, part.low, part.close, part.volume, symbol=part.symbol,
                        timeframe=part.timeframe)]
    cfg = EvolveConfig(costs=Costs(fee=0.001, slippage=0.0002), seed=3, train_fraction=0.7)
    wf = WalkForwardConfig.from_goal(spec, 200 * 24)
    settings = PredictorSettings(**PREDICTOR | {"epochs": 2})
    first = train_predictor("grow", data, cfg, wf, settings, seed=3)
    cut, _ = predictor_cut(data, cfg, wf)
    c = data[0]
    i = int(np.searchsorted(c.time, cut))
    later = c.close.copy()
    later[i:] *= np.exp(np.random.default_rng(5).normal(0, 0.03, len(c) - i).cumsum())
    volume = c.volume.copy()
    volume[i:] = volume[i:][::-1]
    after = [from_arrays(c.time, c.open, np.maximum(c.high, later), np.minimum(c.low, later), later, volume,
                         symbol=c.symbol, timeframe=c.timeframe)]
    assert np.array_equal(after[0].close[:i], c.close[:i]) and not np.allclose(after[0].close[i:], c.close[i:])
    again = train_predictor("grow", after, cfg, wf, settings, seed=3)
    assert again.sha256 == first.sha256
    assert again.metrics["validation"] != first.metrics["validation"]  # its validation bars did change
    before = c.volume.copy()
    before[i // 2] *= 3.0  # a training row (the last fifth before the cut only early-stops it)
    other = train_predictor("grow", [from_arrays(c.time, c.open, c.high, c.low, c.close, before, symbol=c.symbol,
                                                 timeframe=c.timeframe)], cfg, wf, settings, seed=3)
    assert other.sha256 != first.sha256


def test_prediction_genomes_are_drawn_scored_and_judged_by_the_same_gates(predicted) -> None:
    sel = predicted.selection
    using = [r for r in predicted.ranked if uses(r.genome, "prediction")]
    assert sel.predictor is not None and sel.predictor.candidates == len(using) > 0
    assert sel.predictor.passed == sum(1 for r in using if r.evidence.passed)
    assert f"{sel.predictor.candidates} of {sel.candidates} candidates use its prediction" in sel.message
    for r in predicted.ranked:
        e = r.evidence
        assert e.trials == sel.trials == predicted.walk.trials and e.source == "genomes"
        assert e.windows and len(e.windows) == 3 - e.chosen_in_window  # scored on its window and every later one
        assert e == predicted.walk.evidence[r.key].model_copy(update={"passed": e.passed, "failures": e.failures})
    # on the planted signal the prediction is what passes: every genome that passed reads it
    passed = [r for r in predicted.ranked if r.evidence.passed]
    assert passed, [r.evidence.failures for r in predicted.ranked[:3]]
    assert all(uses(r.genome, "prediction") for r in passed)


def test_without_the_predictor_nothing_passes_on_the_same_candles(lead: Candles) -> None:
    run = run_goal_evolution("grow", goal(lead.symbol), {lead.symbol: lead}, seed=3)
    assert run.predictor is None and run.selection.predictor is None
    assert not any(uses(r.genome, "prediction") for r in run.ranked)
    assert run.selection.passed == 0 and run.strategies == [], run.selection.message


def test_on_a_random_walk_the_prediction_does_not_pass(noise: Candles) -> None:
    run = run_goal_evolution("grow", goal(noise.symbol, predictor=PREDICTOR), {noise.symbol: noise}, seed=3)
    sel = run.selection
    assert sel.predictor is not None and sel.predictor.validation_skill is not None
    assert sel.predictor.validation_skill < 0.05  # nothing to predict
    assert sel.passed == 0 and run.strategies == [], sel.message
    assert sel.message.startswith("no strategy passed: best DSR ")


def test_a_paper_prediction_genome_carries_the_stored_model_and_a_runner_loads_it(
        predicted, lead: Candles, pg_dsn: str, clean_indicators) -> None:
    from datetime import UTC, datetime

    papers = [st for st in predicted.strategies if uses(st.spec.genome, "prediction")]
    assert papers
    p = predicted.predictor
    outcome.store(pg_dsn, predicted, datetime.now(UTC), "grow")
    [row] = registry.describe(pg_dsn, "grow-predictor")
    assert (row.sha256, row.kind, row.features) == (p.sha256, "predictor", "bars-v1")
    assert (row.train_from, row.train_to) == (p.train_from, p.train_to)
    assert row.metrics["validation_window"]["to"] == json.loads(json.dumps(p.metrics))["validation_window"]["to"]
    for st in predicted.ranked:
        uses_it = uses(st.genome, "prediction")
        assert (st.strategy.spec.model is not None) == uses_it
    st = papers[0]
    assert st.spec.model.uri == "registry://grow-predictor" and st.spec.model.sha256 == p.sha256
    doc = st.to_k8s()
    doc["metadata"]["namespace"] = "default"
    cfg = runner_config.parse(doc, dsn=pg_dsn)
    assert cfg.model_error is None
    # the runner's bound model trades window 0's out-of-sample bars as the evidence says
    e = st.status.evidence
    w = next(wr for wr in predicted.walk.windows if wr.window.index == e.windows[0].index)
    c = predicted.data[0]
    start, end = (int(np.searchsorted(c.time, t)) for t in (w.oos_from, w.oos_to))
    bt = backtest(cfg.genome, c, Costs(fee=0.001, slippage=0.0002, init_cash=10_000), start=start, end=end)
    assert bt.metrics.total_return == pytest.approx(e.windows[0].return_pct, abs=1e-9)
    assert bt.metrics.trades == e.windows[0].trades > 0
    # a Strategy naming another digest under that name is refused, saying what the store holds
    from kubetrade.prediction.model import unbind

    unbind()
    doc["spec"]["model"]["sha256"] = "3" * 64
    refused = runner_config.parse(doc, dsn=pg_dsn)
    assert refused.model_error is not None and "not in the model store (it has grow-predictor with sha256 " \
        f"{p.sha256[:12]}..." in refused.model_error
    with pytest.raises(ModelError, match="is not in the model store"):
        registry.fetch(pg_dsn, st.spec.model.model_copy(update={"sha256": "4" * 64}))


def test_bad_predictor_settings_are_refused_naming_the_field() -> None:
    for evolution, message in (
        ({"sources": ["rl"], "predictor": {}}, "evolution.predictor is set but evolution.sources is ['rl']: the "
                                               "prediction is an operand of the genetic search"),
        ({"predictor": {"hidden": 6, "heads": 4}}, "evolution.predictor.hidden 6 must be a multiple of heads 4"),
        ({"predictor": {"window": 1}}, "greater than or equal to 2"),
        ({"predictor": {"window": 65}}, "less than or equal to 64"),
        ({"predictor": {"epochs": 0}}, "greater than or equal to 1"),
        ({"predictor": {"horizon": 49}}, "less than or equal to 48"),
        ({"predictor": {"lstm": 3}}, "Extra inputs are not permitted"),
        ({"predictor": {"heads": 9}}, "less than or equal to 8"),
    ):
        with pytest.raises(ValueError) as err:
            goal("BTC/USDT", **evolution)
        assert message in str(err.value), (evolution, str(err.value))


def test_too_few_bars_to_train_the_predictor_is_a_clear_refusal(lead: Candles) -> None:
    data = [lead.slice(0, 120)]
    cfg = EvolveConfig(costs=Costs(), seed=3)
    wf = WalkForwardConfig(windows=3, oos_fraction=0.2, blocks=10, bars=100)
    with pytest.raises(GoalRunError, match=r"spec.evolution.predictor: the bars before the first window's search "
                                           r"validation part \(.*\) cannot train it: .*too few for a window of 64"):
        train_predictor("grow", data, cfg, wf, PredictorSettings(window=64, hidden=8), seed=3)


def test_without_jax_a_predictor_goal_says_it_needs_the_training_image(noise: Candles, tmp_path) -> None:
    spec = goal(noise.symbol, predictor=PREDICTOR).to_k8s()
    out = evolve_without_jax(spec, noise, tmp_path)
    assert out.returncode == 0, out.stderr
    assert ("refused: spec.evolution.predictor asks for a trained predictor, but this image has no training "
            "libraries (jax cannot be imported): the operator runs such a Goal's evolution in its training image"
            ) in out.stdout, out.stdout
    assert "jax imported: False" in out.stdout


def test_policies_can_observe_the_goal_predictor_and_carry_it_to_the_runner(
        lead: Candles, pg_dsn: str, clean_indicators) -> None:
    from datetime import UTC, datetime

    from kubetrade.prediction.model import from_bytes, unbind

    rl = {"timesteps": 1024, "checkpoints": 2, "hidden": 16, "observePrediction": True}
    spec = goal(lead.symbol, population=24, generations=1, predictor=PREDICTOR | {"epochs": 3},
                sources=["genomes", "rl"], rl=rl)
    run = run_goal_evolution("observe", spec, {lead.symbol: lead}, seed=3)
    p = run.predictor
    policies = [r for r in run.ranked if r.evidence.source == "rl"]
    assert len(policies) == 3 and len(run.policies) == 3
    for r in policies:
        published = run.policies[r.strategy.metadata["name"]]
        m = from_bytes(published.onnx, "policy", r.strategy.spec.policy, "policy")
        assert m.predictor_sha256 == p.sha256  # trained on observations with the predictor's output
        assert r.strategy.spec.model == p.reference
    outcome.store(pg_dsn, run, datetime.now(UTC), "observe")
    doc = policies[0].strategy.to_k8s()
    doc["metadata"]["namespace"] = "default"
    cfg = runner_config.parse(doc, dsn=pg_dsn)
    assert cfg.model_error is None
    unbind()
    # a spec.model of another predictor: the runner refuses the policy, naming the one it observes
    other = train_predictor("other", run.data, run.config, WalkForwardConfig.from_goal(spec, 200 * 24),
                            PredictorSettings(**PREDICTOR | {"epochs": 1, "seed": 9}), seed=9)
    registry.store(pg_dsn, other.name, other.onnx, kind="predictor", features="bars-v1", train_from=other.train_from,
                   train_to=other.train_to, metrics={}, config={})
    doc["spec"]["model"] = other.reference.to_k8s()
    refused = runner_config.parse(doc, dsn=pg_dsn)
    assert refused.model_error is not None and f"observes the predictor sha256 {p.sha256}" in refused.model_error
    # and without the predictor to observe, the setting is refused
    with pytest.raises(ValueError, match=r"rl\.observePrediction is true but evolution\.predictor is not set"):
        goal(lead.symbol, sources=["genomes", "rl"], rl=rl)
