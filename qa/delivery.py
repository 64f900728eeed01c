"""Checking a delivered file against its target: gather the facts (ffprobe, loudness, black/freeze, the tracks
mapped into the delivered frame), run the delivery checks (``qa.checks.delivery``) and give a verdict with
reasons, plus the safe-zone overlay of the worst frame for the report.

Example:
    >>> result = check_delivery("out/de_meta-reels.mp4", get_target("meta-reels"), source_fps=Fraction(24),
    ...                         source_frames=72, geometry=record["geometry"], label_quads=quads)  # doctest: +SKIP
    >>> result["verdict"], result["reasons"]                                                      # doctest: +SKIP
    ('fail', ["the label sits under meta-reels' 'caption and call to action' zone on 72 of 72 frames; ..."])
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from qa.checks.delivery import CHECKS, DeliveryFacts, safe_zone


@dataclass
class DeliveryQA:
    """What a metric's explanation sees of one delivered file (``Failure.qa``): its facts, one check's per-frame
    table and summary, the frame rate for timecodes."""

    facts: DeliveryFacts
    frames: pd.DataFrame
    summary: dict
    fps: Fraction


def judge(check_module, result, target, facts) -> tuple[list[str], list[int | None], dict]:
    """Judge one delivery check's result by its declared metrics (``metrics(target)``), as ``qa.expectations``
    judges a variant's: NaN is not judged; a failure is explained by the metric's ``explain`` with the frame its
    ``worst`` column locates. Returns (reasons, their worst frames, {metric: {"value", "min", "max"}} failed)."""
    from qa.checks.base import Failure
    from qa.expectations import limit_text, worst_frame
    from ray32.timecode import format_seconds

    reasons, frames, failed = [], [], {}
    qa = DeliveryQA(facts, result.frames, result.summary, facts.source_fps)
    for m in check_module.metrics(target):
        v = result.summary.get(m.name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        lo, hi = m.bound_for("adhere")
        if not ((lo is not None and v < lo) or (hi is not None and v > hi)):
            continue
        i = worst_frame(result.frames, m)
        at = "" if i is None else f" at {format_seconds(i / facts.source_fps)}"
        lim = limit_text(lo, hi)
        failure = Failure(metric=m, value=float(v), bound=hi if m.side == "max" else lo, limit=lim, frame=i, at=at,
                          qa=qa)
        if callable(m.explain):
            got = m.explain(failure)
            text, i = got if isinstance(got, tuple) else (got, i)
        else:
            text = m.explain.format(name=m.name, value=v, limit=lim, at=at, bound=failure.bound, unit=m.unit,
                                    frame=i)
        reasons.append(f"{target.name}: {text}")
        frames.append(i)
        failed[m.name] = {"value": float(v), "min": lo, "max": hi}
    return reasons, frames, failed

ANALYSIS = "scale=320:-2:flags=fast_bilinear"
"""Black and freeze detection run on a small copy of the picture (both are whole-frame measures)."""
BLACK_FILTER = "blackdetect=d=0.04:pix_th=0.10"
FREEZE_FILTER = "freezedetect=n=0.001:d=0.2"


def probe_file(path: str | os.PathLike) -> dict:
    """Size, codec, frame rate, frame count, duration, bitrates, constant frame rate and audio format (ffprobe)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=duration,bit_rate:stream=index,codec_type,codec_name,width,height,r_frame_rate,"
                          "avg_frame_rate,nb_frames,bit_rate,sample_rate,channels:packet=stream_index,pts",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    audio = next((s for s in data["streams"] if s["codec_type"] == "audio"), None)
    fps = Fraction(video["avg_frame_rate"])
    stamps = np.sort(np.array([int(p["pts"]) for p in data.get("packets", [])
                               if p.get("stream_index") == video["index"] and "pts" in p]))
    steps = np.diff(stamps)
    cfr = bool(len(steps) == 0 or steps.max() - steps.min() <= 1)
    frames = int(video.get("nb_frames") or len(stamps))
    return {"width": int(video["width"]), "height": int(video["height"]), "codec": video["codec_name"],
            "fps": fps, "frame_count": frames, "duration_s": float(Fraction(frames) / fps),
            "kbps": float(data["format"]["bit_rate"]) / 1000 if data["format"].get("bit_rate") else None,
            "video_kbps": float(video["bit_rate"]) / 1000 if video.get("bit_rate") else None,
            "constant_frame_rate": cfr,
            "audio": None if audio is None else {"codec": audio["codec_name"], "rate": int(audio["sample_rate"]),
                                                 "channels": int(audio["channels"])}}


def black_freeze(path: str | os.PathLike, *, start: float | None = None, duration: float | None = None) -> dict:
    """The longest black and frozen stretches of a video in seconds: ``{"black": s, "freeze": s}``."""
    cmd = ["ffmpeg", "-hide_banner", "-nostats"]
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    if duration:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-i", str(path), "-map", "0:v:0", "-vf", f"{ANALYSIS},{BLACK_FILTER},{FREEZE_FILTER}", "-f", "null", "-"]
    text = subprocess.run(cmd, capture_output=True, text=True).stderr
    black = max([float(m) for m in re.findall(r"black_duration:\s*([\d.]+)", text)] or [0.0])
    freezes = [float(m) for m in re.findall(r"freeze_duration:\s*([\d.]+)", text)]
    starts = [float(m) for m in re.findall(r"freeze_start:\s*([\d.]+)", text)]
    if len(starts) > len(freezes):  # a freeze lasting to the end has no end line
        end = re.findall(r"time=(\d+):(\d+):([\d.]+)", text)
        total = duration or (int(end[-1][0]) * 3600 + int(end[-1][1]) * 60 + float(end[-1][2]) if end else 0.0)
        freezes.append(max(0.0, total - starts[-1]))
    return {"black": black, "freeze": max(freezes or [0.0])}


def map_tracks(geometry: dict, label_quads, face_boxes) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The tracks (variant pixels) in the delivered frame's pixels, through the crop offsets and the scale."""
    cw, ch = geometry["crop_size"]
    ow, oh = geometry["out_size"]
    sx, sy = ow / cw, oh / ch
    offsets = geometry.get("offsets")
    quads = boxes = None
    if label_quads is not None:
        q = np.array(label_quads, float)
        off = np.zeros((len(q), 2)) if offsets is None else np.asarray(offsets, float)[:len(q)]
        quads = (q - off[:, None, :]) * np.array([sx, sy])
    if face_boxes is not None:
        b = np.array(face_boxes, float)
        off = np.zeros((len(b), 2)) if offsets is None else np.asarray(offsets, float)[:len(b)]
        boxes = (b - np.tile(off, 2)) * np.array([sx, sy, sx, sy])
    return quads, boxes


def check_delivery(path: str | os.PathLike, target, *, source_fps, source_frames: int, geometry: dict,
                   loudness: dict | None = None, label_quads=None, face_boxes=None, source_black_freeze=None,
                   overlay: str | os.PathLike | None = None) -> dict:
    """Run every delivery check on one delivered file.

    Args:
        path: the delivered video. target: its ``DeliveryTarget``.
        source_fps, source_frames: the variant's timing.
        geometry: the delivery's frame mapping (``DeliveryPlan.geometry()``).
        loudness: the export's loudness record (before/after figures; ``after`` is measured again here).
        label_quads, face_boxes: the shot's tracks in the variant's pixels (NaN where unknown), or None.
        source_black_freeze: ``black_freeze`` of the source, or None (then taken as none).
        overlay: where to write the worst frame with the zones drawn (JPEG), or None.

    Returns:
        ``{"target", "verdict": "pass"|"fail", "reasons", "metrics": {check: summary}, "worst_frame",
        "overlay"}``.
    """
    from ray32.loudness import measure

    path = Path(path)
    probe = probe_file(path)
    after = measure(path, audio=probe["audio"] is not None)
    loud = dict(loudness or {})
    loud["after"] = after.as_dict() if after else None
    bf = black_freeze(path)
    src_bf = source_black_freeze or {"black": 0.0, "freeze": 0.0}
    quads, boxes = map_tracks(geometry, label_quads, face_boxes)
    facts = DeliveryFacts(target=target, file=path.name, probe=probe, source_fps=Fraction(source_fps),
                          source_frames=int(source_frames), loudness=loud,
                          black={"output": bf["black"], "source": src_bf["black"]},
                          freeze={"output": bf["freeze"], "source": src_bf["freeze"]},
                          label_quads=quads, face_boxes=boxes)
    from qa.checks.base import Clip

    clip = Clip(facts=facts, fps=facts.source_fps, output_fps=probe["fps"], source_count=int(source_frames),
                output_count=int(probe["frame_count"]))
    metrics, reasons, failed, worst = {}, [], {}, None
    empty = pd.DataFrame()
    for module in CHECKS:
        result = module.CHECK.finish(empty, clip)
        metrics[module.CHECK.name] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                      for k, v in result.summary.items()}
        why, _, bad = judge(module, result, target, facts)
        reasons += why
        failed.update(bad)
        if module is safe_zone:
            worst = safe_zone.worst_frame(result)
    shown = None
    if overlay is not None and target.zones:
        frame_index = worst if worst is not None else int(source_frames) // 2
        shown = draw_overlay(path, frame_index, target, quads, boxes, overlay)
    return {"target": target.name, "verdict": "fail" if reasons else "pass", "reasons": reasons,
            "failed": failed, "metrics": metrics, "loudness": loud, "worst_frame": worst,
            "overlay": Path(shown).name if shown else None}


def draw_overlay(video: str | os.PathLike, index: int, target, quads, boxes, out: str | os.PathLike,
                 height: int = 480) -> Path | None:
    """The delivered frame ``index`` with the target's zones shaded red, the safe area outlined green, the
    label's quad yellow and the face boxes cyan, as a JPEG ``height`` pixels high."""
    import av
    import cv2

    frame = None
    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(c.streams.video[0])):
            if i == index:
                frame = f.to_ndarray(format="rgb24")
                break
    if frame is None:
        return None
    h, w = frame.shape[:2]
    shade = frame.copy()
    for z in target.zones:
        x0, y0, x1, y1 = (int(round(v)) for v in z.pixels(w, h))
        cv2.rectangle(shade, (x0, y0), (x1, y1), (220, 30, 30), -1)
    img = cv2.addWeighted(shade, 0.45, frame, 0.55, 0)
    sx0, sy0, sx1, sy1 = target.safe_box()
    t = max(2, w // 270)
    cv2.rectangle(img, (int(sx0 * w), int(sy0 * h)), (int(sx1 * w) - 1, int(sy1 * h) - 1), (40, 220, 40), t)
    if quads is not None and index < len(quads) and np.isfinite(quads[index]).all():
        cv2.polylines(img, [np.round(quads[index]).astype(np.int32)], True, (255, 230, 0), t)
    if boxes is not None and index < len(boxes) and np.isfinite(boxes[index]).all():
        b = np.round(boxes[index]).astype(int)
        cv2.rectangle(img, (b[0], b[1]), (b[2], b[3]), (0, 230, 255), t)
    scale = height / h
    img = cv2.resize(img, (max(2, int(w * scale)), height), interpolation=cv2.INTER_AREA)
    out = Path(out)
    cv2.imwrite(str(out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    return out
