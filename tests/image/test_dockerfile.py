"""The Dockerfile describes the images scripts/image/build.sh makes (there is no Docker here to build it).

Target ``kubetrade`` (the default) and build.sh's kubetrade image run one build step,
scripts/image/kubetrade/install.sh, on Debian bookworm slim; target ``train`` and build.sh's train
image run scripts/image/train/install.sh on the kubetrade image.  What only the Dockerfile can say
(ENV, USER, ENTRYPOINT, CMD, LABEL) must equal the config build.sh writes (scripts/image/NAME/config.json),
so a Docker build and this machine's build run alike.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return [instructions[a:b] for a, b in zip(starts, [*starts[1:], len(instructions)], strict=True)]


def _stage(name: str) -> list[tuple[str, str]]:
    """The stage ``FROM ... AS name``."""
    stages = _stages(_instructions((REPO / "Dockerfile").read_text()))
    found = [s for s in stages if s[0][1].split()[-2:] == ["AS", name]]
    assert len(found) == 1, f"no stage {name}"
    return found[0]


def _pairs(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


def _config(*stages: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str], dict[str, object]]:
    """ENV, LABEL and USER/ENTRYPOINT/CMD of an image made of these stages (a stage inherits its base's)."""
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    cfg: dict[str, object] = {}
    for word, args in (instruction for stage in stages for instruction in stage):
        if word == "ENV":
            env.update(_pairs(args))
        elif word == "LABEL":
            labels.update(_pairs(args))
        elif word == "USER":
            cfg["User"] = args
        elif word in ("ENTRYPOINT", "CMD"):
            cfg[word.capitalize() if word == "CMD" else "Entrypoint"] = json.loads(args)
    return env, labels, cfg


def _want(name: str) -> tuple[dict[str, str], dict[str, str], dict[str, object]]:
    want = json.loads((REPO / "scripts" / "image" / name / "config.json").read_text())["config"]
    return (dict(item.split("=", 1) for item in want["Env"]), want["Labels"],
            {"User": want["User"], "Entrypoint": want["Entrypoint"], "Cmd": want["Cmd"]})


def test_kubetrade_stage_config_equals_build_sh_config() -> None:
    stage = _stage("kubetrade")
    assert stage[0] == ("FROM", "debian:bookworm-slim AS kubetrade")
    assert _config(stage) == _want("kubetrade")


def test_train_stage_config_equals_build_sh_config() -> None:
    """The train target is the kubetrade stage plus its own step: its config is kubetrade's, its own title,
    and it runs as 10001 again after its root-only RUN."""
    stage = _stage("train")
    assert stage[0] == ("FROM", "kubetrade AS train")
    assert _config(_stage("kubetrade"), stage) == _want("train")
    assert [args for word, args in stage if word == "USER"][-1] == "10001:10001"


def test_the_default_target_is_the_kubetrade_image() -> None:
    """docker build . (no --target) builds the last stage: kubetrade itself, nothing added."""
    last = _stages(_instructions((REPO / "Dockerfile").read_text()))[-1]
    assert last == [("FROM", "kubetrade")]


def test_kubetrade_stage_runs_the_same_install_step_on_the_same_inputs() -> None:
    stage = _stage("kubetrade")
    runs = [args for word, args in stage if word == "RUN"]
    assert len(runs) == 1, "one build step, like build.sh's one layer"
    run = runs[0]
    mounts = dict(re.findall(r"source=(\S+?),target=(\S+)", run))
    assert mounts["scripts/image/kubetrade/install.sh"] == "/tmp/kubetrade-build/install.sh"
    assert mounts["requirements/runtime.lock"] == "/tmp/kubetrade-build/runtime.lock"
    assert "sh /tmp/kubetrade-build/install.sh" in run
    # no COPY into the final stage: nothing but install.sh's output reaches the image
    assert not [word for word, _ in stage if word in ("COPY", "ADD")]
    # build.sh passes install.sh the same inputs at the same paths
    build = (REPO / "scripts" / "image" / "build.sh").read_text()
    assert "BUILD=/tmp/kubetrade-build" in build and "runtime.lock" in build
    assert 'run_on_base "$tmp/stage" "$here/kubetrade/install.sh"' in build


def test_train_stage_runs_the_same_install_step_on_the_same_inputs() -> None:
    stage = _stage("train")
    runs = [args for word, args in stage if word == "RUN"]
    assert len(runs) == 1, "one build step, like build.sh's one extra layer"
    mounts = dict(re.findall(r"source=(\S+?),target=(\S+)", runs[0]))
    assert mounts == {"scripts/image/train/install.sh": "/tmp/kubetrade-build/install.sh",
                      "requirements/train.lock": "/tmp/kubetrade-build/train.lock",
                      "/tools/bin/uv": "/tmp/kubetrade-build/uv"}
    assert "sh /tmp/kubetrade-build/install.sh" in runs[0]
    assert not [word for word, _ in stage if word in ("COPY", "ADD")]
    build = (REPO / "scripts" / "image" / "build.sh").read_text()
    assert 'run_on_lower "$kt/upper:$BASE/rootfs" "$tmp/stage" "$here/train/install.sh" "$tmp/in/train.lock"' in build
