#!/usr/bin/env bash
# Install PGlite with the TimescaleDB extension (npm) for the Timescale tests; idempotent.
# Needs node 20+ and npm.  The tests call the same installer on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-.venv/bin/python}" -m kubetrade_testbed.pglite install
