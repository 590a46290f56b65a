"""The layers of docs/architecture.md hold: import-linter's contracts pass on the real tree, a
layer break is reported (so the check can fail), and no private name crosses a module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "kubetrade": ROOT / "workloads" / "kubetrade",
    "kubetrade_operator": ROOT / "operator" / "kubetrade_operator",
    "kubetrade_testbed": ROOT / "testbed" / "kubetrade_testbed",
}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.is_file() else [shutil.which("lint-imports") or "lint-imports"]
    return subprocess.run([*command, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_are_kept() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "BROKEN" not in done.stdout


def test_a_layer_break_is_reported(tmp_path: Path) -> None:
    """The same configuration on a copy of the tree with one import that breaks a layer."""
    for name in ("workloads", "operator", "testbed"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info",
                                                                                  "node_modules"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    breaker = tmp_path / "workloads" / "kubetrade" / "risk" / "breaker.py"
    breaker.write_text(breaker.read_text() + "\nfrom kubetrade.executor import venues  # noqa: E402,F401\n")
    env_path = [str(tmp_path / "workloads"), str(tmp_path / "operator"), str(tmp_path / "testbed")]
    exe = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(exe), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "kubetrade.risk.breaker -> kubetrade.executor.venues" in done.stdout


def test_no_private_name_crosses_a_module() -> None:
    found = []
    for root in PACKAGES.values():
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            modules: set[str] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {node.module}.{alias.name}")
                        modules.add(alias.asname or alias.name)
                elif isinstance(node, ast.Import):
                    modules |= {(a.asname or a.name).split(".")[0] for a in node.names
                                if a.name.split(".")[0] in PACKAGES}
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                        and node.attr.startswith("_") and not node.attr.startswith("__")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: reads {node.value.id}.{node.attr}")
    assert found == []


# Where an in-project import may stand inside a function, and why (docs/architecture.md).
LATE_IMPORTS = {
    "commands.py": "the CLI builds every parser; a subcommand imports its role only when it runs",
    "kubetrade/cli.py": "the same, for the roles' metrics and tracing",
    "kubetrade/collector/runtime.py": "a collector imports its own source's code only (ccxt takes seconds)",
    "kubetrade/runner/config.py": "onnxruntime only for a genome that uses the prediction indicator",
    "kubetrade/engine/indicators.py": "numba kernels load on first use",
    "kubetrade/engine/__init__.py": "warmup loads every kernel, after the cache seed",
    "kubetrade/engine/warmcache.py": "the cache seed is copied before any kernel loads",
    "kubetrade_operator/main.py": "the webhook's server only when the webhook is served",
    "kubetrade/validation/semantic.py": "the engine (numba kernels) only when a Strategy's genome is compiled",
    "kubetrade/api/__init__.py": "create_app (FastAPI, every router) on first use: --help 3.7-4.8 s -> 2.2-2.6 s",
    "kubetrade/engine/htmlreport.py": "candle files (pyarrow) only when a report embeds candles",
    "kubetrade/engine/results.py": "candle files (pyarrow) only when trades are exported",
    "kubetrade/download/fetch.py": "the candle store (psycopg) only when downloading into a database",
    "kubetrade/runner/runner.py": "a runner whose genome streams imports no numpy, numba or psycopg (its database "
                                  "work runs in runner/dbwork.py's process): 225 -> 46 MB RSS (bench runner_footprint)",
    "kubetrade/engine/compile.py": "alternative data (numpy) only where features are built, so compile_tables "
                                   "stays numpy-free for the streaming runner",
    "kubetrade/goalevolution/goalrun.py": "PPO (kubetrade.learning: JAX) only for a Goal whose sources include rl; "
                                          "the runtime image, which runs the other Goals' evolution, has no JAX",
}


def test_in_project_imports_stand_at_the_top_unless_a_reason_is_written() -> None:
    late = []
    for root in PACKAGES.values():
        for path in sorted(root.rglob("*.py")):
            rel = str(path.relative_to(root.parent))
            if any(rel.endswith(key) for key in LATE_IMPORTS):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for inner in ast.walk(node):
                    names = ([inner.module] if isinstance(inner, ast.ImportFrom) and inner.module
                             else [a.name for a in inner.names] if isinstance(inner, ast.Import) else [])
                    if any(n.split(".")[0] in PACKAGES for n in names):
                        late.append(f"{rel}:{inner.lineno} in {node.name}()")
    assert late == []
