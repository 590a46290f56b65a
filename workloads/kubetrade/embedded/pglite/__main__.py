"""``python -m kubetrade.embedded.pglite install``: install PGlite with TimescaleDB ahead of the tests."""

import sys

from kubetrade.embedded.pglite import ensure_installed

if sys.argv[1:] != ["install"]:
    sys.exit("usage: python -m kubetrade.embedded.pglite install")
print(ensure_installed())
