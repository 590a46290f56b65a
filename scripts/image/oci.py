#!/usr/bin/env python3
"""Write OCI images without a container engine: layers from directories, an OCI layout archive.

Used by scripts/image/build.sh; standard library only (it runs on the host's python3, before any
virtualenv).  Everything it writes is reproducible: entries in name order, numeric owners only,
modification times as the files have them (the build dates new files SOURCE_DATE_EPOCH) and gzip
streams without a name or time, so the same tree gives the same digest on any machine.

    oci.py key [--text S] PATH...                    sha256 of files and strings (the cache key)
    oci.py layer ROOT OUT_DIR [--upper]              one gzip layer blob of ROOT, prints its JSON
    oci.py image --ref R --config C.json --created T --layer L.json... OUT.tar
                                                     an OCI image layout in a tar, prints its JSON

A layer made with --upper reads ROOT as an overlayfs upper directory: a 0:0 character device is a
deleted file (written as an OCI ".wh." whiteout) and a directory marked opaque hides what the
layers below hold (".wh..wh..opq").

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) whose one manifest
carries the annotation io.containerd.image.name (the full reference) and
org.opencontainers.image.ref.name (its tag), as containerd's own exporter writes them:
`ctr -n k8s.io images import ARCHIVE` names the image after the first; `skopeo copy oci-archive:`
and podman read the second.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# Never part of a layer: the runtime mounts these (kubelet, runc); /dev's nodes come from it too.
RUNTIME_DIRS = ("dev", "proc", "sys")
SKIP_NAMES = {"__pycache__", ".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


# --- key --------------------------------------------------------------------------------------


def cache_key(paths: list[str], texts: list[str]) -> str:
    """sha256 over the named files (every file under a directory, in name order) and strings."""
    h = hashlib.sha256()
    for text in texts:
        h.update(b"text\0" + text.encode() + b"\0")
    for top in paths:
        root = Path(top)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and _keyed(p, root))
        for f in files:
            h.update(b"file\0" + str(f.relative_to(root.parent)).encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _keyed(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p in SKIP_NAMES or p.endswith(".egg-info") for p in parts) and path.suffix != ".pyc"


# --- layer ------------------------------------------------------------------------------------


class _Digesting(io.RawIOBase):
    """A write-only stream that hashes and counts what goes through it."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def, override]
        self.sha.update(b)
        self.size += len(b)
        self.out.write(b)
        return len(b)


def _walk(root: Path):  # type: ignore[no-untyped-def]
    """Depth-first, name-ordered walk: every directory right before its content."""

    def visit(rel: str):  # type: ignore[no-untyped-def]
        for name in sorted(os.listdir(root / rel) if rel else os.listdir(root)):
            child = f"{rel}/{name}" if rel else name
            full = root / child
            yield child, full
            if not rel and name in RUNTIME_DIRS:
                continue
            if full.is_dir() and not full.is_symlink():
                yield from visit(child)

    yield from visit("")


def _tarinfo(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _clamp() -> int | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return int(epoch) if epoch else None


def write_layer(root: Path, out_dir: Path, upper: bool = False) -> dict[str, object]:
    """Write root as one gzip layer blob into out_dir/blobs/sha256/; returns its descriptor."""
    blobs = out_dir / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    diff = hashlib.sha256()
    files = 0
    raw_size = 0
    with os.fdopen(fd, "wb") as raw:
        counted = _Digesting(raw)  # type: ignore[arg-type]
        with gzip.GzipFile(filename="", mode="wb", fileobj=counted, mtime=0, compresslevel=6) as gz:  # type: ignore[arg-type]

            class _DiffTap(io.RawIOBase):
                def writable(self) -> bool:
                    return True

                def write(self, b) -> int:  # type: ignore[no-untyped-def, override]
                    nonlocal raw_size
                    diff.update(b)
                    raw_size += len(b)
                    gz.write(b)
                    return len(b)

            tap = io.BufferedWriter(_DiffTap(), buffer_size=1 << 20)
            with tarfile.open(fileobj=tap, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                seen: dict[tuple[int, int], str] = {}
                for name, full in _walk(root):
                    files += _add(tar, name, full, seen, upper)
            tap.flush()
    digest = counted.sha.hexdigest()
    os.replace(tmp_name, blobs / digest)
    return {
        "mediaType": MEDIA_LAYER,
        "digest": f"sha256:{digest}",
        "size": counted.size,
        "diffID": f"sha256:{diff.hexdigest()}",
        "uncompressedSize": raw_size,
        "entries": files,
    }


def _add(tar: tarfile.TarFile, name: str, full: Path, seen: dict[tuple[int, int], str], upper: bool) -> int:
    st = full.lstat()
    mode = st.st_mode
    parent, _, base = name.rpartition("/")
    clamp = _clamp()
    if upper and stat.S_ISCHR(mode) and st.st_rdev == 0:  # overlayfs: deleted below
        info = tarfile.TarInfo(f"{parent}/.wh.{base}" if parent else f".wh.{base}")
        info.mtime = clamp if clamp is not None else int(st.st_mtime)
        tar.addfile(info)
        return 1
    info = _tarinfo(name, st)
    if stat.S_ISDIR(mode):
        # A folder's date is when something in it last changed, late steps of the build included:
        # no later than SOURCE_DATE_EPOCH.  Files keep theirs (byte code records its source's).
        if clamp is not None:
            info.mtime = min(info.mtime, clamp)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        if upper and _opaque(full):
            marker = tarfile.TarInfo(f"{name}/.wh..wh..opq")
            marker.mtime = info.mtime
            tar.addfile(marker)
        return 1
    if stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
        tar.addfile(info)
        return 1
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen:
            info.type = tarfile.LNKTYPE
            info.linkname = seen[key]
            tar.addfile(info)
            return 1
        seen[key] = name
        info.size = st.st_size
        with open(full, "rb") as f:
            tar.addfile(info, f)
        return 1
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
        return 1
    if stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
        return 1
    return 0  # sockets never belong in an image


def _opaque(path: Path) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


# --- image ------------------------------------------------------------------------------------


def _blob(blobs: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_image(ref: str, config: dict, created: int, layers: list[dict], out: Path) -> dict[str, object]:  # type: ignore[type-arg]
    """An OCI image layout of the layers (blobs found next to each layer's JSON) in one tar."""
    stamp = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    image_config = {
        "created": stamp,
        "architecture": "amd64",
        "os": "linux",
        "config": config.get("config", {}),
        "rootfs": {"type": "layers", "diff_ids": [layer["diffID"] for layer in layers]},
        "history": [{"created": stamp, "created_by": layer.get("createdBy", "")} for layer in layers],
    }
    repository, _, tag = ref.rpartition(":")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".image-") as tmp:
        blobs = Path(tmp) / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        config_desc = {"mediaType": MEDIA_CONFIG, **_blob(blobs, _canonical(image_config))}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc,
            "layers": [{"mediaType": MEDIA_LAYER, "digest": la["digest"], "size": la["size"]} for la in layers],
            "annotations": {"org.opencontainers.image.created": stamp, **config.get("annotations", {})},
        }
        manifest_desc = {"mediaType": MEDIA_MANIFEST, **_blob(blobs, _canonical(manifest))}
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    **manifest_desc,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
                }
            ],
        }
        members: list[tuple[str, Path | bytes]] = [
            ("oci-layout", _canonical({"imageLayoutVersion": "1.0.0"})),
            ("index.json", _canonical(index)),
        ]
        blob_files = {p.name: p for p in blobs.iterdir()}
        for layer in layers:
            hexdigest = str(layer["digest"]).removeprefix("sha256:")
            blob_files[hexdigest] = Path(layer["dir"]) / "blobs" / "sha256" / hexdigest
        tmp_out = out.with_name(f".{out.name}.tmp")
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            for dirname in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(dirname)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, created
                tar.addfile(info)
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, created  # type: ignore[arg-type]
                tar.addfile(info, io.BytesIO(data))  # type: ignore[arg-type]
            for digest in sorted(blob_files):
                path = blob_files[digest]
                info = tarfile.TarInfo(f"blobs/sha256/{digest}")
                info.size, info.mode, info.mtime = path.stat().st_size, 0o644, created
                with open(path, "rb") as f:
                    tar.addfile(info, f)
        os.replace(tmp_out, out)
    return {
        "reference": ref,
        "repository": repository,
        "tag": tag,
        "archive": str(out),
        "format": "oci-archive",
        "digest": manifest_desc["digest"],
        "configDigest": config_desc["digest"],
        "archiveSize": out.stat().st_size,
        "compressedSize": sum(int(la["size"]) for la in layers),
        "uncompressedSize": sum(int(la["uncompressedSize"]) for la in layers),
        "layers": [{k: la[k] for k in ("digest", "diffID", "size", "uncompressedSize")} for la in layers],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("key")
    k.add_argument("--text", action="append", default=[])
    k.add_argument("paths", nargs="*")
    la = sub.add_parser("layer")
    la.add_argument("root", type=Path)
    la.add_argument("out_dir", type=Path)
    la.add_argument("--upper", action="store_true")
    la.add_argument("--created-by", default="")
    im = sub.add_parser("image")
    im.add_argument("--ref", required=True)
    im.add_argument("--config", type=Path, required=True)
    im.add_argument("--created", type=int, required=True)
    im.add_argument("--layer", type=Path, action="append", required=True)
    im.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "key":
        print(cache_key(args.paths, args.text))
    elif args.cmd == "layer":
        desc = write_layer(args.root, args.out_dir, upper=args.upper)
        desc["createdBy"] = args.created_by
        print(json.dumps(desc, indent=1))
    else:
        layers = [{**json.loads(p.read_text()), "dir": str(p.parent)} for p in args.layer]
        print(
            json.dumps(
                write_image(args.ref, json.loads(args.config.read_text()), args.created, layers, args.out), indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
