"""``python -m kubetrade.risk ...``: the same subcommands as ``kubetrade ...``, importing only this role.

Tests, the soak and the benchmark start the process this way, so that a broken import
elsewhere in the one CLI cannot take the order path down with it.
"""

from __future__ import annotations

import sys

from kubetrade.cli import main

if __name__ == "__main__":
    sys.exit(main(modules=("kubetrade.risk.commands",)))
