"""Write a one-layer OCI image archive from a few files (for the node's own small images).

The node needs three images that no registry can give it here: the pod sandbox ("pause",
built by ``build-node.sh`` from ``pause/main.go``), CoreDNS (its static binary) and a
baseline busybox (Debian's ``busybox-static``).  Each is a single uncompressed layer, an
image config, a manifest and an index, as the OCI image layout describes, in a tar that
``ctr images import`` reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImageFile:
    source: Path | bytes
    mode: int = 0o755


@dataclass
class ImageSpec:
    name: str
    """Full reference, e.g. ``kubetrade.local/pause:1``."""
    files: Mapping[str, ImageFile]
    """Path in the image -> content."""
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/bin:/usr/bin:/sbin:/usr/sbin",)
    user: str = ""
    symlinks: Mapping[str, str] = field(default_factory=dict)
    """Path in the image -> link target."""
    dirs: Sequence[str] = ("tmp",)


def _add(tar: tarfile.TarFile, info: tarfile.TarInfo, data: bytes | None = None) -> None:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _layer(spec: ImageSpec) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()

        def parents(path: str) -> None:
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    _add(tar, info)

        for d in spec.dirs:
            parents(d + "/x")
        for path, f in sorted(spec.files.items()):
            parents(path)
            data = f.source if isinstance(f.source, bytes) else f.source.read_bytes()
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), f.mode
            _add(tar, info, data)
        for path, target in sorted(spec.symlinks.items()):
            parents(path)
            info = tarfile.TarInfo(path.strip("/"))
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            _add(tar, info)
    return buf.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    _add(tar, info, data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_archive(spec: ImageSpec, archive: Path) -> Path:
    """Write ``spec`` as an OCI archive at ``archive``; returns the path."""
    layer = _layer(spec)
    diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": list(spec.env),
            "Entrypoint": list(spec.entrypoint) or None,
            "Cmd": list(spec.cmd) or None,
            "User": spec.user,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "kubetrade_testbed.node.oci"}],
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    tag = spec.name.rsplit(":", 1)[1] if ":" in spec.name.rsplit("/", 1)[-1] else "latest"
    with tarfile.open(archive, "w") as tar:
        cfg = _blob(tar, json.dumps(config, sort_keys=True).encode())
        lay = _blob(tar, layer)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **lay}],
        }
        man = _blob(tar, json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    **man,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {"io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag},
                }
            ],
        }
        for name, body in (("oci-layout", {"imageLayoutVersion": "1.0.0"}), ("index.json", index)):
            data = json.dumps(body).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            _add(tar, info, data)
    return archive
