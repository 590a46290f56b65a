"""The Dockerfile describes the image scripts/image/build.sh makes (there is no Docker here to build it).

Both run one build step, scripts/image/kubetrade/install.sh, on Debian bookworm slim; what only
the Dockerfile can say (ENV, USER, ENTRYPOINT, CMD, LABEL) must equal the config build.sh writes
(scripts/image/kubetrade/config.json), so a Docker build and this machine's build run alike.
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


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    start = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[start:]


def _pairs(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


def test_final_stage_config_equals_build_sh_config() -> None:
    stage = _final_stage(_instructions((REPO / "Dockerfile").read_text()))
    assert stage[0] == ("FROM", "debian:bookworm-slim")
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    cfg: dict[str, object] = {}
    for word, args in stage:
        if word == "ENV":
            env.update(_pairs(args))
        elif word == "LABEL":
            labels.update(_pairs(args))
        elif word == "USER":
            cfg["User"] = args
        elif word in ("ENTRYPOINT", "CMD"):
            cfg[word.capitalize() if word == "CMD" else "Entrypoint"] = json.loads(args)
    want = json.loads((REPO / "scripts" / "image" / "kubetrade" / "config.json").read_text())["config"]
    assert env == dict(item.split("=", 1) for item in want["Env"])
    assert labels == want["Labels"]
    assert cfg == {"User": want["User"], "Entrypoint": want["Entrypoint"], "Cmd": want["Cmd"]}


def test_final_stage_runs_the_same_install_step_on_the_same_inputs() -> None:
    stage = _final_stage(_instructions((REPO / "Dockerfile").read_text()))
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
