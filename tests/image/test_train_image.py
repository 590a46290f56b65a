"""The training image as built (scripts/image/build.sh train), read from its archive and run with runc.

It is the kubetrade image plus one layer (requirements/train.lock's training packages in the same
venv), so a node holding the kubetrade image fetches that layer only.  Run read-only as uid 10001
it trains the LSTM-Transformer predictor and a PPO policy on bundled candles into a mounted folder,
and the runtime kubetrade image (onnxruntime, no JAX) loads those files and serves them exactly as
the host's onnxruntime does.  The same seed on the host's training libraries (dev.lock, the same
versions) gives the same model, weight for weight.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kubetrade_testbed.images import ImageArchive, OciImage, RuncContainer
from tests.image.test_kubetrade_image import SITE, _installed, _norm

REPO = Path(__file__).resolve().parents[2]
CANDLES = REPO / "tests" / "data" / "binance-spot" / "ETH_USDT-1h.csv.gz"
EPOCH = 1767225600  # build.sh's SOURCE_DATE_EPOCH
# tiny settings: seconds of training, enough to write a real graph of each kind
PREDICTOR = ["--epochs", "2", "--window", "8", "--hidden", "4", "--heads", "1", "--seed", "3"]
POLICY = ["--epochs", "2", "--window", "4", "--seed", "3"]
Image = tuple[ImageArchive, OciImage, Path]

pytestmark = pytest.mark.slow


def _pins(lock: Path) -> dict[str, str]:
    return {_norm(m.group(1)): m.group(2) for line in lock.read_text().splitlines()
            if (m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line))}


def _layer(archive: Path, digest: str) -> list[tarfile.TarInfo]:
    with tarfile.open(archive) as outer:
        f = outer.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        assert f is not None
        with tarfile.open(fileobj=f, mode="r|gz") as layer:
            return list(layer)


def test_layers_are_the_kubetrade_images_plus_one(train_image: Image, kubetrade_image: Image) -> None:
    built, image, _ = train_image
    kt_built, kt, _ = kubetrade_image
    assert built.repository == "localhost/kubetrade-train" and built.reference == f"{built.repository}:{built.tag}"
    assert image.index["manifests"][0]["annotations"]["io.containerd.image.name"] == built.reference
    assert len(image.manifest["layers"]) == len(kt.manifest["layers"]) + 1 == 3
    assert image.manifest["layers"][:2] == kt.manifest["layers"]  # the same blobs: shared on a node
    assert image.config["rootfs"]["diff_ids"][:2] == kt.config["rootfs"]["diff_ids"]
    assert image.config["history"][-1]["created_by"] == "scripts/image/train/install.sh"
    assert built.compressed_size - kt_built.compressed_size == image.manifest["layers"][2]["size"]
    # the same config as the kubetrade image (user, entrypoint, numba variables), its own title
    cfg, kt_cfg = image.runtime, kt.runtime
    labels, kt_labels = cfg.pop("Labels"), kt_cfg.pop("Labels")
    assert cfg == kt_cfg
    assert labels["org.opencontainers.image.title"] == "kubetrade-train"
    assert {k: v for k, v in labels.items() if k not in ("org.opencontainers.image.title",
                                                          "org.opencontainers.image.description")} == \
        {k: v for k, v in kt_labels.items() if k not in ("org.opencontainers.image.title",
                                                          "org.opencontainers.image.description")}
    assert image.config["created"] == kt.config["created"] == "2026-01-01T00:00:00Z"


def test_its_layer_adds_files_and_changes_none_below(train_image: Image) -> None:
    """Only new files, dated SOURCE_DATE_EPOCH: nothing of the kubetrade layer is copied up into it
    (a touched kubetrade file would be a second copy, and stale when kubetrade changes)."""
    built, image, _ = train_image
    below: set[str] = set()
    for digest in image.layer_digests[:2]:
        below |= {m.name for m in _layer(built.archive, digest) if not m.isdir()}
    top = _layer(built.archive, image.layer_digests[2])
    names = [m.name for m in top]
    assert not [n for n in names if n.rsplit("/", 1)[-1].startswith(".wh.")], "the train layer deletes files"
    # uv locks the venv with this empty file while it installs: the one file of the layers below
    # that appears again (copied up, unchanged)
    rewritten = sorted(m.name for m in top if not m.isdir() and m.name in below)
    assert rewritten == ["opt/kubetrade/venv/.lock"], rewritten[:20]
    assert not [n for n in names if n.startswith(("tmp/", "dev/", "root/", "var/"))], "build leftovers"
    assert not {n for n in names if not n.startswith(f"{SITE}/") and not n.startswith("opt/kubetrade/venv/bin/")} \
        - {"etc", "opt", "opt/kubetrade", "opt/kubetrade/venv", "opt/kubetrade/venv/.lock", "opt/kubetrade/venv/bin",
           "opt/kubetrade/venv/lib", "opt/kubetrade/venv/lib/python3.11", SITE, "tmp"}
    assert {m.mtime for m in top} == {EPOCH}
    assert {(m.uid, m.gid) for m in top} == {(0, 0)}
    assert not [m.name for m in top if m.mode & 0o022 and not m.issym() and m.name != "tmp"], "group/world-writable"
    assert f"{SITE}/jax/__pycache__/__init__.cpython-311.pyc" in names  # byte code, for the read-only root
    assert not [n for n in names if n.endswith((".h", ".pyx", ".pxd"))]
    assert not [n for n in names if "/tests/test_" in n], "packages' test suites left in the image"


def test_holds_exactly_the_train_lock(train_image: Image) -> None:
    _, _, root = train_image
    train = _pins(REPO / "requirements" / "train.lock")
    installed = _installed(root)
    assert installed.pop("kubetrade") == "0.1.0"
    assert installed == train
    runtime = _pins(REPO / "requirements" / "runtime.lock")
    assert {k: train[k] for k in runtime} == runtime  # the trading packages at the runtime image's versions
    assert {"jax", "jaxlib", "optax", "gymnasium", "onnx"} <= installed.keys()
    for dev in ("pytest", "vectorbt", "mypy", "ruff", "hypothesis", "kubetrade-testbed", "uv"):
        assert dev not in installed
    assert not (root / "opt/kubetrade/venv/bin/uv").exists() and not (root / "usr/bin/gcc").exists()


def _train(train_image: Image, out: Path, kind: str, args: list[str]) -> tuple[str, dict[str, object]]:
    _, image, root = train_image
    code, log = RuncContainer(root, image, args=["train", kind, f"/out/{CANDLES.name}", *args,
                                                 "--out", f"/out/{kind}.onnx"],
                              binds={out: "/out"}).run(timeout=600)
    assert code == 0, log[-3000:]
    sha = hashlib.sha256((out / f"{kind}.onnx").read_bytes()).hexdigest()
    printed = json.loads(log[log.index("{\n"):log.index("\n}\n") + 2])
    assert printed["sha256"] == sha and printed["kind"] == kind
    return sha, printed


SERVE = """
import hashlib, json, sys
from kubetrade import candlefiles
from kubetrade.prediction import model
from kubetrade.resources.strategy import ModelReference
c = candlefiles.load(sys.argv[1])
o, h, lo, cl, v = c.open, c.high, c.low, c.close, c.volume
p = model.load(ModelReference(uri=sys.argv[2], sha256=sys.argv[3], features="bars-v1"), kind="predictor")
q = model.load(ModelReference(uri=sys.argv[4], sha256=sys.argv[5], features="bars-v1"), kind="policy")
print(json.dumps({"prediction": model.predict_series(p, o, h, lo, cl, v).tolist(),
                  "policy": model.policy_series(q, None, o, h, lo, cl, v).tolist()}))
"""


def test_trains_read_only_as_10001_and_the_runtime_image_serves_the_models(
        train_image: Image, kubetrade_image: Image, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the container's uid 10001 writes here (the chart's emptyDir)
    shutil.copy(CANDLES, out / CANDLES.name)
    p_sha, printed = _train(train_image, out, "predictor", PREDICTOR)
    assert printed["metrics"]["training"]["config"]["epochs"] == 2, printed["metrics"]  # type: ignore[index]
    q_sha, _ = _train(train_image, out, "policy", POLICY)
    assert {p.stat().st_uid for p in out.glob("*.onnx")} == {10001}

    # the runtime image (no JAX) loads both files and runs them over the candles
    _, kt, kt_root = kubetrade_image
    (out / "serve.py").write_text(SERVE)
    code, log = RuncContainer(kt_root, kt, entrypoint=["python3", "/out/serve.py"],
                              args=[f"/out/{CANDLES.name}", "/out/predictor.onnx", p_sha, "/out/policy.onnx", q_sha],
                              binds={out: "/out"}).run(timeout=300)
    assert code == 0, log[-3000:]
    served = json.loads(log.strip().splitlines()[-1])
    # ... exactly as this checkout's onnxruntime does on the host
    host = subprocess.run([sys.executable, str(out / "serve.py"), str(out / CANDLES.name), str(out / "predictor.onnx"),
                           p_sha, str(out / "policy.onnx"), q_sha], capture_output=True, text=True, check=True)
    assert served == json.loads(host.stdout.strip().splitlines()[-1])
    finite = [x for x in served["prediction"] if x == x]
    assert len(finite) > 1000 and len(set(finite)) > 100, "the predictor's output does not vary"
    assert set(x for x in served["policy"] if x == x) <= {0.0, 1.0}  # spot: flat or long

    # the same seed and candles on the host's training libraries (dev.lock: the same versions) give the
    # same model file, byte for byte: the image trains what the tests train, and a model names its candle
    # files by name, not by where a machine keeps them (/out/... in the container).
    for kind, args, sha in (("predictor", PREDICTOR, p_sha), ("policy", POLICY, q_sha)):
        host_file = tmp_path / f"host-{kind}.onnx"
        done = subprocess.run([str(Path(sys.executable).with_name("kubetrade")), "train", kind, str(CANDLES), *args,
                               "--out", str(host_file)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        assert _datasets(host_file) == _datasets(out / f"{kind}.onnx") == CANDLES.name
        assert hashlib.sha256(host_file.read_bytes()).hexdigest() == sha, (
            f"{kind}: the image and the host trained different model files from one seed")


def _datasets(path: Path) -> str:
    """The model's kubetrade.datasets metadata."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}.get("kubetrade.datasets", "")
