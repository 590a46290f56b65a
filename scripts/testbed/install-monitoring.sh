#!/usr/bin/env bash
# Install the real Prometheus (with promtool) and Alertmanager (with amtool) the
# observability tests run against, from the Debian packages.  Idempotent: returns at once
# when the binaries are present.  Only the binaries are used; the packaged system services
# are never started (the tests start their own servers on free loopback ports).
set -euo pipefail

have_all() {
  for b in prometheus promtool prometheus-alertmanager amtool; do
    command -v "$b" >/dev/null || return 1
  done
}

if ! have_all; then
  echo "[install-monitoring] apt-get install prometheus prometheus-alertmanager" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the packages' maintainer scripts from starting the system services.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >&2
fi
have_all || { echo "prometheus/alertmanager binaries missing after install" >&2; exit 1; }
echo "prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}'), alertmanager $(prometheus-alertmanager --version 2>&1 | awk 'NR==1{print $3}')"
