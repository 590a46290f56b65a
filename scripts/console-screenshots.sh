#!/usr/bin/env bash
# Refresh the console's screenshots in docs/console/: runs the browser tests (a real `kubetrade up`
# and headless Chromium) with KUBETRADE_CONSOLE_SCREENSHOTS pointing there; each page test saves
# what the browser showed.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[screenshots] browser: $(bash scripts/testbed/install-chromium.sh)"
mkdir -p docs/console
export KUBETRADE_CONSOLE_SCREENSHOTS="$PWD/docs/console"
.venv/bin/python -m pytest tests/console -q -p no:cacheprovider "$@"
ls -1 docs/console/*.png
