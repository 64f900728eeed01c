"""``ray32 export``: re-encode a clip into deliverable formats (draft, HDR10, HLG, ProRes, ACES OpenEXR)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.progress import progress_bar
from ray32.export import export_file  # noqa: F401  (the library function the command calls)

FORMAT_HELP = ("draft (H.264 MP4), hdr10 (HEVC Main10 PQ + HDR10 metadata), hlg (HEVC Main10 HLG), "
               "prores (ProRes 422 HQ / 4444 MOV), exr (ACES OpenEXR half-float sequence)")


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="re-encode a clip into deliverable formats",
        description="Re-encode a clip into deliverable formats, colour managed with OpenColorIO's ACES config. "
                    "Every output keeps the source's frame rate, frame count and duration; video formats carry "
                    "the source's audio. Formats: " + FORMAT_HELP + ".",
    )
    p.add_argument("file", type=Path, help="the source clip")
    p.add_argument("--to", required=True, metavar="FORMATS", help="comma-separated formats, e.g. draft,hdr10,exr")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--stem", help="base name of the outputs (default: the source's file name)")
    p.add_argument("--start", help="trim start (seconds, clock, timecode or 60f)")
    p.add_argument("--end", help="trim end, exclusive")
    p.add_argument("--draft-size", default="source", help="draft size: source, 540p, 720p, ... or WxH")
    p.add_argument("--draft-quality", default="standard", choices=("fast", "standard", "high"))
    p.add_argument("--hdr-preset", default="fast", help="x265 preset for hdr10/hlg (default: fast)")
    p.add_argument("--max-luminance", type=float, default=1000, help="hdr10 mastering display peak in nits")
    p.add_argument("--prores-profile", default="422hq", choices=("422hq", "4444"))
    p.add_argument("--exr-space", default="ACEScg", choices=("ACEScg", "ACES2065-1"))
    p.add_argument("--exr-compression", default="dwab", choices=("dwab", "zip", "piz", "none"))
    p.add_argument("--deliver", action="append", default=[], metavar="TARGET",
                   help="also deliver to a platform target (master, meta-reels, meta-feed-4x5, tiktok, "
                        "youtube-shorts, ctv-16x9; repeatable or comma separated) into OUT/<target>/, then check "
                        "it. A target of another aspect follows the faces (found here; a clip has no label track: "
                        "use `ray32 render --deliver` for a label-aware crop)")
    p.set_defaults(func=cmd_export)


def format_options(formats: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """The per-format options of the formats asked for, from the command-line flags."""
    every = {
        "draft": {"size": args.draft_size, "quality": args.draft_quality},
        "hdr10": {"preset": args.hdr_preset, "max_luminance": args.max_luminance},
        "hlg": {"preset": args.hdr_preset},
        "prores": {"profile": args.prores_profile},
        "exr": {"space": args.exr_space, "compression": args.exr_compression},
    }
    return {f: every[f] for f in formats if f in every}


def cmd_export(args: argparse.Namespace) -> int:
    from ray32.export import ExportError, available_formats

    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    if not formats:
        raise ExportError(f"--to names no format; available: {', '.join(available_formats())}")
    for f in formats:
        if f not in available_formats():
            raise ExportError(f"unknown export format {f!r}; available: {', '.join(available_formats())}")
    from flows.commands.render import parse_targets, print_deliveries
    from flows.pipeline import delivery_checker

    targets = parse_targets(args.deliver)
    deliveries: dict = {}
    with progress_bar("exporting " + ",".join(formats)) as bar:
        paths = export_file(args.file, formats, args.out, stem=args.stem, start=args.start, end=args.end,
                            options=format_options(formats, args), progress=bar, deliver=targets,
                            deliveries=deliveries, check_deliveries=delivery_checker())
    for fmt, path in paths.items():
        print(f"{fmt:7s} {path}")
    print_deliveries(deliveries)
    return 0
