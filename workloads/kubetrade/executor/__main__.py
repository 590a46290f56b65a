"""``python -m kubetrade.executor ...``: the same subcommands as ``kubetrade ...``, importing only this role.

Tests, the soak and the benchmark start the process this way, so that a broken import
elsewhere in the one CLI cannot take the order path down with it.
"""

from __future__ import annotations

import argparse
import sys

from kubetrade.executor import commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetrade")
    commands.register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
