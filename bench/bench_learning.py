"""Learning, judged out of sample: the LSTM-Transformer, the ridge baseline, a PPO policy, the genomes.

On the bundled candles (``workloads/kubetrade/data/sample``: Binance spot BTC/USDT and ETH/USDT 1h,
2024-01-01 to 2024-09-07, MIT), the Goal's walk-forward windows (``kubetrade.engine.walkforward``:
4 out-of-sample windows of 8 % of the bars each, back to back at the end; each window's in-sample
part is the rolling stretch of bars before it).  In every window, everything below is fitted on
the in-sample bars only, with the same seed, and scored on the out-of-sample bars after it:

Prediction of the next bar's log return, per pair:

* **network** - the LSTM-Transformer (``kubetrade.prediction.learn.train_predictor``: one network
  for both pairs, early-stopped on the last 20 % of its in-sample rows), served from its ONNX file;
* **ridge** - the ridge regression of the next return on the last 16, refitted on the same bars;
* **no change** - predicting 0 (a random walk): its MSE is the mean squared return; it never calls
  a direction and its strategy never trades (cash).

Per predictor: MSE, skill against no change (1 - MSE / MSE of 0), direction accuracy (bars that
moved), and the return after costs (0.1 % fee, 0.02 % slippage per side) of a simple strategy in
the backtest kernel: long while the prediction exceeds the round-trip cost, flat when it turns
negative (``cost_aware``); and the same with an entry threshold of 0 (``sign``).

Trading, per window, after the same costs:

* **rl** - a PPO policy (``kubetrade.learning.training.train_policy``: spot, long or flat, window 8,
  no predictor input), trained on the in-sample bars, its greedy policy (as ONNX, the ``policy``
  indicator) traded by the policy genome on the window; **rl_prediction** - the same, observing
  also that window's network's prediction;
* **top_genome** - the search's best survivor of that window (NSGA-II, population 200, 8
  generations on the same in-sample bars) - what an ungated autopilot would pick;
* **gated** - the candidates that pass the paper gate with its default thresholds, each on every
  window it was scored on (often none);
* **cash** (0) and **buy_and_hold** (both pairs in equal parts).

Each RL row's pooled evidence goes through the same paper gate (trials: every PPO iteration's
policy, all windows; no PBO is measured for PPO here, which that gate counts as a failure of its own).

**goal** - the Goal path itself (``kubetrade.goalevolution.goalrun.run_goal_evolution`` with
``spec.evolution.sources: [genomes, rl]``, both pairs, the same windows, population and seed): what
a Goal's training job would decide - per source, trials, candidates and passes; every policy
candidate's window, deflated Sharpe ratio, PBO over its checkpoints, out-of-sample return and
failures; the best genome's figures beside them.

**goal_predictor** - the Goal path with ``spec.evolution.predictor`` (the network's sizes above) against the
same Goal without it, genomes only, same windows, population and seed: the predictor is trained once on
the bars before window 0's search validation part and validated on those up to the first out-of-sample
window; reported: its training window, validation skill against no change and direction accuracy, how
many candidates use the prediction and how many of them pass, and the best figures of each run.
It reports; it is not a target to tune the models to.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

TIMEFRAME = "1h"
PAIRS = ("BTC/USDT", "ETH/USDT")
WINDOWS = 4
OOS_FRACTION = 0.08
POPULATION = 200
GENERATIONS = 8
SEED = 2025
NET = {"window": 32, "hidden": 16, "heads": 2, "layers": 1, "ffn": 32, "epochs": 12, "batch": 256,
       "patience": 3}
PPO = {"hidden": 64, "iterations": 16, "envs": 16, "steps": 256, "epochs": 4, "minibatch": 512, "patience": 6}
POLICY_WINDOW = 8
GOAL_RL = {"timesteps": 65_536, "checkpoints": 16, "hidden": 64}
GOAL_PREDICTOR = {"window": NET["window"], "hidden": NET["hidden"], "heads": NET["heads"], "layers": NET["layers"],
                  "epochs": NET["epochs"]}


def _goal_data() -> tuple[dict[str, Any], int]:
    from kubetrade.candles import load_csv
    from kubetrade.data import SAMPLE_DIR
    from kubetrade.engine import genes

    data = {p: load_csv(SAMPLE_DIR / f"{p.replace('/', '_')}-{TIMEFRAME}.csv.gz", symbol=p, timeframe=TIMEFRAME)
            for p in PAIRS}
    first = max(int(c.time[0]) for c in data.values())
    last = min(int(c.time[-1]) for c in data.values())
    return data, int((last - first) / 86_400_000 - genes.warmup() / 24) - 1


def _goal_spec(days: int, **evolution: Any) -> Any:
    from kubetrade.resources.goal import GoalSpec

    return GoalSpec.model_validate({
        "target": {"capital": {"amount": 10_000}, "returnPct": 0.05}, "riskPolicyRef": {"name": "default"},
        "evolution": {"symbols": list(PAIRS), "timeframe": TIMEFRAME, "population": POPULATION,
                      "generations": GENERATIONS, "backtestDays": days, "minTrades": 10, "paperFraction": 1.0,
                      "maxPaper": 10, "seed": SEED,
                      "walkForward": {"windows": WINDOWS, "outOfSampleFraction": OOS_FRACTION}, **evolution}})


def _evidence_row(e: Any) -> dict[str, Any]:
    return {"window": e.chosen_in_window, "passed": e.passed, "dsr": round(e.deflated_sharpe, 4),
            "pbo": None if e.pbo is None else round(e.pbo, 3), "oos_return": round(e.oos_return_pct, 4),
            "benchmark": round(e.benchmark_return_pct, 4), "trades": e.trades, "failures": e.failures}


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def goal_predictor_side() -> dict[str, Any]:
    """The Goal with and without spec.evolution.predictor, genomes only, the same seed (module docstring)."""
    from kubetrade.goalevolution.goalrun import run_goal_evolution
    from kubetrade.prediction.model import uses

    data, days = _goal_data()
    out: dict[str, Any] = {"days": days, "predictor_settings": GOAL_PREDICTOR}
    for label, extra in (("without", {}), ("with", {"predictor": GOAL_PREDICTOR})):
        started = time.monotonic()
        run = run_goal_evolution("bench", _goal_spec(days, **extra), data, seed=SEED,
                                 progress=lambda done, total, msg, label=label: say(f"goal {label} predictor: {msg}"))
        using = [r for r in run.ranked if uses(r.genome, "prediction")]
        sel = run.selection
        row: dict[str, Any] = {
            "seconds": round(time.monotonic() - started, 1), "message": sel.message, "trials": sel.trials,
            "candidates": sel.candidates, "passed": sel.passed,
            "best": _evidence_row(run.ranked[0].evidence) if run.ranked else None,
            "prediction_candidates": len(using),
            "best_prediction_genome": _evidence_row(using[0].evidence) if using else None,
            "prediction_candidates_positive_oos": sum(1 for r in using if r.evidence.oos_return_pct > 0),
            "other_candidates_positive_oos": sum(1 for r in run.ranked if r not in using
                                                 and r.evidence.oos_return_pct > 0),
            "mean_oos_return": {
                "prediction": _mean([r.evidence.oos_return_pct for r in using]),
                "other": _mean([r.evidence.oos_return_pct for r in run.ranked if r not in using])}}
        if sel.predictor is not None and run.predictor is not None:
            row["predictor"] = sel.predictor.to_k8s() | {
                "validation": run.predictor.metrics["validation"],
                "training": {k: run.predictor.metrics["training"][k] for k in ("best_epoch", "epochs_run",
                                                                                "seconds")}}
        out[label] = row
    return out


def goal_side() -> dict[str, Any]:
    """The Goal's own run, genomes and PPO policies in one selection (see the module docstring)."""
    from kubetrade.goalevolution.goalrun import run_goal_evolution

    data, days = _goal_data()
    spec = _goal_spec(days, sources=["genomes", "rl"], rl=GOAL_RL)
    started = time.monotonic()
    run = run_goal_evolution("bench", spec, data, seed=SEED,
                             progress=lambda done, total, msg: say(f"goal: {msg}"))
    row = _evidence_row

    genomes = [r.evidence for r in run.ranked if r.evidence.source == "genomes"]
    return {"days": days, "seconds": round(time.monotonic() - started, 1), "message": run.selection.message,
            "sources": [c.to_k8s() for c in run.selection.sources], "trials": run.selection.trials,
            "policies": [row(r.evidence) for r in run.ranked if r.evidence.source == "rl"],
            "best_genome": row(genomes[0]) if genomes else None}


def side(timeframe: str) -> dict[str, Any]:
    import numpy as np

    from kubetrade.candles import load_csv
    from kubetrade.data import SAMPLE_DIR
    from kubetrade.engine.evolve import EvolveConfig, Features
    from kubetrade.engine.runs import Costs, backtest
    from kubetrade.engine.templates import ema_cross
    from kubetrade.engine.walkforward import Candidate, WalkForwardConfig, _evidence, _Scorer, align, walk_forward
    from kubetrade.learning import ppo, training
    from kubetrade.lifecycle.gates import judged, paper_gate
    from kubetrade.prediction import learn, model
    from kubetrade.prediction.network import NetConfig
    from kubetrade.resources.goal import SelectionGates
    from kubetrade.resources.strategy import ModelReference

    data = [load_csv(SAMPLE_DIR / f"{s.replace('/', '_')}-{timeframe}.csv.gz", symbol=s, timeframe=timeframe)
            for s in PAIRS]
    backtest(ema_cross(), data[0].slice(0, 2000), Costs())  # kernels loaded before the clock starts
    costs = Costs(fee=0.001, slippage=0.0002)
    cfg = EvolveConfig(population=POPULATION, generations=GENERATIONS, seed=SEED, min_trades=20, costs=costs)
    wf = WalkForwardConfig(windows=WINDOWS, oos_fraction=OOS_FRACTION, blocks=16)
    t0 = time.perf_counter()
    result = walk_forward(data, cfg, wf)
    search_s = time.perf_counter() - t0
    say(f"walk-forward search {search_s:.0f} s")
    gates = SelectionGates()
    evidence = {k: judged(e, gates) for k, e in result.evidence.items()}
    passed = [k for k, e in evidence.items() if e.passed]
    offsets = align(data)[2]

    def mean_return(sc: dict[str, Any]) -> float:
        return float(np.mean([m.total_return for m in sc.values()]))

    per_window: list[dict[str, Any]] = []
    rl = Candidate("rl", model.policy_genome(), 0)
    rl_pred = Candidate("rl_prediction", model.policy_genome(), 0)
    rl_trials = {"rl": 0, "rl_prediction": 0}
    net_s = rl_s = 0.0
    for wr in result.windows:
        w = wr.window
        bounds = [(w.oos_start + off, w.oos_end + off) for off in offsets]
        row: dict[str, Any] = {"oos": f"{_day(wr.oos_from)}..{_day(wr.oos_to)}",
                               "in_sample_bars": w.is_end - w.is_start}
        # --- prediction: the network and the ridge fitted on this window's in-sample bars -----------------
        t1 = time.perf_counter()
        trained = learn.train_predictor(data, NetConfig(**NET, seed=SEED + w.index), since_ms=wr.is_from,
                                        until_ms=wr.is_to)
        net_s += time.perf_counter() - t1
        train_sets = [c.slice(int(np.searchsorted(c.time, wr.is_from)), len(c)) for c in data]
        skills: dict[str, list[Any]] = {"network": [], "ridge": []}
        for c in data:
            a, b = int(np.searchsorted(c.time, wr.oos_from)), int(np.searchsorted(c.time, wr.oos_to))
            skills["network"].append(learn.evaluate(learn.onnx_series(trained.onnx, c), c, a, b, 1,
                                                    costs.fee, costs.slippage))
            skills["ridge"].append(learn.evaluate(learn.ridge_series(train_sets, wr.is_to, c), c, a, b, 1,
                                                  costs.fee, costs.slippage))
        for name, sk in skills.items():
            row[name] = {"mse": float(np.mean([s.mse for s in sk])),
                         "skill_vs_zero": float(np.mean([s.skill_vs_zero for s in sk])),
                         "direction": float(np.mean([s.direction_accuracy for s in sk])),
                         "cost_aware_return": float(np.mean([s.strategy_return for s in sk])),
                         "cost_aware_trades": int(sum(s.strategy_trades for s in sk)),
                         "sign_return": float(np.mean([s.extra["strategy_return_sign"] for s in sk])),
                         "sign_trades": int(sum(s.extra["strategy_trades_sign"] for s in sk)),
                         "best_epoch": (f"{trained.result.best_epoch + 1}/{len(trained.result.history)}"
                                        if name == "network" else None)}
            say(f"window {w.index}: {name} skill {row[name]['skill_vs_zero']:+.4f} direction "
                f"{row[name]['direction']:.4f} cost-aware {row[name]['cost_aware_return']:+.4f}")
        row["no_change"] = {"mse": float(np.mean([s.mse_zero for s in skills["network"]])), "skill_vs_zero": 0.0,
                            "direction": None, "cost_aware_return": 0.0, "sign_return": 0.0}
        # --- trading: PPO policies trained on the same in-sample bars, traded as the runner trades them -----
        predictor = model.from_bytes(trained.onnx, "network", ModelReference(uri="memory"))
        for name, cand, pred_in in (("rl", rl, None), ("rl_prediction", rl_pred, predictor)):
            t2 = time.perf_counter()
            policy = training.train_policy(data, ppo.PPOConfig(**PPO, seed=SEED + w.index), window=POLICY_WINDOW,
                                           since_ms=wr.is_from, until_ms=wr.is_to, predictor=pred_in, costs=costs)
            rl_s += time.perf_counter() - t2
            rl_trials[name] += len(policy.result.checkpoints)
            model.unbind()
            model.bind_policy(model.from_bytes(policy.onnx, "policy", ModelReference(uri="memory"), "policy"),
                              pred_in)
            (cand.scores[w.index],) = _Scorer(data, Features(data), cfg).run([cand.genome], bounds)
            model.unbind()
            hist = policy.result.history
            row[name] = {"return": mean_return(cand.scores[w.index]),
                         "trades": sum(m.trades for m in cand.scores[w.index].values()),
                         "best_iteration": policy.result.best_iteration, "iterations_run": len(hist),
                         "validation": max(h["validation"] for h in hist)}
            say(f"window {w.index}: {name} {row[name]['return']:+.4f} ({row[name]['trades']} trades), "
                f"validation {row[name]['validation']:+.4f}")
        top = wr.chosen[0] if wr.chosen else None
        row["top_genome"] = ({"return": mean_return(result.candidates[top].scores[w.index]),
                              "trades": sum(m.trades for m in result.candidates[top].scores[w.index].values())}
                             if top else None)
        gated = [mean_return(result.candidates[k].scores[w.index]) for k in passed
                 if w.index in result.candidates[k].scores]
        row["gated"] = float(np.mean(gated)) if gated else None
        row["cash"] = 0.0
        row["buy_and_hold"] = wr.benchmark_return
        row["pbo"] = wr.pbo.pbo if wr.pbo is not None else None
        per_window.append(row)

    # _evidence takes the PBO of the search that chose a candidate; PPO has none measured (not the genomes')
    rl_ev = {n: judged(_evidence(c, result.windows, rl_trials[n], data[0].bars_per_year, wf.benchmark)
                       .model_copy(update={"pbo": None}), gates)
             for n, c in (("rl", rl), ("rl_prediction", rl_pred))}
    best = max(evidence.values(), key=lambda e: e.deflated_sharpe) if evidence else None
    best_passed = max((evidence[k] for k in passed), key=lambda e: e.deflated_sharpe) if passed else None

    def over_windows(get: Any) -> dict[str, Any]:
        vals = [get(r) for r in per_window]
        vals = [v for v in vals if v is not None]
        if not vals:
            return {"windows": 0}
        return {"mean": round(float(np.mean(vals)), 6), "positive": f"{sum(v > 0 for v in vals)}/{len(vals)}",
                "per_window": [round(v, 6) for v in vals]}

    out: dict[str, Any] = {
        "timeframe": timeframe,
        "bars_per_pair": len(data[0]),
        "oos_windows": [r["oos"] for r in per_window],
        "in_sample_bars": [r["in_sample_bars"] for r in per_window],
    }
    for name in ("network", "ridge", "no_change"):
        out[f"{name}_mse"] = f"{np.mean([r[name]['mse'] for r in per_window]):.5e}"
        out[f"{name}_skill_vs_zero"] = over_windows(lambda r, n=name: r[n]["skill_vs_zero"])
        if name != "no_change":
            out[f"{name}_direction"] = over_windows(lambda r, n=name: r[n]["direction"])
            out[f"{name}_cost_aware_return"] = over_windows(lambda r, n=name: r[n]["cost_aware_return"])
            out[f"{name}_cost_aware_trades"] = sum(r[name]["cost_aware_trades"] for r in per_window)
            out[f"{name}_sign_return"] = over_windows(lambda r, n=name: r[n]["sign_return"])
            out[f"{name}_sign_trades"] = sum(r[name]["sign_trades"] for r in per_window)
    out["network_best_epochs"] = [r["network"]["best_epoch"] for r in per_window]
    for n in ("rl", "rl_prediction"):
        ev = rl_ev[n]
        out[f"{n}_return"] = over_windows(lambda r, n=n: r[n]["return"])
        out[f"{n}_trades"] = [r[n]["trades"] for r in per_window]
        out[f"{n}_validation"] = [round(r[n]["validation"], 4) for r in per_window]
        out[f"{n}_best_iterations"] = [f"{r[n]['best_iteration']}/{r[n]['iterations_run']}" for r in per_window]
        out[f"{n}_gate"] = {"passed": ev.passed, "dsr": round(ev.deflated_sharpe, 3),
                            "oos_return": round(ev.oos_return_pct, 4), "sharpe": round(ev.sharpe, 2),
                            "trials": rl_trials[n], "failures": ev.failures}
    out["top_genome_return"] = over_windows(lambda r: r["top_genome"]["return"] if r["top_genome"] else None)
    out["top_genome_trades"] = [r["top_genome"]["trades"] if r["top_genome"] else None for r in per_window]
    out["gated_return"] = over_windows(lambda r: r["gated"])
    out["cash_return"] = over_windows(lambda r: r["cash"])
    out["buy_and_hold_return"] = over_windows(lambda r: r["buy_and_hold"])
    out["genome_trials"] = result.trials
    out["genome_candidates"] = len(evidence)
    out["genome_passed"] = len(passed)
    out["genome_best_dsr"] = round(best.deflated_sharpe, 3) if best else None
    out["genome_best_passed"] = ({"dsr": round(best_passed.deflated_sharpe, 3),
                                  "oos_return": round(best_passed.oos_return_pct, 4)} if best_passed else None)
    out["genome_best_failures"] = (paper_gate(best, gates).failures if best and not best.passed else [])
    out["pbo_per_window"] = [round(p, 2) for p in result.pbos]
    out["search_seconds"] = round(search_s, 1)
    out["network_seconds"] = round(net_s, 1)
    out["rl_seconds"] = round(rl_s, 1)
    out["sizes"] = {"net": NET, "ppo": PPO, "policy_window": POLICY_WINDOW, "population": POPULATION,
                    "generations": GENERATIONS, "network_params": _params(trained.result.params)}
    return out


def say(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _params(tree: Any) -> int:
    import jax

    return int(sum(math.prod(getattr(x, "shape", ())) for x in jax.tree_util.tree_leaves(tree)))


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def run() -> dict[str, Any]:
    import os
    from pathlib import Path

    from _child import run_child

    out: dict[str, Any] = {"windows": WINDOWS, "oos_fraction": OOS_FRACTION, "seed": SEED,
                           "cores": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)}
    res, mb = run_child(Path(__file__), TIMEFRAME)
    out.update(res)
    out["peak_mb"] = round(mb)
    goal, goal_mb = run_child(Path(__file__), "goal")
    out["goal"] = goal | {"peak_mb": round(goal_mb)}
    predicted, predicted_mb = run_child(Path(__file__), "goal-predictor")
    out["goal_predictor"] = predicted | {"peak_mb": round(predicted_mb)}
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    sides = {"goal": goal_side, "goal-predictor": goal_predictor_side}
    print(json.dumps(sides[sys.argv[1]]() if sys.argv[1] in sides else side(sys.argv[1])))
