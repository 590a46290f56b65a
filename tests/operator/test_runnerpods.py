"""What a runner's pods say, read from pod statuses a real kubelet wrote (tests/operator/pods/,
captured by scripts/testbed/capture-pod-statuses.py on the real test node; see its README)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kubetrade_operator.runnerpods import FAULTS, runner_state

PODS = Path(__file__).with_name("pods")


def pod(name: str) -> dict[str, Any]:
    return json.loads((PODS / f"{name}.json").read_text())


# (fixture, reason, what the message must name)
CASES = [
    ("runner-image-never-pull--waiting", "ImageNotFound",
     ["image localhost/kubetrade:no-such-tag of container strategy-runner cannot be pulled",
      "is not present with pull policy of Never"]),
    ("runner-image-pull--errimagepull", "ImageNotFound",
     ["image registry.invalid/kubetrade:0.0.0 of container strategy-runner cannot be pulled",
      "lookup registry.invalid"]),
    ("runner-image-pull--backoff", "ImageNotFound",
     ["image registry.invalid/kubetrade:0.0.0 of container strategy-runner cannot be pulled",
      "lookup registry.invalid"]),
    ("runner-secret-missing--waiting", "SecretMissing",
     ["Secret capture/kt-db not found", "needed by KUBETRADE_DATABASE_URL of container strategy-runner"]),
    ("runner-secret-key-missing--waiting", "SecretMissing",
     ["Secret capture/kt-db-nokey has no key 'url'", "KUBETRADE_DATABASE_URL"]),
    ("configmap-missing--waiting", "ConfigMissing",
     ["ConfigMap capture/app-settings not found", "needed by SETTING of container main"]),
    ("runner-wrong-environment--terminated", "CrashLoop",
     ["container strategy-runner exited with code 2: Strategy capture/wrong-env: "
      "spec.mode is paper but this runner is deployed for live"]),
    ("runner-wrong-environment--backoff", "CrashLoop", ["exited with code 2", "deployed for live"]),
    ("runner-wrong-environment--restarted", "CrashLoop", ["exited with code 2", "deployed for live"]),
    ("runner-database-unreachable--backoff", "CrashLoop",
     ["exited with code 1: Strategy capture/db-down: database unreachable:", 'at "127.0.0.1", port 9 failed']),
    ("crash-logs-only--backoff", "CrashLoop",
     ["container main exited with code 3: starting | fatal: /etc/app/config.yaml: no such file"]),
    ("oomkilled--terminated", "OOMKilled",
     ["container main was killed for exceeding its memory limit of 32Mi (exit code 137)"]),
    ("oomkilled--backoff", "OOMKilled", ["memory limit of 32Mi"]),
    ("runner-unschedulable--pending", "Unschedulable", ["cannot be scheduled: 0/1 nodes are available",
                                                         "Insufficient memory"]),
    ("runner-nats-unreachable--running", "Starting", ["is starting (not ready yet)"]),
    ("ready-then-not--ready", "PodReady", ["runner pod flaky is ready"]),
    ("ready-then-not--not-ready", "NotReady", ["running but no longer ready"]),
]


def test_every_capture_is_classified() -> None:
    assert {c[0] for c in CASES} == {p.stem for p in PODS.glob("*.json")}


@pytest.mark.parametrize(("name", "reason", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_real_pod_status_says_why_the_runner_does_not_run(name: str, reason: str, says: list[str]) -> None:
    p = pod(name)
    state = runner_state([p])
    assert (state.reason, state.pod) == (reason, p["metadata"]["name"]), state
    for part in says:
        assert part in state.message, (part, state.message)
    assert state.fault == (reason in FAULTS) and state.ready == (reason == "PodReady")
    assert "\n" not in state.message and len(state.message) < 1400


def test_a_pull_error_and_its_back_off_say_the_same() -> None:
    """The kubelet alternates ErrImagePull and ImagePullBackOff: the condition must not flip with it
    (each flip would be a status write and an Event)."""
    pulled, backoff = (runner_state([pod(f"runner-image-pull--{m}")]) for m in ("errimagepull", "backoff"))
    assert pulled == backoff


def test_a_crash_loop_says_the_same_at_every_moment_of_it() -> None:
    """Exited, waiting in back-off, running again: one message, without counts or times."""
    said = {runner_state([pod(f"runner-wrong-environment--{m}")]).message
            for m in ("terminated", "backoff", "restarted")}
    assert len(said) == 1, said


def test_no_secret_value_reaches_the_message() -> None:
    for name, _, _ in CASES:
        assert "postgresql://" not in runner_state([pod(name)]).message


def test_the_newest_live_pod_speaks_for_the_runner() -> None:
    """During a Recreate rollout the old pod (being deleted) and the new one may both be listed."""
    old, new = pod("runner-secret-missing--waiting"), pod("ready-then-not--ready")
    old["metadata"]["deletionTimestamp"] = "2026-12-07T02:00:00Z"
    old["metadata"]["creationTimestamp"] = "2026-12-07T03:00:00Z"  # newer, but going away
    assert runner_state([old, new]).reason == "PodReady"
    assert runner_state([old]).reason == "NoPod"
    assert runner_state([]).reason == "NoPod"
    older = copy.deepcopy(new)
    older["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    older["metadata"]["name"] = "older"
    assert runner_state([older, pod("runner-unschedulable--pending")]).reason == "Unschedulable"


@pytest.mark.parametrize("broken", [{}, {"metadata": None, "status": None}, {"status": {"containerStatuses": [{}]}},
                                    {"status": {"containerStatuses": [{"state": {"waiting": {}}}]}},
                                    {"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}])
def test_a_pod_without_the_usual_fields_is_starting(broken: dict[str, Any]) -> None:
    assert runner_state([broken]).reason == "Starting"
