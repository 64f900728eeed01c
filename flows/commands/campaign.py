"""``ray32 campaign ...``: ``plan`` here; later modules add ``run``, ``approve``, ``reject``, ``serve``.

Another command module adds a subcommand with::

    from flows.commands.campaign import campaign_subparsers
    def register(sub):
        p = campaign_subparsers(sub).add_parser("run", help=...)
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
import textwrap
from pathlib import Path

log = logging.getLogger(__name__)

def campaign_subparsers(sub) -> argparse._SubParsersAction:
    """The ``campaign`` command's subparsers within the top-level ``sub``, created on first use (kept on ``sub``
    itself: a table keyed by ``id(sub)`` would hand a new parser the group of a freed one)."""
    group = getattr(sub, "_ray32_campaign_group", None)
    if group is None:
        p = sub.add_parser("campaign", help="plan (and run) a campaign: campaign.yaml + matrix sheets",
                           description="Work with a campaign folder: campaign.yaml (producer), the matrix sheets "
                                       "(marketing) and prompt templates.")
        group = p.add_subparsers(dest="campaign_command", metavar="SUBCOMMAND", required=True)
        sub._ray32_campaign_group = group
    return group


def register(sub) -> None:
    p = campaign_subparsers(sub).add_parser(
        "plan", help="list the variants a campaign makes (slug, id, axis values, prompt)",
        description="Validate campaign.yaml and the matrix sheets (every problem at once), expand the matrix and "
                    "print the planned variants. Imports no engine; nothing is rendered.",
    )
    p.add_argument("campaign", type=Path, help="the campaign folder (holds campaign.yaml)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    fmt.add_argument("--csv", action="store_true", help="print one CSV row per variant")
    p.add_argument("--matrix", help="read the matrix from this .xlsx workbook or folder of .csv files instead "
                                    "(inside the campaign folder)")
    p.add_argument("--engine-version", help="the engine version that goes into the ids (default: campaign.yaml's "
                                            "or the built-in table)")
    p.add_argument("--recheck", action="store_true",
                   help="check the sheets with Great Expectations even when the same cells passed before")
    p.set_defaults(func=cmd_plan)


def _table(plan) -> str:
    axes = plan.axes
    head = ["slug", "id"] + axes + ["prompt"]
    rows = [[v["slug"], v["variant_id"]] + [v["axes"][a] for a in axes] + [v["prompt"]] for v in plan.variants]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head) - 1)]
    term = shutil.get_terminal_size((160, 20)).columns
    indent = sum(widths) + 2 * len(widths)
    prompt_w = max(40, term - indent)
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  prompt"]
    for r in rows:
        wrapped = textwrap.wrap(r[-1], prompt_w) or [""]
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) + "  " + wrapped[0])
        lines += [" " * indent + more for more in wrapped[1:]]
    lines.append("")
    lines.append(f"{len(plan.variants)} variants of campaign '{plan.campaign}' ({' x '.join(axes)}"
                 + (f", {plan.excluded} excluded by rules" if plan.excluded else "") + f"); engine {plan.engine} "
                 f"{plan.engine_version}; source {plan.source} ({plan.source_hash[:12]})")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from flows.campaign import plan_campaign

    plan = plan_campaign(args.campaign, matrix=args.matrix, engine_version=args.engine_version,
                         use_cache=not args.recheck)
    for w in plan.warnings:
        print(f"ray32: warning: prompt lint: {w}", file=sys.stderr)
    for w in plan.input_warnings:
        print(f"ray32: warning: {w}", file=sys.stderr)
    if args.json:
        json.dump(plan.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["slug", "variant_id"] + plan.axes + ["seed", "mode", "prompt"])
        for v in plan.variants:
            writer.writerow([v["slug"], v["variant_id"]] + [v["axes"][a] for a in plan.axes]
                            + [v["request"]["seed"], v["request"]["mode"], v["prompt"]])
    else:
        print(_table(plan))
    return 0
