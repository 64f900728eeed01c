"""The ``ray32`` command line. It parses arguments and calls library functions; nothing else.

Each module in ``flows/commands/`` adds its subcommands through ``register(subparsers)``. How a command ends:

======  ==============================================================================================
status  meaning
======  ==============================================================================================
0       done (``campaign run`` / ``qa``: and everything passed)
1       done, but something failed that the output reports (a variant failed QA or its render)
2       bad input: one message naming the file or option and what to do (``Ray32Error``), no traceback;
        also a file the system refuses (missing, no permission)
70      a bug: an unexpected error. One line names it and the file holding the full traceback; ``-v`` prints
        the traceback too
130     interrupted (Ctrl-C)
======  ==============================================================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import platform
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

import flows.commands
from ray32.errors import Ray32Error

EXIT_USAGE = 2
EXIT_BUG = 70
"""An unexpected failure inside a command (EX_SOFTWARE in BSD's sysexits.h): a bug, not the user's input."""


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
    except OSError as ex:
        if ex.filename is None or ex.errno is None:
            return _crash(ex, argv, args.verbose)
        what = f"'{ex.filename}'" + (f" -> '{ex.filename2}'" if ex.filename2 else "")
        print(f"ray32: error: {what}: {ex.strerror}; check that the path exists and that you may read and write "
              "there", file=sys.stderr)
        return EXIT_USAGE
    except Exception as ex:  # a bug: one line and a file with the traceback, not 40 lines from a library
        return _crash(ex, argv, args.verbose)


def crash_dir() -> Path:
    """Where tracebacks of unexpected failures go: ``$RAY32_CACHE_DIR/crashes`` or ``~/.cache/ray32/crashes``."""
    base = os.environ.get("RAY32_CACHE_DIR") or Path.home() / ".cache" / "ray32"
    return Path(base) / "crashes"


def _crash(ex: BaseException, argv: list[str] | None, verbose: int) -> int:
    """Write the traceback to a file, print one line naming the error and that file, return ``EXIT_BUG``."""
    text = "".join(traceback.format_exception(ex))
    frames = traceback.extract_tb(ex.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    report = None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    header = (f"ray32 {_version()} on Python {platform.python_version()} ({platform.platform()})\n"
              f"command: ray32 {' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))}\n"
              f"time: {stamp} UTC\n\n")
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            report = folder / f"ray32-crash-{stamp}-{os.getpid()}.txt"
            report.write_text(header + text, encoding="utf-8")
            break
        except OSError:
            report = None
    if verbose:
        print(text, file=sys.stderr, end="")
    saved = f"the full traceback is in {report}" if report else "the traceback could not be saved"
    message = str(ex).splitlines()[0][:200] if str(ex) else ""
    print(f"ray32: internal error: {type(ex).__name__}{': ' + message if message else ''}{where}. This is a bug in "
          f"ray32, not a problem with your input; {saved} (attach it to a bug report; -v prints it)",
          file=sys.stderr)
    return EXIT_BUG


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ray32")
    except metadata.PackageNotFoundError:
        return "(not installed)"


if __name__ == "__main__":
    raise SystemExit(main())
