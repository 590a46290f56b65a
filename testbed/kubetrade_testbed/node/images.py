"""The node's own images: the pod sandbox (pause), CoreDNS and a baseline busybox.

Written as one-layer OCI archives (:mod:`kubetrade_testbed.node.oci`) from binaries the
build script made (pause, coredns) or Debian installed (``busybox-static``), cached under
``~/.cache/kubetrade/images`` keyed by the binaries' folder, and imported into containerd
by :meth:`KubeNode.start <kubetrade_testbed.node.node.KubeNode.start>`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from kubetrade_testbed.node.oci import ImageFile, ImageSpec, write_archive

PAUSE = "kubetrade.local/pause:1"
BUSYBOX = "kubetrade.local/busybox:1.35"
COREDNS = "kubetrade.local/coredns:1"
BUSYBOX_APPLETS = ("sh", "sleep", "cat", "echo", "ls", "nslookup", "wget", "nc", "env", "true", "false", "ps",
                   "hostname", "id", "date", "mkdir", "rm", "touch", "grep", "head", "tail", "httpd", "timeout")


def cache_dir() -> Path:
    return Path(os.environ.get("KUBETRADE_CACHE", Path.home() / ".cache" / "kubetrade")) / "images"


def _cached(spec: ImageSpec, key: str) -> Path:
    stem = spec.name.replace("/", "_").replace(":", "_")
    path = cache_dir() / f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.tar"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        write_archive(spec, tmp)
        tmp.replace(path)
    return path


def pause(bin_dir: Path) -> Path:
    spec = ImageSpec(PAUSE, {"pause": ImageFile(bin_dir / "pause")}, entrypoint=("/pause",), user="65535:65535")
    return _cached(spec, str(bin_dir))


def busybox() -> Path:
    binary = Path(shutil.which("busybox") or "/bin/busybox")
    spec = ImageSpec(BUSYBOX, {"bin/busybox": ImageFile(binary)}, cmd=("sh",),
                     symlinks={f"bin/{a}": "busybox" for a in BUSYBOX_APPLETS})
    return _cached(spec, f"{binary.resolve()}:{binary.stat().st_size}")


def coredns(bin_dir: Path) -> Path:
    spec = ImageSpec(COREDNS, {"coredns": ImageFile(bin_dir / "coredns")}, entrypoint=("/coredns",))
    return _cached(spec, str(bin_dir))


def node_images(bin_dir: Path) -> list[Path]:
    return [pause(bin_dir), busybox(), coredns(bin_dir)]
