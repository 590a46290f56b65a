"""The kubetrade image as built (scripts/image/build.sh), read from its OCI archive and run with runc.

What a node would do with it, short of the node: the archive's digests and containerd's name, the
config the chart relies on (user 10001, entrypoint, numba variables), what is inside (exactly the
runtime lock, no dev tools, no test bed, no compiler) and the image run read-only as uid 10001:
the CLI, and a backtest of a bundled sample that must load every kernel from the image's numba
cache (NUMBA_DEBUG_CACHE shows each load; a compile would show a save).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubetrade_testbed.images import ImageArchive, OciImage, RuncContainer, layer_members

REPO = Path(__file__).resolve().parents[2]
SITE = "opt/kubetrade/venv/lib/python3.11/site-packages"
SAMPLE = f"/{SITE}/kubetrade/data/sample/BTC_USDT-1h.csv.gz"
Image = tuple[ImageArchive, OciImage, Path]

pytestmark = pytest.mark.slow


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_archive_is_an_oci_layout_containerd_names(kubetrade_image: Image) -> None:
    built, image, _ = kubetrade_image
    desc = image.index["manifests"][0]
    assert desc["annotations"]["io.containerd.image.name"] == built.reference
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == built.tag
    assert built.reference == f"{built.repository}:{built.tag}" and built.repository == "localhost/kubetrade"
    assert desc["digest"] == built.digest
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert image.config["architecture"] == "amd64" and image.config["os"] == "linux"
    assert [la["mediaType"] for la in image.manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 2
    assert built.compressed_size == sum(la["size"] for la in image.manifest["layers"])


def test_config_is_what_the_chart_runs(kubetrade_image: Image) -> None:
    _, image, _ = kubetrade_image
    cfg = image.runtime
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["kubetrade"]
    env = image.env
    assert env["NUMBA_CPU_NAME"] == "generic"
    assert env["NUMBA_CACHE_DIR"] == "/tmp/numba-cache"  # the writable emptyDir
    assert env["KUBETRADE_NUMBA_CACHE_SEED"] == "/opt/kubetrade/numba-cache"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/kubetrade/venv/bin:")


def test_user_10001_exists_without_a_home(kubetrade_image: Image) -> None:
    _, _, root = kubetrade_image
    entry = next(line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("kubetrade:"))
    assert entry.split(":")[2:4] == ["10001", "10001"]
    assert entry.endswith(":/nonexistent:/usr/sbin/nologin")


def _installed(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for info in (root / SITE).glob("*.dist-info"):
        meta = (info / "METADATA").read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", meta, re.M)
        version = re.search(r"^Version: (.+)$", meta, re.M)
        assert name and version, info
        out[_norm(name.group(1).strip())] = version.group(1).strip()
    return out


def test_holds_exactly_the_runtime_lock(kubetrade_image: Image) -> None:
    _, _, root = kubetrade_image
    lock = {}
    for line in (REPO / "requirements" / "runtime.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            lock[_norm(m.group(1))] = m.group(2)
    installed = _installed(root)
    assert installed.pop("kubetrade") == "0.1.0"
    assert installed == lock
    for dev in ("pytest", "vectorbt", "mypy", "ruff", "schemathesis", "hypothesis", "onnx", "kubetrade-testbed",
                "jax", "jaxlib", "optax", "gymnasium"):  # the training libraries are the train image's
        assert dev not in installed
    assert not (root / SITE / "kubetrade_testbed").exists()
    assert not list((root / SITE).glob("**/tests/test_*.py")), "packages' test suites left in the image"


def test_holds_exactly_this_checkouts_sources(kubetrade_image: Image) -> None:
    """kubetrade's and the operator's modules in the image are the repository's, no more, no fewer."""
    import hashlib

    _, _, root = kubetrade_image

    def sources(top: Path) -> dict[str, str]:
        return {
            str(p.relative_to(top)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in top.rglob("*.py")
            if "__pycache__" not in p.parts
        }

    for package, src in (("kubetrade", REPO / "workloads"), ("kubetrade_operator", REPO / "operator")):
        image = sources(root / SITE / package)
        repo = sources(src / package)
        assert image.keys() == repo.keys(), (
            sorted(image.keys() - repo.keys())[:10],
            sorted(repo.keys() - image.keys())[:10],
        )
        assert image == repo


def test_no_compiler_no_package_lists_no_caches(kubetrade_image: Image) -> None:
    _, _, root = kubetrade_image
    for tool in ("gcc", "cc", "c++", "ld", "as", "make", "pip", "pip3"):
        assert not (root / "usr/bin" / tool).exists(), tool
        assert not (root / "opt/kubetrade/venv/bin" / tool).exists(), tool
    assert not (root / "opt/kubetrade/venv/bin/uv").exists()
    assert not list((root / "var/lib/apt/lists").glob("*_Packages"))
    assert not list((root / "var/cache/apt/archives").glob("*.deb"))
    assert not (root / "root/.cache").exists()
    built, _, _ = kubetrade_image
    entries = {name for layer in layer_members(built.archive) for name in layer}
    # the runtime gives these; never the build host's (runc makes mount points in an unpacked root)
    assert not entries & {"etc/resolv.conf", "etc/hostname", "etc/hosts"}
    assert not [e for e in entries if e.startswith("tmp/") or e.startswith("dev/")]
    # byte code is in the image (a read-only root cannot hold what an import would write)
    assert (root / SITE / "kubetrade" / "__pycache__" / "cli.cpython-311.pyc").exists()


def test_numba_seed_cache_holds_every_kernel(kubetrade_image: Image) -> None:
    _, _, root = kubetrade_image
    seed = root / "opt/kubetrade/numba-cache"
    indexes = list(seed.rglob("*.nbi"))
    data = list(seed.rglob("*.nbc"))
    assert indexes and data
    # the kernels kubetrade.engine.warmup compiles: the backtest's bar loop among them
    assert any("backtest" in p.name for p in indexes), [p.name for p in indexes][:20]


def _run(kubetrade_image: Image, *args: str, **kw: object) -> tuple[int, str]:
    _, image, root = kubetrade_image
    return RuncContainer(root, image, args=list(args), **kw).run(timeout=300)  # type: ignore[arg-type]


def test_cli_runs_read_only_as_10001(kubetrade_image: Image) -> None:
    code, out = _run(kubetrade_image, "--help")
    assert code == 0, out
    for role in ("operator", "api", "risk-manager", "backtest", "warmup"):
        assert role in out, out
    _, image, root = kubetrade_image
    probe = (
        "import os, errno\n"
        "print('ids', os.getuid(), os.getgid())\n"
        "try:\n    open('/opt/kubetrade/x', 'w')\nexcept OSError as e:\n    print('root', errno.errorcode[e.errno])\n"
        "open('/tmp/ok', 'w').write('1'); print('tmp writable')\n"
        "import ccxt.async_support, pyarrow.parquet, onnxruntime, asyncpg, psycopg, uvloop, kopf, kubernetes\n"
        "import fastapi, uvicorn, numba, deap, opentelemetry.sdk, kubetrade_operator.main, kubetrade.cli\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "pq.write_table(pa.table({'close': [1.0, 2.0]}), '/tmp/c.parquet')\n"
        "assert pq.read_table('/tmp/c.parquet').column('close').to_pylist() == [1.0, 2.0]\n"
        "print('imports ok')\n"
    )
    code, out = RuncContainer(root, image, entrypoint=["python3", "-c", probe]).run(timeout=300)
    assert code == 0, out
    assert "ids 10001 10001" in out
    assert "root EROFS" in out, out  # the root filesystem is read-only
    assert "tmp writable" in out and "imports ok" in out


def test_backtest_loads_every_kernel_from_the_image_cache(kubetrade_image: Image) -> None:
    """A fresh pod: the seed is copied to /tmp/numba-cache and nothing compiles."""
    code, out = _run(kubetrade_image, "backtest", SAMPLE, "--template", "ema-crossover", env={"NUMBA_DEBUG_CACHE": "1"})
    assert code == 0, out
    loaded = re.findall(r"\[cache\] data loaded from", out)
    saved = re.findall(r"\[cache\] (?:data|index) saved to .*", out)
    assert loaded, out[-3000:]
    assert not saved, f"kernels compiled in the pod instead of loaded from the image: {saved[:5]}"
    assert re.search(r"(?i)sharpe", out), out[-2000:]


REFUSE_RL = """
import json, sys
from kubetrade import candlefiles
from kubetrade.goalevolution.goalrun import GoalRunError, run_goal_evolution
from kubetrade.resources.goal import GoalSpec
c = candlefiles.load(sys.argv[1])
spec = GoalSpec.model_validate({"target": {"capital": {"amount": 10000}, "returnPct": 0.05},
                                "riskPolicyRef": {"name": "default"},
                                "evolution": {"symbols": [c.symbol], "timeframe": "1h", "backtestDays": 100,
                                              "sources": ["rl"], "walkForward": {"windows": 2}}})
try:
    run_goal_evolution("grow", spec, {c.symbol: c}, seed=3)
except GoalRunError as exc:
    print("refused:", exc)
print("training libraries:", sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "optax", "gymnasium")))
"""


def test_has_no_training_libraries_and_says_so(kubetrade_image: Image) -> None:
    """Training needs the train image: here ``kubetrade train`` and an rl Goal's evolution refuse, naming it."""
    code, out = _run(kubetrade_image, "train", "policy", SAMPLE, "--out", "/tmp/policy.onnx")
    assert code == 1, out
    assert out.strip().splitlines()[-1] == (
        "train: this environment has no training libraries (gymnasium cannot be imported): run kubetrade train from "
        "the training image (kubetrade-train, chart value image.train) or install kubetrade[train]"), out[-2000:]
    _, image, root = kubetrade_image
    code, out = RuncContainer(root, image, entrypoint=["python3", "-c", REFUSE_RL, SAMPLE]).run(timeout=300)
    assert code == 0, out[-3000:]
    assert ("refused: spec.evolution.sources asks for rl, but this image has no training libraries (gymnasium cannot "
            "be imported): the operator runs such a Goal's evolution in its training image (chart value image.train, "
            "operator variable KUBETRADE_TRAIN_IMAGE)") in out, out[-2000:]
    assert "training libraries: []" in out
