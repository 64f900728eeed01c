"""``ray32 campaign run | approve | reject | package | serve``: the campaign run on Prefect and its review."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from flows.commands.campaign import campaign_subparsers

log = logging.getLogger(__name__)


def _quiet_prefect() -> None:
    """Prefect's defaults for a command line run here: no analytics, terse console logs."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _start_prefect() -> None:
    """Prefect's settings for the command line, and its temporary server booting in the background."""
    from flows.server import start_temporary_server

    _quiet_prefect()
    start_temporary_server()


def register(sub) -> None:
    group = campaign_subparsers(sub)
    p = group.add_parser(
        "run", help="render, check, report and package a campaign (on Prefect)",
        description="Plan the campaign (every problem at once, before any render), prepare the shot once, render "
                    "every variant that is not already rendered (fanned out, retried, cached by variant id), run QA, "
                    "write the QA report, and package the approved variants. Without a Prefect server a temporary "
                    "one starts (10-15 s); set PREFECT_API_URL to use yours.",
        epilog="Example: ray32 campaign run campaigns/demo --auto-approve; ray32 campaign run campaigns/demo "
               "--runner dask --address tcp://scheduler:8786",
    )
    p.add_argument("campaign", type=Path, help="the campaign folder (holds campaign.yaml)")
    p.add_argument("--engine", help="engine for every variant (default: campaign.yaml's)")
    p.add_argument("--out", dest="formats", help="export formats, comma separated (default: the campaign's)")
    p.add_argument("--run", help="run name (default: the UTC time); naming an existing run resumes it")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs and render cache (default ./runs)")
    p.add_argument("--deliverables", type=Path, default=Path("deliverables"),
                   help="where packaged variants go (default ./deliverables)")
    p.add_argument("--runner", choices=["threads", "dask", "ray"], default="threads",
                   help="where render tasks run (default: threads on this machine)")
    p.add_argument("--address", help="the Dask scheduler (tcp://host:8786) or Ray cluster (ray://host:10001) address; "
                                     "default: a local cluster")
    p.add_argument("--workers", type=int, help="parallel renders (threads or local Dask workers)")
    p.add_argument("--gpus", type=int, default=1, help="renders at once on a GPU engine here (default 1)")
    p.add_argument("--model-dir", type=Path,
                   help="weights folder for an engine that takes weights (default: campaign.yaml's engine.model_dir, "
                        "else $RAY32_MODEL_DIR on each worker, else the engine's default place)")
    p.add_argument("--qa-samples", type=int, default=9, help="frames OCR and face identity look at (default 9)")
    p.add_argument("--auto-approve", action="store_true", help="approve the variants that pass QA")
    p.add_argument("--review", action="store_true",
                   help="after the run, serve the review page (ray32 review) and print its URL; Ctrl-C stops")
    from flows.commands.review import add_review_arguments

    add_review_arguments(p, prefix="review-")
    p.add_argument("--review-in-prefect", action="store_true",
                   help="pause for a reviewer's decisions in the Prefect UI (needs 'prefect server start')")
    p.add_argument("--no-package", action="store_true", help="stop after the QA report")
    p.set_defaults(func=cmd_run)

    for name, state in (("approve", "approved"), ("reject", "rejected")):
        a = group.add_parser(
            name, help=f"{name} variants of a run (recorded with who, when, why)",
            description=f"Record that variants of a run are {state}, with a reason, the reviewer and the time, in "
                        "the run's manifest; then package the approved ones (unless --no-package)."
                        + (" A variant that failed QA needs --override 'reason'." if name == "approve" else ""),
            epilog=f"Example: ray32 campaign {name} demo/latest de-aqua500-golden --note 'label reads well'",
        )
        a.add_argument("run", help="the run: its folder, CAMPAIGN/RUN, CAMPAIGN/latest or RUN")
        a.add_argument("variants", nargs="+", help="variant slugs or ids, or 'all'")
        a.add_argument("--note", required=True, help="why")
        a.add_argument("--user", help="who (default: $RAY32_USER or the login name)")
        if name == "approve":
            a.add_argument("--override", help="approve variants that failed QA, for this reason")
        a.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs folder (default ./runs)")
        a.add_argument("--deliverables", type=Path, default=Path("deliverables"),
                       help="deliverables folder (default ./deliverables)")
        a.add_argument("--no-package", action="store_true", help="record only; do not package")
        a.set_defaults(func=cmd_decide, state=state)

    k = group.add_parser("package", help="package the approved variants of a run (idempotent)",
                         description="Package the approved variants of a run: per-market folders with the formats, "
                                     "a poster frame and manifest.json; a zip per market; an OpenTimelineIO timeline.")
    k.add_argument("run", help="the run: its folder, CAMPAIGN/RUN, CAMPAIGN/latest or RUN")
    k.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs folder (default ./runs)")
    k.add_argument("--deliverables", type=Path, default=Path("deliverables"), help="(default ./deliverables)")
    k.set_defaults(func=cmd_package)

    s = group.add_parser(
        "serve", help="serve the campaign's flow on its cron schedule (needs 'prefect server start')",
        description="Serve the campaign flow as a Prefect deployment on the schedule in campaign.yaml "
                    "(schedule: {cron, timezone}); runs until interrupted. Start a server first with "
                    "'prefect server start' and set PREFECT_API_URL.",
    )
    s.add_argument("campaign", type=Path, help="the campaign folder")
    s.add_argument("--cron", help="override the schedule (cron expression)")
    s.add_argument("--runs-dir", type=Path, default=Path("runs"))
    s.add_argument("--deliverables", type=Path, default=Path("deliverables"))
    s.add_argument("--auto-approve", action="store_true", help="approve the variants that pass QA")
    s.set_defaults(func=cmd_serve)


def print_result(result: dict) -> None:
    if result.get("unchanged"):
        print("nothing changed: every variant is rendered, judged and packaged in the latest run (no work done)")
    print(f"run:          {result['run_dir']}")
    print(f"variants:     {result['variants']} ({result['rendered']} rendered, {result['cached']} from the cache, "
          f"{len(result['failed'])} failed); {result['passed']} passed QA, {result['approved']} approved")
    for slug, why in result["failed"].items():
        print(f"  failed: {slug}: {why}")
    print(f"QA report:    {result['report']}")
    print_deliveries(result.get("deliveries") or {})
    if result["deliverables"]:
        print(f"deliverables: {result['deliverables']} ({len(result['packaged'])} variants packaged)")
    else:
        print("deliverables: none yet (approve variants with 'ray32 campaign approve RUN VARIANT... --note ...')")
    print(f"time:         {result['timings']['wall_s']:.1f} s")


def print_deliveries(summary: dict) -> None:
    """One line per delivery target: how many variants pass its checks, and each distinct reason it fails."""
    for k, (target, s) in enumerate(summary.items()):
        counts = ", ".join(f"{s[v]} {v}" for v in ("pass", "fail", "not checked") if s[v])
        print(f"{'deliveries:' if k == 0 else '':14}{target}: {counts}")
        for why, n in list(s["reasons"].items())[:3]:
            print(f"{'':16}{why} ({n} variant{'s' if n != 1 else ''})")
        if len(s["reasons"]) > 3:
            print(f"{'':16}... and {len(s['reasons']) - 3} other reasons (QA report)")


def _unchanged(campaign, *, runs_dir, deliverables, run=None, engine=None, formats=None, auto_approve=False,
               review=False) -> dict | None:
    """The result of a rerun that has nothing to do (``flows.unchanged``), recorded; None when there is work."""
    if review:
        return None
    import time

    from flows.unchanged import find_unchanged, note_unchanged

    t0 = time.perf_counter()
    found = find_unchanged(campaign, runs_dir=runs_dir, deliverables_dir=deliverables, run=run, engine=engine,
                           formats=formats, auto_approve=auto_approve)
    if found is None:
        return None
    note_unchanged(found, time.perf_counter() - t0)
    return found.result


def cmd_run(args: argparse.Namespace) -> int:
    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    result = _unchanged(args.campaign, runs_dir=args.runs_dir, deliverables=None if args.no_package else
                        args.deliverables, run=args.run, engine=args.engine, formats=formats,
                        auto_approve=args.auto_approve, review=args.review)
    if result is not None:
        print_result(result)
        return 0
    # No early server start here: a campaign that fails its checks (run_campaign's first step) must not boot or
    # write a Prefect server; the flow call starts the temporary one when none is configured.
    _quiet_prefect()
    from flows.run import run_campaign

    result = run_campaign(args.campaign, runner=args.runner, address=args.address, workers=args.workers,
                          runs_dir=str(args.runs_dir), deliverables_dir=str(args.deliverables), run=args.run,
                          engine=args.engine, formats=formats, qa_samples=args.qa_samples,
                          auto_approve=args.auto_approve, review=args.review_in_prefect, gpus=args.gpus,
                          package=not args.no_package,
                          model_dir=str(args.model_dir.resolve()) if args.model_dir else None)
    print_result(result)
    if args.review:
        _serve_review(args, result)
    return 1 if result["failed"] else 0


def _serve_review(args: argparse.Namespace, result: dict, user: str | None = None) -> None:
    """``--review``: serve the run's review page (``ray32 review``) until Ctrl-C."""
    from flows.commands.review import serve

    print(f"review:       ray32 review {result['run_dir']}  (serving it now)", flush=True)
    serve(result["run_dir"], host=args.review_host, port=args.review_port, token=args.review_token,
          user=user or os.environ.get("RAY32_USER"), deliverables=args.deliverables)


def cmd_decide(args: argparse.Namespace) -> int:
    from flows.approval import record_decision
    from flows.manifest import resolve_run

    run_dir = resolve_run(args.run, args.runs_dir)
    done = record_decision(run_dir, args.variants, args.state, note=args.note, user=args.user,
                           override=getattr(args, "override", None))
    print(f"{args.state}: {', '.join(done) or 'nothing'} ({run_dir})")
    if not args.no_package:
        return cmd_package(argparse.Namespace(run=str(run_dir), runs_dir=run_dir.parent.parent,
                                              deliverables=args.deliverables))
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from flows.manifest import resolve_run
    from flows.package import package_run
    from flows.pipeline import write_run_report

    run_dir = resolve_run(args.run, args.runs_dir)
    out = package_run(run_dir, run_dir.parent.parent, args.deliverables)
    write_run_report(run_dir, run_dir.parent.parent)  # the report shows the approvals
    print(f"deliverables: {out['folder']} ({len(out['variants'])} variants; "
          f"{len(out['changed'])} files changed)")
    print(f"QA report:    {run_dir / 'qa_report.html'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.campaign import plan_campaign
    from flows.manifest import RunError

    plan = plan_campaign(args.campaign)
    cron = args.cron or (plan.schedule or {}).get("cron")
    if not cron:
        raise RunError(f"campaign '{plan.campaign}' has no schedule; add schedule: {{cron: '0 6 * * 1'}} to "
                       "campaign.yaml or give --cron")
    if not os.environ.get("PREFECT_API_URL"):
        print("ray32: warning: PREFECT_API_URL is not set; start a server with 'prefect server start' and set "
              "PREFECT_API_URL=http://127.0.0.1:4200/api so that scheduled runs survive", file=sys.stderr)
    _quiet_prefect()
    from prefect.schedules import Cron

    from flows.run import campaign_flow

    tz = (plan.schedule or {}).get("timezone") or "UTC"
    print(f"serving campaign '{plan.campaign}' on '{cron}' ({tz}); Ctrl-C stops")
    campaign_flow.serve(name=f"ray32-{plan.campaign}", schedule=Cron(cron, timezone=tz),
                        parameters={"campaign_dir": str(args.campaign.resolve()),
                                    "runs_dir": str(args.runs_dir.resolve()),
                                    "deliverables_dir": str(args.deliverables.resolve()),
                                    "auto_approve": args.auto_approve})
    return 0


DEMO_CAMPAIGN = Path(__file__).resolve().parents[2] / "campaigns" / "demo"
DEMO_QA_SAMPLES = 3


def add_demo_arguments(d: argparse.ArgumentParser) -> None:
    """``ray32 demo``'s options for the demo campaign run."""
    d.add_argument("--campaign", type=Path, default=DEMO_CAMPAIGN, help="the campaign to run (default: the demo's)")
    d.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs and render cache (default ./runs)")
    d.add_argument("--deliverables", type=Path, default=Path("deliverables"),
                   help="where packaged variants go (default ./deliverables)")
    d.add_argument("--qa-samples", type=int, default=DEMO_QA_SAMPLES,
                   help=f"frames OCR and face identity look at (default {DEMO_QA_SAMPLES} in the demo)")
    d.add_argument("--workers", type=int, help="parallel renders (default: the CPU count, at most 4)")
    d.add_argument("--no-campaign", action="store_true", help="only make and probe the shot")
    d.add_argument("--review", action="store_true",
                   help="then open the demo run for review in the browser (ray32 review; Ctrl-C stops)")
    from flows.commands.review import add_review_arguments

    add_review_arguments(d, prefix="review-")


def check_demo_campaign(args: argparse.Namespace) -> dict | None:
    """Before the demo shot is made: the result of an unchanged demo campaign (nothing to do), or None, and then
    Prefect's temporary server boots in the background while the shot is made."""
    if args.no_campaign:
        return None
    result = _unchanged(args.campaign, runs_dir=args.runs_dir, deliverables=args.deliverables, auto_approve=True)
    if result is None:
        _start_prefect()
    return result


def run_demo_campaign(args: argparse.Namespace, unchanged: dict | None = None) -> int:
    """Run the demo campaign end to end (QA-passing variants approved automatically) and print where the
    deliverables and the QA report are; ``unchanged``: ``check_demo_campaign``'s result."""
    if args.no_campaign:
        return 0
    print()
    print(f"running campaign {args.campaign} ...", flush=True)
    reviewer = os.environ.get("RAY32_USER")  # who reviews with --review (the page asks when unset)
    if unchanged is not None:
        print_result(unchanged)
        return 0
    _start_prefect()
    from flows.run import run_campaign

    os.environ.setdefault("RAY32_USER", "ray32 demo (auto-approved: QA passed)")
    result = run_campaign(args.campaign, runs_dir=str(args.runs_dir), deliverables_dir=str(args.deliverables),
                          qa_samples=args.qa_samples, workers=args.workers, auto_approve=True,
                          deliver_preset="ultrafast")
    print_result(result)
    if getattr(args, "review", False):
        if reviewer is None:
            os.environ.pop("RAY32_USER", None)
        _serve_review(args, result, reviewer)
    return 1 if result["failed"] else 0
