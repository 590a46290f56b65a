#!/usr/bin/env bash
# Build the Dockerfile with buildah (Debian's, no Docker engine) on build.sh's own bookworm slim
# (stored as debian:bookworm-slim: nothing is pulled), then compare the result with build.sh's
# kubetrade image: config and every file (path, type, mode, owner, content).  A manual check, not
# part of scripts/test.sh (it downloads every wheel again and takes minutes).  Needs root.
#   scripts/image/check-dockerfile.sh        prints the differences; exit 1 if any beyond numba's
#                                            cache files (their bytes differ between any two builds)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v buildah >/dev/null && command -v skopeo >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends buildah skopeo >&2
}
json="$(bash scripts/image/build.sh kubetrade)"
archive="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["kubetrade"]["archive"])' <<<"$json")"
base="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["kubetrade"]["layers"][0]["digest"])' <<<"$json")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
base_dir="$(grep -l "\"$base\"" "$HOME"/.cache/kubetrade/images/base-*/layer.json | head -1 | xargs dirname)"
echo '{"config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]}}' >"$work/base.json"
python3 scripts/image/oci.py image --ref docker.io/library/debian:bookworm-slim --config "$work/base.json" \
  --created "${SOURCE_DATE_EPOCH:-1767225600}" --layer "$base_dir/layer.json" "$work/base.tar" >/dev/null
skopeo copy -q "oci-archive:$work/base.tar" containers-storage:docker.io/library/debian:bookworm-slim
ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
buildah bud --pull=never --layers=false ${ca:+--secret id=ca,src="$ca"} -t localhost/kubetrade-dockerfile:check -f Dockerfile . >&2
buildah push -q localhost/kubetrade-dockerfile:check "oci-archive:$work/dockerfile.tar:localhost/kubetrade-dockerfile:check"
python3 - "$archive" "$work/dockerfile.tar" <<'PY'
import hashlib, json, sys, tarfile

def image(path):
    with tarfile.open(path) as outer:
        index = json.load(outer.extractfile("index.json"))
        blob = lambda d: outer.extractfile("blobs/sha256/" + d.split(":", 1)[1])
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        config = json.load(blob(manifest["config"]["digest"]))
        files = {}
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r|*") as t:
                for m in t:
                    name = m.name.lstrip("./")
                    base = name.rsplit("/", 1)[-1]
                    if base.startswith(".wh."):
                        target = name[: len(name) - len(base)] + base[4:]
                        files = {k: v for k, v in files.items() if k != target and not k.startswith(target + "/")}
                        continue
                    digest = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16] if m.isfile() else m.linkname
                    files[name] = (m.type, m.mode & 0o7777, m.uid, m.gid, digest)
        return config["config"], files

a_cfg, a = image(sys.argv[1])
b_cfg, b = image(sys.argv[2])
# what buildah itself leaves (mount points of its RUN), not the Dockerfile's; and its own label
for engine_artifact in ("etc/hostname", "etc/hosts", "etc/resolv.conf", "tmp/kubetrade-build"):
    b.pop(engine_artifact, None)
b_cfg.get("Labels", {}).pop("io.buildah.version", None)
keys = ("User", "Env", "Entrypoint", "Cmd", "Labels", "WorkingDir")
cfg_diff = {k: (a_cfg.get(k), b_cfg.get(k)) for k in keys if (a_cfg.get(k) or None) != (b_cfg.get(k) or None)}
only_a = sorted(set(a) - set(b))
only_b = sorted(set(b) - set(a))
changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
numba = [k for k in changed if k.startswith("opt/kubetrade/numba-cache/") and k.endswith(".nbc")]
rest = [k for k in changed if k not in numba]
print(f"config differences: {cfg_diff or 'none'}")
print(f"files: {len(a)} (build.sh) vs {len(b)} (Dockerfile); only in build.sh {len(only_a)}, only in the Dockerfile's {len(only_b)}")
print(f"same path, different file: {len(rest)} (+ {len(numba)} numba cache files)")
for label, names in (("only build.sh", only_a), ("only Dockerfile", only_b), ("different", rest)):
    for n in names[:25]:
        print(f"  {label}: {n} {a.get(n)} {b.get(n)}")
sys.exit(1 if cfg_diff or only_a or only_b or rest else 0)
PY
