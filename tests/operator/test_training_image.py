"""An operator with no training image (chart value image.train.repository set empty, so KUBETRADE_TRAIN_IMAGE="")
and Goals that train a model (RL policies, or the LSTM-Transformer predictor)."""

from __future__ import annotations

import json

from kubetrade_testbed.operator import OperatorProcess
from tests.operator.conftest import install_evolution_role, wait_status
from tests.operator.test_reconcile import apply, example


def test_without_a_training_image_a_goal_asking_for_rl_is_refused(kube, namespace, nats_url, tmp_path) -> None:
    install_evolution_role(kube)
    op = OperatorProcess(kube.kubeconfig, nats_url, tmp_path / "operator", webhook=False,
                         env={"KUBETRADE_TRAIN_IMAGE": ""})
    op.start()
    try:
        goal = example("goal.yaml")
        goal["metadata"]["name"] = "no-trainer"
        goal["spec"]["evolution"]["sources"] = ["rl"]
        apply(kube, namespace, example("riskpolicy.yaml"), goal)
        body = wait_status(kube, "goal", "no-trainer", namespace,
                           lambda s, _: any(c["type"] == "Ready" for c in s.get("conditions") or []))
        ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "NoTrainingImage")
        assert ready["message"].startswith("spec.evolution trains PPO policies (sources: rl), but the operator has "
                                           "no training image (chart value image.train.repository"), ready
        assert "cronJob" not in body["status"]
        assert kube.kubectl("get", "cronjob", "evolve-no-trainer", "-n", namespace, check=False).returncode != 0
        events = json.loads(kube.kubectl("get", "events", "-n", namespace, "--field-selector",
                                         "involvedObject.name=no-trainer", "-o", "json").stdout)["items"]
        assert [(e["type"], e["reason"]) for e in events] == [("Warning", "NoTrainingImage")]
        # a predictor is trained in the evolution job too: refused the same way, saying so
        predicts = example("goal.yaml")
        predicts["metadata"]["name"] = "no-trainer-predictor"
        predicts["spec"]["evolution"]["predictor"] = {"epochs": 4}
        apply(kube, namespace, predicts)
        body = wait_status(kube, "goal", "no-trainer-predictor", namespace,
                           lambda s, _: any(c["type"] == "Ready" for c in s.get("conditions") or []))
        ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "NoTrainingImage")
        assert ready["message"].startswith("spec.evolution trains the LSTM-Transformer predictor (predictor), but "
                                           "the operator has no training image"), ready
        assert "cronJob" not in body["status"]
        # the same operator schedules a genomes-only Goal as before
        plain = example("goal.yaml")
        plain["metadata"]["name"] = "genomes-only"
        apply(kube, namespace, plain)
        wait_status(kube, "goal", "genomes-only", namespace, lambda s, _: s.get("cronJob") == "evolve-genomes-only")
    finally:
        op.stop()
