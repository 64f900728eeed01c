"""Exposure and colour against what the variant intends: clipped highlights, crushed blacks and the colour
shift of the output measured against the intended reference (the source through the variant's own grade), so
an intended look (the neon preset's darkness) is not a defect while a cast the grade does not make is.
Regions whose change is intended (a swapped label) are left out; the label's colour is judged by the label
check.

A generative engine's variant (``qa.facts.judging``) has no exact grade reference: the model re-renders every
pixel, and the engine's grade post-pass works on the model's pixels, not the source's, so a per-pixel colour shift
or a few percent more clipping against the source through the grade would fail good variants. What is judged
instead, and why:

* gross failures only, against the intended picture's own share (the source through the variant's grade when the
  facts give one, else the source): ``gross_clipped_max`` / ``gross_crushed_max``, the excess share of the frame
  clipped / crushed, with bounds of a quarter of the picture and more (a model that blows out or blacks out a
  large area is a defect whatever the grade; a few percent is the grade's or the model's own look);
* ``exposure_blank_frames``: frames that are black, white or flat (no picture: grey spread under ``BLANK_STD``) where the
  source has a picture: a generative model's typical failure, never a grade's;
* the intent of the preset, only when the facts give the grade: ``grade_intent_max`` is the colour difference
  (CIE76 ΔE) between the *mean* Lab colour of the output and of the source through the intended grade, per frame.
  A mean is what a grade sets (warm/cool, dark/bright, saturated) and what a re-render of the same scene keeps,
  while the pixels underneath may all differ. The bound is loose: on cup.mp4 the demo presets' means are 13-51 ΔE
  apart (golden/overcast/neon), a re-render of the right one within 1; but overcast and no grade at all are only
  6 apart, so a subtle preset is not told from none. Looser in flex, loosest in reimagine, where the model may
  change the scene's colours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray, masked_share
from qa.facts import grade_invariant, pixel_reference

BLANK_STD = 3.0
"""Grey standard deviation (code values) under which a frame has no picture (black, white or flat)."""
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


def _blank(g: np.ndarray) -> bool:
    return bool(g.size) and float(g.std()) < BLANK_STD


def _measure_invariant(batch: Batch) -> pd.DataFrame:
    rows = []
    for s, r, o, keep in zip(batch.src, batch.ref, batch.out, batch.keep):
        gs, gr, go = gray(s)[keep], gray(r)[keep], gray(o)[keep]
        row = {"clipped_out": float((go >= CLIP_LEVEL).mean()), "clipped_ref": float((gr >= CLIP_LEVEL).mean()),
               "crushed_out": float((go <= CRUSH_LEVEL).mean()), "crushed_ref": float((gr <= CRUSH_LEVEL).mean()),
               "blank": float(_blank(go) and not _blank(gs))}
        if not batch.ref_is_src and batch.clip.grade is not None:
            mo, mr = lab(o)[keep].mean(axis=0), lab(r)[keep].mean(axis=0)
            row["grade_intent"] = float(np.linalg.norm(mo - mr))
        rows.append(row)
    return frame_table(rows, [int(i) for i in batch.index])


def measure(batch: Batch) -> pd.DataFrame:
    if batch.clip.grade_invariant:
        return _measure_invariant(batch)
    rows = []
    for r, o, gr, go, keep in zip(batch.ref, batch.out, batch.gray("ref"), batch.gray("out"), batch.keep):
        # shares of the judged pixels (keep), counted without gathering them
        clip_o, clip_r, crush_o, crush_r = go >= CLIP_LEVEL, gr >= CLIP_LEVEL, go <= CRUSH_LEVEL, gr <= CRUSH_LEVEL
        rows.append({"clipped_out": masked_share(clip_o, keep), "clipped_ref": masked_share(clip_r, keep),
                     "crushed_out": masked_share(crush_o, keep), "crushed_ref": masked_share(crush_r, keep),
                     "clipped_excess": masked_share(clip_o & (gr < CLIP_LEVEL - LEVEL_TOLERANCE), keep),
                     "crushed_excess": masked_share(crush_o & (gr > CRUSH_LEVEL + LEVEL_TOLERANCE), keep),
                     "colour_shift": colour_shift(r, o, keep)})
    return frame_table(rows, [int(i) for i in batch.index])


NAMES = ("clipped_excess_max", "crushed_excess_max", "colour_shift_max", "colour_shift_mean", "gross_clipped_max",
         "gross_crushed_max", "exposure_blank_frames", "grade_intent_max")


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    out = dict.fromkeys(NAMES, float("nan"))
    if table.empty:
        return CheckResult("exposure", table, out)
    if "blank" in table:  # grade-invariant (a generative engine's variant): excess of the picture's share
        t = table.assign(clipped_excess=table["clipped_out"] - table["clipped_ref"],
                         crushed_excess=table["crushed_out"] - table["crushed_ref"])
        out.update(gross_clipped_max=float(t["clipped_excess"].max()),
                   gross_crushed_max=float(t["crushed_excess"].max()), exposure_blank_frames=float(t["blank"].sum()))
        if "grade_intent" in t:
            out["grade_intent_max"] = float(t["grade_intent"].max())
        return CheckResult("exposure", t, out)
    t = table  # excess: the share of the picture clipped (crushed) in the output that the reference holds clear
    out.update(clipped_excess_max=float(t["clipped_excess"].max()), crushed_excess_max=float(t["crushed_excess"].max()),
               colour_shift_max=float(t["colour_shift"].max()), colour_shift_mean=float(t["colour_shift"].mean()))
    return CheckResult("exposure", t, out)


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

    if clip.hdr is None:  # an SDR output: nothing to judge, and nothing to list as not judged
        return CheckResult("hdr", ft([], []), {})
    cll, fall = clip.hdr
    return CheckResult("hdr", ft([], []), {"max_cll_nits": cll, "max_fall_nits": fall})


CHECK = Check(
    name="exposure", needs=frozenset({"frames"}), finish=finish, measure=measure,
    about="clipping, crushed blacks and colour of the output against the intended reference, outside the label",
    about_invariant="gross clipping, crushed blacks and blank frames of the output, and its mean colour against "
                    "the intended grade's look, outside the label (grade-invariant)",
    metrics=(
        Metric("colour_shift_max", "max", per_mode(2.0, 3.0, 8.0), worst="colour_shift", key=True, unit="ΔE",
               when=pixel_reference,
               explain="colours shifted by delta E {value:.1f} against the intended picture{at} ({limit})"),
        Metric("clipped_excess_max", "max", per_mode(0.01, 0.01, 0.03), worst="clipped_excess", when=pixel_reference,
               explain="clipped highlights: {value:.1%} more of the picture than the intended picture{at} "
                       "({limit})"),
        Metric("crushed_excess_max", "max", per_mode(0.01, 0.01, 0.03), worst="crushed_excess", when=pixel_reference,
               explain="crushed blacks: {value:.1%} more of the picture than the intended picture{at} ({limit})"),
        Metric("gross_clipped_max", "max", per_mode(0.25, 0.3, 0.4), worst="clipped_excess", when=grade_invariant,
               explain="blown-out highlights: {value:.0%} more of the picture clipped than the intended picture{at} "
                       "({limit})"),
        Metric("gross_crushed_max", "max", per_mode(0.25, 0.3, 0.4), worst="crushed_excess", when=grade_invariant,
               explain="blacked-out picture: {value:.0%} more of the picture crushed to black than the intended "
                       "picture{at} ({limit})"),
        Metric("exposure_blank_frames", "max", per_mode(0.0), worst="blank", key=True, when=grade_invariant,
               explain="{value:.0f} blank frame(s) (black, white or flat) where the source has a picture, first"
                       "{at} ({limit})"),
        Metric("grade_intent_max", "max", per_mode(8.0, 12.0, 25.0), worst="grade_intent", key=True, unit="ΔE",
               when=lambda facts: grade_invariant(facts) and bool(facts.grade),
               explain="the look departs from the intended grade{at}: mean colour delta E {value:.1f} from the "
                       "source through the grade ({limit})"),
    ))

HDR_CHECK = Check(
    name="hdr", needs=frozenset({"clip"}), finish=_hdr_finish,
    about="MaxCLL / MaxFALL of an HDR output against the mastering display",
    metrics=(
        Metric("max_cll_nits", "max", per_mode(1000.0), key=True, unit="cd/m²",
               explain="MaxCLL {value:.0f} cd/m² exceeds the mastering display ({limit})"),
    ))
