"""``ray32 render``: one variant of a source shot through an engine, written in the requested formats."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from flows.progress import progress_bar
from ray32.errors import Ray32Error

log = logging.getLogger(__name__)

GRADE_KEYS = ("temperature", "tint", "exposure", "contrast", "saturation")


class RenderArgsError(Ray32Error):
    """A ``ray32 render`` option that cannot be read."""


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="render one variant of a shot (label swap, relight, reframe, ...) and export it",
        description="Render one variant of SOURCE with an engine and write the requested formats. The composite "
                    "engine (CPU, no weights) swaps a tracked label, relights by grade in linear light and reframes "
                    "by a subject-tracked crop; generative engines also use the prompt, keyframes and adherences.",
        epilog="Example: ray32 render shot.mp4 --label-art de.png --label-text MEERESBRISE "
               "--label-corners 579.5,254.5,799.5,254.5,799.5,374.5,579.5,374.5@0 "
               "--grade temperature=5200,exposure=0.3 --reframe 9:16 --out draft,exr --out-dir out/de",
    )
    p.add_argument("source", type=Path, help="the source shot (at most 20 s)")
    p.add_argument("--engine", default="composite", help="engine name (default: composite)")
    p.add_argument("--request", type=Path, help="a JSON render request to start from; options below override it")
    p.add_argument("--prompt", help="target-state prompt (generative engines)")
    p.add_argument("--keyframe", action="append", default=[], metavar="TIME=GUIDE",
                   help="a keyframe: time (2.5, 00:00:02:12, 60f) = guide image; repeatable")
    p.add_argument("--motion", type=float, help="motion adherence 0..1")
    p.add_argument("--structure", type=float, help="structure adherence 0..1")
    p.add_argument("--mode", choices=["adhere", "flex", "reimagine"], help="preset for the adherences")
    p.add_argument("--label-art", type=Path, help="the market's label artwork (PNG/JPEG)")
    p.add_argument("--label-text", help="the text on the artwork (what OCR should read back)")
    p.add_argument("--label-corners", metavar="x1,y1,x2,y2,x3,y3,x4,y4@FRAME",
                   help="the label's corners (top-left, top-right, bottom-right, bottom-left) on frame FRAME "
                        "(a frame number, or a time such as 0.5s); @FRAME defaults to 0")
    p.add_argument("--grade", metavar="KEY=VALUE,...",
                   help="relight: temperature=K (6500 = unchanged, lower = warmer), tint=-1..1, exposure=stops, "
                        "contrast=1, saturation=1, lut=FILE.cube")
    p.add_argument("--grade-key", action="append", default=[], metavar="TIME:KEY=VALUE,...",
                   help="a grade keyframe, e.g. '2.5:temperature=3200'; values are interpolated between keys")
    p.add_argument("--reframe", metavar="ASPECT", help="crop to 9:16, 1:1, 4:5, 16:9 or 21:9 following the subject")
    p.add_argument("--seed", type=int, help="random seed (generative engines)")
    p.add_argument("--out", default=None, help="formats, comma separated (default: draft)")
    p.add_argument("--deliver", action="append", default=[], metavar="TARGET",
                   help="also deliver to a platform target (master, meta-reels, meta-feed-4x5, tiktok, "
                        "youtube-shorts, ctv-16x9; repeatable or comma separated): reframed to its aspect with the "
                        "label and faces kept clear of its interface zones, encoded to its spec, loudness "
                        "normalised, then checked; into OUT_DIR/<target>/")
    p.add_argument("--out-dir", type=Path, default=Path("build/render"), help="output folder (default build/render)")
    p.add_argument("--stem", help="output file name stem (default: SOURCE's name + engine)")
    p.add_argument("--start", help="trim start (seconds, timecode or 60f)")
    p.add_argument("--end", help="trim end, exclusive")
    p.add_argument("--cache-dir", type=Path, help="prepared-shot cache (default $RAY32_CACHE_DIR or ~/.cache/ray32)")
    # Generative engines (wan-vace): where the weights are, and reframing by outpainting.
    p.add_argument("--model-dir", type=Path,
                   help="wan-vace: a diffusers Wan2.1-VACE folder (default: the Hugging Face cache, never downloaded)")
    p.add_argument("--reframe-method", choices=["crop", "outpaint"], default="crop",
                   help="how --reframe reaches the aspect: subject-tracked crop (composite) or outpaint (wan-vace)")
    p.set_defaults(func=cmd_render)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RenderArgsError(f"{what}: {text!r} is not a number") from None


def parse_corners(text: str) -> tuple[list[list[float]], str | int]:
    """``"x1,y1,...,x4,y4@FRAME"`` -> (corners, frame)."""
    coords, _, frame = text.partition("@")
    parts = [c for c in coords.replace(" ", "").split(",") if c]
    if len(parts) != 8:
        raise RenderArgsError(f"--label-corners needs 8 numbers x1,y1,x2,y2,x3,y3,x4,y4 (top-left, top-right, "
                              f"bottom-right, bottom-left), got {len(parts)} in {text!r}")
    vals = [_number(v, "--label-corners") for v in parts]
    frame = frame.strip() or "0"
    return [vals[k:k + 2] for k in range(0, 8, 2)], (int(frame) if frame.isdigit() else frame)


def parse_grade(text: str, what: str = "--grade") -> dict:
    """``"temperature=5200,exposure=0.3,lut=look.cube"`` -> dict."""
    out: dict = {}
    for item in (i for i in text.split(",") if i.strip()):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise RenderArgsError(f"{what}: {item!r} is not KEY=VALUE (keys: {', '.join(GRADE_KEYS)}, lut)")
        if key == "lut" and what == "--grade":
            out["lut"] = value.strip()
        elif key in GRADE_KEYS:
            out[key] = _number(value, f"{what} {key}")
        else:
            raise RenderArgsError(f"{what}: unknown key {key!r}; use {', '.join(GRADE_KEYS)}"
                                  + (" or lut" if what == "--grade" else ""))
    return out


def build_request(args: argparse.Namespace):
    """The ``RenderRequest`` from a JSON file (optional) and the command-line options over it."""
    from pydantic import ValidationError

    from ray32.request import RenderRequest

    data: dict = {}
    if args.request:
        try:
            data = json.loads(Path(args.request).read_text())
        except (OSError, ValueError) as ex:
            raise RenderArgsError(f"--request {str(args.request)!r} cannot be read as JSON: {ex}") from ex
    if args.prompt is not None:
        data["prompt"] = args.prompt
    if args.keyframe:
        kfs = []
        for item in args.keyframe:
            time, sep, guide = item.partition("=")
            if not sep or not guide:
                raise RenderArgsError(f"--keyframe {item!r}: write TIME=GUIDE, e.g. 2.5=guide.png")
            kfs.append({"time": time, "guide": guide})
        data["keyframes"] = kfs
    for opt, field in (("motion", "motion_adherence"), ("structure", "structure_adherence"), ("mode", "mode"),
                       ("seed", "seed")):
        if getattr(args, opt) is not None:
            data[field] = getattr(args, opt)
    if args.label_art or args.label_corners or args.label_text:
        missing = [o for o, v in (("--label-art", args.label_art), ("--label-corners", args.label_corners))
                   if not v]
        if missing:
            raise RenderArgsError(f"a label swap needs {' and '.join(missing)} as well")
        corners, frame = parse_corners(args.label_corners)
        data["label_swap"] = {"artwork": str(args.label_art), "text": args.label_text or "",
                              "corners": corners, "frame": frame}
    if args.grade or args.grade_key:
        grade = parse_grade(args.grade or "")
        keys = []
        for item in args.grade_key:
            time, sep, rest = item.partition(":")
            if not sep:
                raise RenderArgsError(f"--grade-key {item!r}: write TIME:KEY=VALUE,..., e.g. 2.5:temperature=3200")
            keys.append({"time": time, **parse_grade(rest, "--grade-key")})
        if keys:
            grade["keyframes"] = keys
        data["grade"] = grade
    if args.reframe:
        data["reframe"] = {"aspect": args.reframe, "method": getattr(args, "reframe_method", None) or "crop"}
    if args.out:
        data["outputs"] = [f.strip() for f in args.out.split(",") if f.strip()]
    try:
        return RenderRequest.model_validate(data)
    except ValidationError as ex:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in ex.errors())
        raise RenderArgsError(f"the render request is not valid: {problems}") from None


def render_to_files(source: Path, request, **kwargs) -> dict[str, Path]:
    """Open the shot, prepare it (cached), render the request and export it. Returns ``{format: path}``.

    Keyword arguments are ``render_and_deliver``'s."""
    return render_and_deliver(source, request, **kwargs)[0]


def render_and_deliver(source: Path, request, *, engine_name: str = "composite", out_dir: Path,
                       stem: str | None = None, start=None, end=None, cache_dir: Path | None = None,
                       progress_enabled: bool | None = None, engine_options: dict | None = None,
                       deliver: list[str] | None = None) -> tuple[dict[str, Path], dict]:
    """``render_to_files`` plus delivery targets: returns ``({format: path}, {target: delivery record})``.

    ``engine_options`` go to the engine's constructor (wan-vace: ``model_dir``). ``deliver``: delivery targets
    written in the same pass into ``out_dir/<target>/`` and checked; their records (with the checks' verdicts)
    are also in ``<stem>.request.json`` under ``deliveries``."""
    from ray32.engines import get_engine
    from ray32.export import ExportError, available_formats, export_stream
    from ray32.shot import open_shot

    shot = open_shot(source, start=start, end=end, detect_cuts=False)
    engine = get_engine(engine_name, **(engine_options or {}))
    unknown = [f for f in request.outputs if f not in available_formats()]
    if unknown:
        raise ExportError(f"unknown export format(s) {', '.join(map(repr, unknown))}; available: "
                          f"{', '.join(available_formats())}")
    request.check_times(shot.fps, shot.frame_count)
    settings = engine.prepare_settings(request, shot)
    if cache_dir is not None:
        settings["cache_dir"] = str(cache_dir)
    with progress_bar("preparing shot", total=shot.frame_count, enabled=progress_enabled) as bar:
        prepared = engine.prepare(shot, settings, progress=bar)
    width, height = engine.output_size(prepared, request)
    stem = stem or f"{source.stem}_{engine.name}"
    from ray32.deliver import open_targets, tee

    quads, faces = None, None
    if request.reframe is None:
        quads, faces = _tracks(prepared)
    plans, writers = open_targets(deliver or [], out_dir, stem=stem, source=shot, width=width, height=height,
                                  label_quads=quads, face_boxes=faces,
                                  reframed=request.reframe.aspect if request.reframe else None)
    try:
        with progress_bar("rendering", total=shot.frame_count, enabled=progress_enabled) as bar:
            paths = export_stream(request.outputs, tee(engine.render(prepared, request), writers.values()), out_dir,
                                  stem=stem, fps=shot.fps, frame_count=shot.frame_count, width=width,
                                  height=height, source=shot, progress=bar)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    deliveries = check_targets(plans, writers, paths, out_dir, shot, quads, faces)
    record = out_dir / f"{stem}.request.json"
    tmp = record.with_name(f".{record.name}.partial")
    tmp.write_text(json.dumps({"source": str(source), "engine": engine.name, "engine_version": engine.version,
                               "request": json.loads(request.to_json()),
                               "outputs": {k: str(v) for k, v in paths.items()},
                               "deliveries": deliveries}, indent=2, default=str))
    os.replace(tmp, record)
    return paths, deliveries


def _tracks(prepared):
    """The label's quads (NaN where weak) and the face boxes of a prepared shot."""
    import numpy as np

    quads = None
    if prepared.label_track is not None:
        quads = np.asarray(prepared.label_track.corners, float).copy()
        quads[~np.asarray(prepared.label_track.valid, bool)] = np.nan
    return quads, prepared.face_boxes


def check_targets(plans: dict, writers: dict, paths: dict, out_dir: Path, shot, quads, faces) -> dict:
    """Finish the delivery targets and run the delivery checks on each; returns the delivery records."""
    from flows.pipeline import check_deliveries
    from qa.delivery import black_freeze
    from ray32.deliver import close_targets

    if not plans:
        return {}
    records = close_targets(plans, writers, paths, out_dir, measure_after=False)
    start = float(shot.first / shot.fps) if shot.first else None
    src_bf = black_freeze(shot.info.path, start=start, duration=float(shot.frame_count / shot.fps))
    check_deliveries(records, plans, Path(out_dir), shot, quads, faces, src_bf)
    return records


def parse_targets(values: list[str]) -> list[str]:
    """``--deliver`` values (repeatable, comma separated) -> checked target names."""
    from ray32.targets import get_target

    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    for n in names:
        get_target(n)  # an unknown name lists the known ones
    return list(dict.fromkeys(names))


def print_deliveries(deliveries: dict) -> None:
    for name, rec in deliveries.items():
        qa = rec.get("qa") or {}
        loud = rec.get("loudness") or {}
        before, after = loud.get("before") or {}, loud.get("after") or {}
        def one(x):
            return "-" if x is None else f"{x:.1f}"

        print(f"{name:15s} {Path(name) / (rec.get('file') or '')}  delivery checks: {qa.get('verdict')}  "
              f"loudness {one(before.get('integrated'))} -> {one(after.get('integrated'))} LUFS, "
              f"true peak {one(after.get('true_peak'))} dBTP")
        for note in rec.get("notes") or []:
            print(f"  note: {note}")
        for reason in qa.get("reasons") or []:
            print(f"  - {reason}")


def cmd_render(args: argparse.Namespace) -> int:
    request = build_request(args)
    engine_options = {}
    if getattr(args, "model_dir", None) is not None:
        if args.engine != "wan-vace":
            raise RenderArgsError(f"--model-dir is for the wan-vace engine, not {args.engine!r}")
        engine_options["model_dir"] = args.model_dir
    targets = parse_targets(args.deliver)
    paths, deliveries = render_and_deliver(args.source, request, engine_name=args.engine, out_dir=args.out_dir,
                                           stem=args.stem, start=args.start, end=args.end, cache_dir=args.cache_dir,
                                           engine_options=engine_options, deliver=targets)
    for fmt, path in paths.items():
        print(f"{fmt:8s} {path}")
    print_deliveries(deliveries)
    return 0
