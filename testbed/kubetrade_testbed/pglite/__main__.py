"""``python -m kubetrade_testbed.pglite install``: install PGlite with TimescaleDB ahead of the tests."""

import sys

from kubetrade_testbed.pglite import ensure_installed

if sys.argv[1:] != ["install"]:
    sys.exit("usage: python -m kubetrade_testbed.pglite install")
print(ensure_installed())
