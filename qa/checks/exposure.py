"""Exposure and colour against what the variant intends: clipped highlights, crushed blacks and the colour
shift of the output measured against the intended reference (the source through the variant's own grade), so
an intended look (the neon preset's darkness) is not a defect while a cast the grade does not make is.
Regions whose change is intended (a swapped label) are left out; the label's colour is judged by the label
check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray

CLIP_LEVEL = 250
"""Grey code value (8-bit full range) at or above which a pixel counts as clipped."""
CRUSH_LEVEL = 5
"""Grey code value at or below which a pixel counts as crushed."""
LEVEL_TOLERANCE = 8
"""A pixel counts as newly clipped (crushed) only where the intended reference is more than this many grey levels
below the clip level (above the crush level): codec noise on a dark or bright picture moves pixels across the
levels both ways and is not lost detail (Megamind.avi under the neon preset: half the picture at or below 5 in
both the reference and a clean output, 1-4 % of it on the other side of 5 from one to the other)."""


def lab(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (sRGB-like code values) -> CIE Lab float32 (OpenCV's D65 conversion)."""
    import cv2

    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def colour_shift(src: np.ndarray, out: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Colour difference (CIE76 delta E) of the median per-pixel Lab offset between two frames (over ``keep``).

    The median keeps a changed region (a swapped label, a new product) from counting as a global shift.
    """
    d = lab(out[::2, ::2]) - lab(src[::2, ::2])  # every 4th pixel is plenty for a median
    d = d[keep[::2, ::2]] if keep is not None else d.reshape(-1, 3)
    return float(np.linalg.norm(np.median(d, axis=0))) if len(d) else float("nan")


def measure(batch: Batch) -> pd.DataFrame:
    rows = []
    for r, o, keep in zip(batch.ref, batch.out, batch.keep):
        gr, go = gray(r)[keep], gray(o)[keep]
        rows.append({"clipped_out": float((go >= CLIP_LEVEL).mean()), "clipped_ref": float((gr >= CLIP_LEVEL).mean()),
                     "crushed_out": float((go <= CRUSH_LEVEL).mean()), "crushed_ref": float((gr <= CRUSH_LEVEL).mean()),
                     "clipped_excess": float(((go >= CLIP_LEVEL) & (gr < CLIP_LEVEL - LEVEL_TOLERANCE)).mean()),
                     "crushed_excess": float(((go <= CRUSH_LEVEL) & (gr > CRUSH_LEVEL + LEVEL_TOLERANCE)).mean()),
                     "colour_shift": colour_shift(r, o, keep)})
    return frame_table(rows, [int(i) for i in batch.index])


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    if table.empty:
        nan = float("nan")
        return CheckResult("exposure", table, {"clipped_excess_max": nan, "crushed_excess_max": nan,
                                               "colour_shift_max": nan, "colour_shift_mean": nan})
    t = table  # excess: the share of the picture clipped (crushed) in the output that the reference holds clear
    return CheckResult("exposure", t, {
        "clipped_excess_max": float(t["clipped_excess"].max()), "crushed_excess_max": float(t["crushed_excess"].max()),
        "colour_shift_max": float(t["colour_shift"].max()), "colour_shift_mean": float(t["colour_shift"].mean())})


def hdr_light_levels(frames_linear: np.ndarray, *, nits_per_unit: float = 100.0) -> tuple[float, float]:
    """MaxCLL and MaxFALL (cd/m²) of linear-light RGB frames.

    Args:
        frames_linear: (n, h, w, 3) float linear light as ``ray32.shot.read_chunks(output="linear")`` gives it
            (OpenColorIO's display-linear scale: 1.0 = 100 cd/m²).
        nits_per_unit: cd/m² for a linear value of 1.0.

    Returns:
        (MaxCLL: the brightest pixel's max(R, G, B), MaxFALL: the highest frame-average of max(R, G, B)).
    """
    m = np.max(np.asarray(frames_linear, np.float32), axis=-1) * nits_per_unit
    if m.size == 0:
        return float("nan"), float("nan")
    return float(m.max()), float(m.reshape(len(m), -1).mean(axis=1).max())


def _hdr_finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    from qa.checks.base import frame_table as ft

    cll, fall = clip.hdr if clip.hdr is not None else (float("nan"), float("nan"))
    return CheckResult("hdr", ft([], []), {"max_cll_nits": cll, "max_fall_nits": fall})


CHECK = Check(
    name="exposure", needs=frozenset({"frames"}), finish=finish, measure=measure,
    about="clipping, crushed blacks and colour of the output against the intended reference, outside the label",
    metrics=(
        Metric("colour_shift_max", "max", per_mode(2.0, 3.0, 8.0), worst="colour_shift", key=True, unit="ΔE",
               explain="colours shifted by delta E {value:.1f} against the intended picture{at} ({limit})"),
        Metric("clipped_excess_max", "max", per_mode(0.01, 0.01, 0.03), worst="clipped_excess",
               explain="clipped highlights: {value:.1%} more of the picture than the intended picture{at} "
                       "({limit})"),
        Metric("crushed_excess_max", "max", per_mode(0.01, 0.01, 0.03), worst="crushed_excess",
               explain="crushed blacks: {value:.1%} more of the picture than the intended picture{at} ({limit})"),
    ))

HDR_CHECK = Check(
    name="hdr", needs=frozenset({"clip"}), finish=_hdr_finish,
    about="MaxCLL / MaxFALL of an HDR output against the mastering display",
    metrics=(
        Metric("max_cll_nits", "max", per_mode(1000.0), key=True, unit="cd/m²",
               explain="MaxCLL {value:.0f} cd/m² exceeds the mastering display ({limit})"),
    ))
