"""kubetrade's container images for the tests: built once (cached), read, unpacked and run.

:func:`build_images` runs ``scripts/image/build.sh`` (Debian packages + PyPI, no registry, no
engine) and returns one :class:`ImageArchive` per image: an OCI image layout tar that
``ctr -n k8s.io images import`` loads into containerd under :attr:`ImageArchive.reference`.
The build is keyed by its inputs under ``~/.cache/kubetrade/images``: the first call of a
machine builds (minutes), every later one returns at once.

:func:`read_image` checks an archive the way a runtime would (every digest and size against its
bytes) and :func:`unpack` lays its layers out as a root filesystem (whiteouts applied), so
:class:`RuncContainer` can run it with ``runc`` without a node: read-only root, the image's user,
only what the test mounts writable.  An independent reader of what scripts/image/oci.py writes.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "image" / "build.sh"
IMAGE_NAMES = ("kubetrade", "train", "nats", "postgres")

_built: dict[str, ImageArchive] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ImageArchive:
    """One built image: where its archive is and what containerd will call it."""

    name: str  # kubetrade | train | nats | postgres
    reference: str  # e.g. localhost/kubetrade:0123456789abcdef (containerd's name after import)
    repository: str  # localhost/kubetrade
    tag: str
    archive: Path  # OCI image layout in a tar (oci-layout, index.json, blobs/sha256/...)
    digest: str  # the manifest's digest, sha256:...
    config_digest: str
    compressed_size: int  # the layers as stored (gzip): what a registry would hold
    uncompressed_size: int  # the layers unpacked: what a node's disk holds

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> ImageArchive:
        return cls(
            name=name,
            reference=d["reference"],
            repository=d["repository"],
            tag=d["tag"],
            archive=Path(d["archive"]),
            digest=d["digest"],
            config_digest=d["configDigest"],
            compressed_size=int(d["compressedSize"]),
            uncompressed_size=int(d["uncompressedSize"]),
        )


def build_images(names: Sequence[str] = IMAGE_NAMES) -> dict[str, ImageArchive]:
    """Build (or find in the cache) the named images; ``{name: ImageArchive}``.

    Runs ``scripts/image/build.sh`` once per process for the names not yet built here; the
    script's own cache makes a repeated build on the same machine instant.  Needs root.
    """
    unknown = set(names) - set(IMAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown images {sorted(unknown)}; known: {IMAGE_NAMES}")
    with _lock:
        missing = [n for n in names if n not in _built]
        if missing:
            done = subprocess.run(
                ["bash", str(BUILD_SCRIPT), *missing], capture_output=True, text=True, check=False, timeout=3600
            )
            if done.returncode != 0:
                raise RuntimeError(f"scripts/image/build.sh {' '.join(missing)} failed:\n{done.stderr[-6000:]}")
            for name, d in json.loads(done.stdout).items():
                _built[name] = ImageArchive.from_json(name, d)
        return {n: _built[n] for n in names}


def chart_values(images: Mapping[str, ImageArchive], pull_policy: str = "Never") -> dict[str, Any]:
    """Helm values that make the chart run these images (after they are imported into containerd)."""
    values: dict[str, Any] = {}
    if "kubetrade" in images:
        kt = images["kubetrade"]
        values["image"] = {"repository": kt.repository, "tag": kt.tag, "pullPolicy": pull_policy}
    if "train" in images:
        tr = images["train"]
        values.setdefault("image", {})["train"] = {"repository": tr.repository, "tag": tr.tag}
    if "nats" in images:
        values["nats"] = {"image": images["nats"].reference}
    if "postgres" in images:
        values["database"] = {"image": images["postgres"].reference}
    return values


# --- reading an archive ------------------------------------------------------------------------


@dataclass
class OciImage:
    """An archive's index, manifest and config, every digest checked against the bytes."""

    archive: Path
    index: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]
    layer_digests: list[str]

    @property
    def name(self) -> str:
        return str(self.index["manifests"][0].get("annotations", {}).get("io.containerd.image.name", ""))

    @property
    def runtime(self) -> dict[str, Any]:
        """The config's ``config`` object: User, Env, Entrypoint, Cmd, ..."""
        return dict(self.config.get("config") or {})

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.runtime.get("Env", []))


def _sha256(f: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    return f"sha256:{h.hexdigest()}", size


def read_image(archive: Path) -> OciImage:
    """Read an OCI layout tar; raises ValueError on any digest, size or format mismatch."""
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        for required in ("oci-layout", "index.json"):
            if required not in names:
                raise ValueError(f"{archive}: no {required} (not an OCI image layout)")

        def blob(digest: str, size: int | None = None) -> bytes:
            member = f"blobs/sha256/{digest.removeprefix('sha256:')}"
            f = tar.extractfile(member)
            if f is None:
                raise ValueError(f"{archive}: blob {digest} missing")
            data = f.read()
            got = f"sha256:{hashlib.sha256(data).hexdigest()}"
            if got != digest or (size is not None and size != len(data)):
                raise ValueError(f"{archive}: blob {digest} has digest {got}, size {len(data)} (wanted {size})")
            return data

        layout = json.loads(_member(tar, "oci-layout"))
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise ValueError(f"{archive}: oci-layout {layout}")
        index = json.loads(_member(tar, "index.json"))
        if len(index.get("manifests", [])) != 1:
            raise ValueError(f"{archive}: expected one manifest in index.json, got {index.get('manifests')}")
        desc = index["manifests"][0]
        manifest = json.loads(blob(desc["digest"], desc["size"]))
        config = json.loads(blob(manifest["config"]["digest"], manifest["config"]["size"]))
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(manifest["layers"]):
            raise ValueError(f"{archive}: {len(manifest['layers'])} layers but {len(diff_ids)} diff_ids")
        for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True):
            f = tar.extractfile(f"blobs/sha256/{layer['digest'].removeprefix('sha256:')}")
            if f is None:
                raise ValueError(f"{archive}: layer {layer['digest']} missing")
            digest, size = _sha256(f)
            if (digest, size) != (layer["digest"], layer["size"]):
                raise ValueError(f"{archive}: layer {layer['digest']} is {digest}, {size} bytes")
            f = tar.extractfile(f"blobs/sha256/{layer['digest'].removeprefix('sha256:')}")
            assert f is not None
            with gzip.GzipFile(fileobj=f) as gz:
                if _sha256(gz)[0] != diff_id:  # type: ignore[arg-type]
                    raise ValueError(f"{archive}: layer {layer['digest']} does not unpack to {diff_id}")
        return OciImage(archive, index, manifest, config, [la["digest"] for la in manifest["layers"]])


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    if f is None:
        raise ValueError(f"{name} missing")
    return f.read()


def unpack(archive: Path, dest: Path) -> Path:
    """Lay the image's layers out in dest (a new folder), as a runtime's snapshotter would."""
    image = read_image(archive)
    dest.mkdir(parents=True)
    with tarfile.open(archive) as outer:
        for digest in image.layer_digests:
            f = outer.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert f is not None
            with tarfile.open(fileobj=f, mode="r|gz") as layer:
                _apply_layer(layer, dest)
    return dest


def layer_members(archive: Path) -> list[list[str]]:
    """The entry names of each layer, bottom first (what the image holds, before any runtime)."""
    image = read_image(archive)
    names: list[list[str]] = []
    with tarfile.open(archive) as outer:
        for digest in image.layer_digests:
            f = outer.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert f is not None
            with tarfile.open(fileobj=f, mode="r|gz") as layer:
                names.append([m.name for m in layer])
    return names


def _apply_layer(layer: tarfile.TarFile, dest: Path) -> None:
    for member in layer:
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"layer entry outside the root: {member.name}")
        base = path.name
        if base == ".wh..wh..opq":  # opaque: what lower layers put in this folder is hidden
            folder = dest / path.parent
            for child in folder.iterdir() if folder.is_dir() else ():
                _remove(child)
            continue
        if base.startswith(".wh."):
            _remove(dest / path.parent / base.removeprefix(".wh."))
            continue
        target = dest / path
        if target.is_dir() and not target.is_symlink() and member.isdir():
            os.chown(target, member.uid, member.gid)
            os.chmod(target, member.mode)
            continue
        if target.exists() or target.is_symlink():
            _remove(target)
        layer.extract(member, dest, set_attrs=True, numeric_owner=True, filter="fully_trusted")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# --- running an image with runc ------------------------------------------------------------------


def runc_binary() -> str:
    """runc to run images with: $KUBETRADE_RUNC, else the one on PATH (Debian's, installed by test.sh)."""
    explicit = os.environ.get("KUBETRADE_RUNC")
    if explicit:
        return explicit
    found = shutil.which("runc")
    if not found:
        raise FileNotFoundError("runc not found: scripts/testbed/install-runc.sh installs it (or set KUBETRADE_RUNC)")
    return found


@dataclass
class RuncContainer:
    """One container of an unpacked image, run by runc the way the chart's pods run.

    Root filesystem read-only, the image's user (or ``user``), every capability dropped, no new
    privileges, a tmpfs at each of ``tmpfs`` (the chart's emptyDirs), ``binds`` (host folder ->
    container path, read-write) for volumes.  The host's network (the test picks free loopback
    ports and passes them as arguments), so a test reaches the server on 127.0.0.1.
    """

    rootfs: Path
    image: OciImage
    args: Sequence[str] | None = None  # replaces the image's Cmd (as a pod's args do)
    entrypoint: Sequence[str] | None = None  # replaces its Entrypoint (a pod's command)
    env: Mapping[str, str] = field(default_factory=dict)
    user: tuple[int, int] | None = None
    tmpfs: Iterable[str] = ("/tmp",)
    binds: Mapping[Path, str] = field(default_factory=dict)
    cwd: str = "/"

    def __post_init__(self) -> None:
        self.id = f"kt-image-{uuid.uuid4().hex[:12]}"
        self.state = Path(tempfile.mkdtemp(prefix="kubetrade-runc-"))
        self.bundle = self.state / "bundle"
        self.bundle.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.state / "output.log"

    def spec(self) -> dict[str, Any]:
        cfg = self.image.runtime
        if self.user is not None:
            uid, gid = self.user
        else:
            user = str(cfg.get("User") or "0:0")
            uid_s, _, gid_s = user.partition(":")
            uid, gid = int(uid_s), int(gid_s or uid_s)
        env = dict(self.image.env)
        env.update(self.env)
        argv = list(self.entrypoint if self.entrypoint is not None else cfg.get("Entrypoint") or [])
        argv += list(
            self.args if self.args is not None else ([] if self.entrypoint is not None else cfg.get("Cmd") or [])
        )
        mounts: list[dict[str, Any]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]},
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": "/etc/resolv.conf",
                "options": ["rbind", "ro"],
            },
        ]
        for path in self.tmpfs:
            mounts.append(
                {
                    "destination": path,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=1777", "size=1g"],
                }
            )
        for host, path in self.binds.items():
            mounts.append({"destination": path, "type": "bind", "source": str(host), "options": ["rbind", "rw"]})
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": uid, "gid": gid},
                "args": argv,
                "env": [f"{k}={v}" for k, v in env.items()],
                "cwd": self.cwd,
                "capabilities": {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
                "noNewPrivileges": True,
            },
            "root": {"path": str(self.rootfs), "readonly": True},
            "hostname": self.id,
            "mounts": mounts,
            "linux": {
                # no network namespace: the host's loopback; the rest isolated
                "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            },
        }

    def _runc(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [runc_binary(), "--root", str(self.state / "runc"), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def start(self) -> RuncContainer:
        (self.bundle / "config.json").write_text(json.dumps(self.spec(), indent=1))
        out = open(self.log, "wb")  # noqa: SIM115 - the container writes here for its whole life
        self.proc = subprocess.Popen(
            [runc_binary(), "--root", str(self.state / "runc"), "run", "--bundle", str(self.bundle), self.id],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return self

    def run(self, timeout: float = 300) -> tuple[int, str]:
        """Start, wait for the process to exit; (exit code, its output)."""
        self.start()
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        return code, self.output()

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in the running container (as its user), like a pod's exec probe."""
        return self._runc("exec", self.id, *argv, check=False, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._runc("kill", self.id, "TERM", check=False)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._runc("kill", self.id, "KILL", check=False)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        self._runc("delete", "--force", self.id, check=False)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> RuncContainer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def wait_for(check: Any, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    """Call check() until it returns a truthy value (exceptions count as not yet); its value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not met in {timeout}s (last error: {last!r})")


def unpack_cached(image: ImageArchive, root: Path) -> Path:
    """Unpack an archive once per digest under root (a test session's folder); the rootfs path."""
    dest = root / image.digest.removeprefix("sha256:")[:16]
    done = root / f".{dest.name}.unpacked"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            if dest.exists():
                shutil.rmtree(dest)
            unpack(image.archive, dest)
            done.touch()
    return dest
