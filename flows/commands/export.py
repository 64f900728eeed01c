"""``ray32 export``: re-encode a clip into deliverable formats (draft, HDR10, HLG, ProRes, ACES OpenEXR)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.progress import progress_bar

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


def export_file(path: Path, formats: list[str], out: Path, *, stem: str | None = None, start=None, end=None,
                options: dict | None = None, progress=None, deliver: list[str] | None = None,
                deliveries: dict | None = None) -> dict:
    """Read a clip once (ray32.shot.read_chunks) and write every format; returns {format: path}.

    ``deliver``: delivery targets written in the same pass into ``out/<target>/`` and checked; their records go
    into ``deliveries`` (a dict the caller passes) when given."""
    import numpy as np

    from ray32 import color
    from ray32 import shot as shotlib
    from ray32.export import export_stream

    shot = shotlib.open_shot(path, start=start, end=end)
    info = shot.info
    deep = info.bit_depth > 8
    chunks = shotlib.read_chunks(shot, output="linear" if deep else "uint8")
    if deep:  # more than 8 bits: hand the writers linear light in the working space instead of 8-bit codes
        prim = info.color_primaries if info.color_primaries in color.LINEAR_SPACES else (
            "bt2020" if color.is_hdr(color.source_space(info.color_transfer, info.color_primaries)) else "bt709")
        conv = color.Converter(color.LINEAR_SPACES[prim], color.WORKING_SPACE, out_dtype="float32")
        chunks = (conv(np.ascontiguousarray(c.frames)) for c in chunks)
    from ray32.deliver import get_target, open_targets, tee

    faces = None
    if any(get_target(t).aspect is not None for t in deliver or []):
        from ray32.faces import detect_faces

        faces = detect_faces(shot, stride=4)
    stem = stem or path.stem
    plans, writers = open_targets(deliver or [], out, stem=stem, source=shot, width=info.width, height=info.height,
                                  face_boxes=faces)
    try:
        paths = export_stream(formats, tee(chunks, writers.values()), out, stem=stem, fps=info.fps,
                              frame_count=shot.frame_count, width=info.width, height=info.height, source=shot,
                              options=options, progress=progress)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    if plans:
        from flows.commands.render import check_targets

        records = check_targets(plans, writers, paths, Path(out), shot, None, faces)
        if deliveries is not None:
            deliveries.update(records)
    return paths


def cmd_export(args: argparse.Namespace) -> int:
    from ray32.export import ExportError, available_formats

    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    if not formats:
        raise ExportError(f"--to names no format; available: {', '.join(available_formats())}")
    for f in formats:
        if f not in available_formats():
            raise ExportError(f"unknown export format {f!r}; available: {', '.join(available_formats())}")
    from flows.commands.render import parse_targets, print_deliveries

    targets = parse_targets(args.deliver)
    deliveries: dict = {}
    with progress_bar("exporting " + ",".join(formats)) as bar:
        paths = export_file(args.file, formats, args.out, stem=args.stem, start=args.start, end=args.end,
                            options=format_options(formats, args), progress=bar, deliver=targets,
                            deliveries=deliveries)
    for fmt, path in paths.items():
        print(f"{fmt:7s} {path}")
    print_deliveries(deliveries)
    return 0
