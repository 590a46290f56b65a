"""What a Goal's evolution run leaves behind, wherever it ran.

The Goal's CronJob (``kubetrade goal-evolution``, through the kube-apiserver) and ``kubetrade up``
(through its local store) record a :class:`~kubetrade.goalevolution.goalrun.GoalRun` the same way:
the run and every candidate's evidence and verdict in PostgreSQL (:func:`store`), then the
candidates that passed as paper Strategy resources owned by the Goal, their out-of-sample evidence
in ``status.evidence``, and the Goal's ``status.lastEvolution`` / ``lastSelection`` (:func:`record`).
The Event that says what the gates decided is :meth:`GoalRun.event`; each caller writes it where
its cluster keeps Events.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from kubetrade.cluster.seam import Conflict, ResourceStore
from kubetrade.engine.publish import Candidate, store_selection
from kubetrade.goalevolution.goalrun import GoalRun, PublishedModel
from kubetrade.prediction import registry


def store(dsn: str, run: GoalRun, started: datetime, goal: str) -> None:
    """The run's predictor (``registry://<goal>-predictor``, what its prediction genomes' ``spec.model`` names) and
    every RL candidate's policy (under its Strategy's name, the ``registry://`` its ``spec.policy`` names) into the
    model store, then the run and every candidate (passed or not) with its evidence, into
    ``evolution_runs/results``."""
    models: list[PublishedModel] = [run.predictor] if run.predictor is not None else []
    for m in [*models, *run.policies.values()]:
        registry.store(dsn, m.name, m.onnx, kind=m.kind, features=m.features,
                       train_from=m.train_from, train_to=m.train_to, metrics=m.metrics, config=m.config)
    walk = replace(run.walk, trials=run.selection.trials)  # the genomes tried and the PPO checkpoints evaluated
    store_selection(dsn, run.run_id, started, walk, run.config, run.data,
                    [Candidate(r.rank, r.genome if r.genome is not None else run.walk.candidates[r.key].genome,
                               r.evidence, r.strategy) for r in run.ranked],
                    goal=goal)


def owned(strategy: dict[str, Any], goal: dict[str, Any]) -> dict[str, Any]:
    """``strategy`` in the Goal's namespace, owned by the Goal (deleting the Goal deletes it)."""
    meta = strategy.setdefault("metadata", {})
    meta["ownerReferences"] = [{"apiVersion": goal["apiVersion"], "kind": "Goal", "name": goal["metadata"]["name"],
                                "uid": goal["metadata"]["uid"], "blockOwnerDeletion": True}]
    meta["namespace"] = goal["metadata"]["namespace"]
    return strategy


async def record(resources: ResourceStore, goal: dict[str, Any], run: GoalRun) -> list[str]:
    """Create the Strategies that passed and set the Goal's status; the names created.

    A Strategy of that name that exists already is left as it is (a rerun of the same search).
    """
    namespace, name = goal["metadata"]["namespace"], goal["metadata"]["name"]
    created: list[str] = []
    for st in run.strategies:
        body = owned(st.to_k8s(), goal)
        status = body.pop("status", None) or {}
        try:
            await resources.create("strategies", namespace, body)
        except Conflict:
            continue
        await resources.patch_status("strategies", namespace, st.metadata["name"],
                                     {"backtest": status.get("backtest"), "evidence": status.get("evidence")})
        created.append(st.metadata["name"])
    await resources.patch_status("goals", namespace, name, run.goal_status())
    return created
