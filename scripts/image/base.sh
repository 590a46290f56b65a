#!/usr/bin/env bash
# The base root filesystem of every image: Debian bookworm "slim" (the minbase variant, without
# documentation, manual pages and translations, as debian:bookworm-slim is made), bootstrapped
# from Debian's packages with mmdebstrap.  It plays the part of `FROM debian:bookworm-slim`.
#
#   scripts/image/base.sh OUT_DIR      writes OUT_DIR/rootfs (needs root; OUT_DIR must not exist)
#
# Files are dated SOURCE_DATE_EPOCH (those written during the build; packaged files keep their
# package's dates), so the same packages give the same layer.
set -euo pipefail
out="${1:?usage: base.sh OUT_DIR}"
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH}"
export SOURCE_DATE_EPOCH
mirror="${KUBETRADE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${KUBETRADE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
mkdir "$out"
marker="$out/.started"
touch "$marker"
# The same exclusions as debian:*-slim; written to /etc/dpkg/dpkg.cfg.d/ so that packages
# installed later (the images' own steps) leave them out too.  Copyright files stay.
mmdebstrap --mode=root --variant=minbase --format=directory --quiet \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/groff/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/linda/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --aptopt='Acquire::Languages "none"' \
  --aptopt='APT::Install-Recommends "false"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb' \
  --customize-hook='rm -f "$1"/var/log/dpkg.log "$1"/var/log/apt/*.log "$1"/var/log/alternatives.log "$1"/var/cache/ldconfig/aux-cache' \
  bookworm "$out/rootfs" \
  "deb $mirror bookworm main" \
  "deb $mirror bookworm-updates main" \
  "deb $security bookworm-security main" >&2
# mmdebstrap copies the host's /etc/resolv.conf and /etc/hostname in; an image gets both from its
# runtime.  Date what the bootstrap wrote (not what the packages hold).
rm -f "$out/rootfs/etc/resolv.conf" "$out/rootfs/etc/hostname"
find "$out/rootfs" -xdev -newer "$marker" ! -type s -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
rm -f "$marker"
