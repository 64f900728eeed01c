"""``ray32 render``: one variant of a source shot through an engine, written in the requested formats."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
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
               "--label-corners 594.5,194.5,784.5,194.5,784.5,298.5,594.5,298.5@0 "
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
            raise RenderArgsError(f"--request {str(args.request)!r} cannot be read as JSON ({ex}); write it as a "
                                  "JSON object of request fields, e.g. {\"prompt\": \"...\", \"grade\": "
                                  "{\"exposure\": 0.5}}") from ex
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
        from ray32.inputs import validation_problems

        problems = "; ".join(validation_problems(ex, RenderRequest))
        source = f"from --request {str(args.request)!r} and the options" if args.request else "from the options"
        raise RenderArgsError(f"the render request {source} is not valid: {problems}") from None


@contextlib.contextmanager
def stage_bars():
    """A ``progress(stage, done, total)`` callback showing one progress bar per stage ("preparing shot",
    "rendering")."""
    names = {"prepare": "preparing shot", "render": "rendering"}
    with contextlib.ExitStack() as stack:
        bars: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = stack.enter_context(progress_bar(names.get(stage, stage), total=total))
            bars[stage](done, total)

        yield progress


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
    from ray32.engines import ENGINES, engine_info, resolve_model_dir
    from ray32.inputs import check_request_inputs

    request = build_request(args)
    given = {"prompt": args.prompt, "keyframes": args.keyframe, "motion_adherence": args.motion,
             "structure_adherence": args.structure, "label_swap.artwork": args.label_art,
             "reframe": args.reframe if args.reframe_method != "crop" else None}
    options = {"prompt": "--prompt", "keyframes": "--keyframe", "motion_adherence": "--motion",
               "structure_adherence": "--structure", "label_swap.artwork": "--label-art", "reframe": "--reframe-method"}
    for w in check_request_inputs(request, args.engine, source=args.source, start=args.start, end=args.end,
                                  options={k: o for k, o in options.items() if given[k] not in (None, [])}):
        print(f"ray32: warning: {w}", file=sys.stderr)
    engine_options = {}
    if getattr(args, "model_dir", None) is not None and not engine_info(args.engine).weights:
        weighted = ", ".join(n for n, e in ENGINES.items() if e.weights)
        raise RenderArgsError(f"--model-dir is for engines that take weights ({weighted}), not {args.engine!r}")
    folder = resolve_model_dir(args.engine, getattr(args, "model_dir", None))   # or $RAY32_MODEL_DIR
    if folder is not None:
        engine_options["model_dir"] = folder
    targets = parse_targets(args.deliver)
    from flows.pipeline import delivery_checker
    from ray32.render import render_to_files

    with stage_bars() as progress:
        result = render_to_files(args.source, request, engine=args.engine, engine_options=engine_options,
                                 out_dir=args.out_dir, stem=args.stem, start=args.start, end=args.end,
                                 cache_dir=args.cache_dir, progress=progress, write_request=True,
                                 deliver=targets, check_deliveries=delivery_checker())
    for fmt, path in result.paths.items():
        print(f"{fmt:8s} {path}")
    if result.label_withheld:
        print("label withheld where the track is lost: " + ", ".join(
            f"frames {r['frames'][0]}-{r['frames'][1]} ({r['start']}-{r['end']})" for r in result.label_withheld))
    print_deliveries(result.deliveries)
    return 0
