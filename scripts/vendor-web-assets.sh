#!/usr/bin/env bash
# Fetch the browser libraries the API serves (the console and /docs) from npm and vendor them
# into the package, with their licences: the running API never loads anything from a CDN, so
# the console and the OpenAPI page work in an air-gapped cluster.  Run it after changing a
# version below; the files it writes are committed (the image and `pip install` need no npm).
#
#   htmx.org            0BSD        forms and actions without a build step
#   lightweight-charts  Apache-2.0  candle, equity and drawdown charts (TradingView; keeps its attribution)
#   swagger-ui-dist     Apache-2.0  the /docs page
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX=2.0.11
LWC=5.3.0
SWAGGER=5.36.0
dest=workloads/kubetrade/api/static/vendor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v npm >/dev/null || { echo "npm is needed to fetch the assets (apt-get install npm)" >&2; exit 1; }
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "lightweight-charts@$LWC" "swagger-ui-dist@$SWAGGER" >/dev/null)
for tgz in "$work"/*.tgz; do
  mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"
done

rm -rf "$dest" && mkdir -p "$dest/htmx" "$dest/lightweight-charts" "$dest/swagger-ui"
src="$work/htmx.org-$HTMX/package"
cp "$src/dist/htmx.min.js" "$src/LICENSE" "$dest/htmx/"
src="$work/lightweight-charts-$LWC/package"
cp "$src/dist/lightweight-charts.standalone.production.js" "$src/LICENSE" "$dest/lightweight-charts/"
src="$work/swagger-ui-dist-$SWAGGER/package"
cp "$src/swagger-ui-bundle.js" "$src/swagger-ui-bundle.js.LICENSE.txt" "$src/swagger-ui.css" \
   "$src/favicon-32x32.png" "$src/LICENSE" "$src/NOTICE" "$dest/swagger-ui/"
cat > "$dest/VERSIONS" <<TXT
htmx.org $HTMX (0BSD)
lightweight-charts $LWC (Apache-2.0)
swagger-ui-dist $SWAGGER (Apache-2.0)
TXT
echo "vendored into $dest:"; cat "$dest/VERSIONS"
