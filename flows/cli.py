"""The ``ray32`` command line. It parses arguments and calls library functions; nothing else.

Each module in ``flows/commands/`` adds its subcommands through ``register(subparsers)``; errors raised for bad
input (``Ray32Error``) are printed as one message and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import flows.commands
from ray32.errors import Ray32Error

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ray32",
        description="Directed video variants from one source shot and a campaign matrix: probe, render, "
                    "export, check and package.",
        epilog="Run 'ray32 COMMAND --help' for a command's options. 'ray32 demo' runs the demo end to end.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(flows.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"flows.commands.{mod.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except Ray32Error as ex:
        print(f"ray32: error: {ex}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ray32: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
