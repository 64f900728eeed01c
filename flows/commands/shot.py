"""``ray32 probe`` and ``ray32 demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flows.progress import progress_bar
from ray32 import shot as shotlib
from ray32.shot import describe, format_table  # noqa: F401  (the library's printout of a shot)


def register(sub) -> None:
    p = sub.add_parser(
        "probe", help="what a video is: codec, size, timing, colour, audio, cuts",
        description="Read a clip and print what it is: container, codec, size, frame rate (exact), frame count, "
                    "duration, pixel format and bit depth, colour tags (SDR/PQ/HLG), rotation, audio streams, "
                    "variable frame rate, and the checks a source shot must pass (at most 20 s, one take).",
    )
    p.add_argument("file", type=Path, help="the video file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--start", help="trim start: seconds (2.5), clock (00:02.5), timecode (00:00:02:12) or frame (60f)")
    p.add_argument("--end", help="trim end, exclusive (same forms as --start)")
    p.add_argument("--no-cuts", action="store_true", help="skip cut detection (it decodes a small copy of the clip)")
    p.set_defaults(func=cmd_probe)

    d = sub.add_parser(
        "demo", help="make the synthetic demo shot, probe it, then run the demo campaign end to end",
        description="Write the deterministic synthetic demo shot (a labelled product, a face, a camera push-in) "
                    "with its per-frame ground truth, then probe it. Then run the demo campaign (campaigns/demo) "
                    "end to end: render, QA, report, approve what passes QA, package.",
    )
    d.add_argument("--out", type=Path, default=Path("build/demo"), help="output folder (default: build/demo)")
    d.add_argument("--overwrite", action="store_true", help="write the shot again even if it exists")
    from flows.commands.campaign_run import add_demo_arguments  # issue 7: the demo campaign run

    add_demo_arguments(d)
    d.set_defaults(func=cmd_demo)


def probe_file(path: Path, *, start=None, end=None, cuts: bool = True) -> shotlib.Shot:
    info = shotlib.probe(path)
    with progress_bar("checking for cuts", total=info.frame_count) as bar:
        return shotlib.open_shot(path, start=start, end=end, detect_cuts=cuts, info=info, progress=bar)


def cmd_probe(args: argparse.Namespace) -> int:
    shot = probe_file(args.file, start=args.start, end=args.end, cuts=not args.no_cuts)
    if args.json:
        json.dump(describe(shot), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(shot))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.commands.campaign_run import check_demo_campaign, run_demo_campaign  # issue 7: the campaign run
    from ray32.demo_shot import make_demo_shot

    unchanged = check_demo_campaign(args)  # nothing to do, or Prefect's server starts booting now
    demo = make_demo_shot(args.out, overwrite=args.overwrite)
    print(f"demo shot:    {demo.path}")
    print(f"ground truth: {demo.truth_path}")
    print()
    print(format_table(probe_file(demo.path)))
    return run_demo_campaign(args, unchanged)
