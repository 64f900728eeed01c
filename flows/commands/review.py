"""``ray32 review RUN``: review a run in the browser (watch, comment at a timecode, approve, reject)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "review", help="review a run in the browser: watch, comment at a timecode, approve or reject",
        description="Serve a local web page over a run: each variant's draft beside its source, its QA verdict "
                    "and failing frames, comments pinned to a timecode, Approve / Reject with a note. Decisions "
                    "are recorded in the run's manifest (as 'ray32 campaign approve' does) and the run is packaged "
                    "again. Binds to 127.0.0.1; another address needs a token (generated when not given).",
        epilog="Example: ray32 review demo/latest; ray32 review runs/demo/20261121-093012 --host 0.0.0.0 --port 9000",
    )
    p.add_argument("run", help="the run: its folder, CAMPAIGN/RUN, CAMPAIGN/latest or RUN")
    add_review_arguments(p)
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs folder (default ./runs)")
    p.add_argument("--deliverables", type=Path, default=Path("deliverables"),
                   help="deliverables folder (default ./deliverables)")
    p.set_defaults(func=cmd_review)


def add_review_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--host``, ``--port``, ``--token``, ``--user`` (``prefix`` names them e.g. ``--review-host``)."""
    p.add_argument(f"--{prefix}host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(f"--{prefix}port", type=int, default=8765, help="port (default 8765)")
    p.add_argument(f"--{prefix}token", help="required of every request (generated when --host is not a loopback "
                                            "address and none is given)")
    if not prefix:
        p.add_argument("--user", help="who decides (default: $RAY32_USER; else the page asks the reviewer's name)")


def serve(run_dir, *, host: str, port: int, token: str | None, user: str | None, deliverables: Path) -> int:
    """Serve the review page of ``run_dir`` until Ctrl-C."""
    from flows.review import serve_review

    serve_review(run_dir, host=host, port=port, token=token, user=user,
                 runs_dir=Path(run_dir).parent.parent, deliverables=deliverables,
                 announce=lambda line: print(line, flush=True))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from flows.manifest import resolve_run

    run_dir = resolve_run(args.run, args.runs_dir)
    return serve(run_dir, host=args.host, port=args.port, token=args.token,
                 user=args.user or os.environ.get("RAY32_USER"),
                 deliverables=args.deliverables)
