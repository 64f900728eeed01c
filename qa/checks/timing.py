"""Timing: the output has the source's duration, frame count and frame rate, and hits its keyframe guides."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import pandas as pd

from qa.checks.base import Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray
from qa.facts import has_guides


def timing_check(src_frames: int, src_fps: Fraction, out_frames: int, out_fps: Fraction) -> CheckResult:
    """Frame count, rate and duration of the output against the source (exact, as fractions).

    Returns:
        ``CheckResult`` "timing" (no per-frame rows): summary ``frame_count_delta`` (output - source),
        ``fps_equal`` (1/0), ``duration_delta_s`` (output - source, seconds).
    """
    src_d = Fraction(src_frames) / Fraction(src_fps)
    out_d = Fraction(out_frames) / Fraction(out_fps)
    return CheckResult("timing", frame_table([], []), {
        "frame_count_delta": out_frames - src_frames,
        "fps_equal": int(Fraction(src_fps) == Fraction(out_fps)),
        "duration_delta_s": float(out_d - src_d),
    })


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two same-size RGB images (grey, 7x7 Gaussian windows)."""
    import cv2

    x, y = gray(a).astype(np.float64), gray(b).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z):
        return cv2.GaussianBlur(z, (7, 7), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def keyframe_check(frames: Mapping[int, np.ndarray], guides: Mapping[int, np.ndarray]) -> CheckResult:
    """Similarity of the output at each keyframe to its guide image (resized to the frame).

    Returns:
        ``CheckResult`` "keyframes": per frame ``keyframe_ssim``; summary ``keyframe_ssim_min`` (NaN when the
        request has no guide images).
    """
    import cv2

    rows, index = [], []
    for i in sorted(guides):
        if i not in frames:
            continue
        f = frames[i]
        g = cv2.resize(guides[i], (f.shape[1], f.shape[0]), interpolation=cv2.INTER_AREA)
        rows.append({"keyframe_ssim": ssim(f, g)})
        index.append(i)
    table = frame_table(rows, index)
    return CheckResult("keyframes", table,
                       {"keyframe_ssim_min": float(table["keyframe_ssim"].min()) if rows else float("nan")})


def _timing_finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    return timing_check(clip.source_count, clip.fps, clip.output_count, clip.output_fps)


def _keyframes_finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    return keyframe_check({i: s[1] for i, s in clip.samples.items()}, clip.guides)


def _count(f):
    n = f.qa.frame_count
    v = int(f.value)
    return f"output has {n + v} frames, the source {n}: frames were {'dropped' if v < 0 else 'added'} ({abs(v)})"


CHECK = Check(
    name="timing", needs=frozenset({"clip"}), finish=_timing_finish,
    about="frame count, frame rate and duration of the output against the source",
    metrics=(
        Metric("frame_count_delta", "equal", per_mode(0), key=True, explain=_count),
        Metric("fps_equal", "equal", per_mode(1), explain="output frame rate differs from the source's"),
    ))

KEYFRAMES_CHECK = Check(
    name="keyframes", needs=frozenset({"samples"}), finish=_keyframes_finish, applies=has_guides,
    sample_frames=lambda clip: set(clip.guides),
    about="the output at each keyframe against its guide image",
    metrics=(
        Metric("keyframe_ssim_min", "min", per_mode(0.7, 0.6, 0.5), worst="keyframe_ssim", key=True,
               explain="keyframe{at} does not match its guide (SSIM {value:.2f}, {limit})"),
    ))
