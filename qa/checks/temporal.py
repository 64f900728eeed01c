"""Temporal stability: flicker, measured as the flow-warped frame error of the output beyond the reference's own.

Each frame i-1 is warped onto frame i along that clip's own flow; what the warp cannot explain (new light,
flicker, popping texture) remains as error. The intended reference (the source through the variant's grade)
warped along the source's flow is the baseline (its own noise, occlusions); the output's residual above it is
flicker. Regions whose change is intended (a swapped label) are left out; the label has its own flicker figure
in the label check. A global brightness step between consecutive frames that the reference does not have is
measured separately (``luma_jump``): it is what a reviewer sees as a flash.

The bounds widen with the source's own behaviour: ``source_warp_noise`` (the median residual of the source's
own frame-to-frame warp, i.e. sensor and compression noise) and ``source_luma_noise``.

A generative engine's variant (``qa.facts.judging``) has no pixel reference: its grade, noise and texture are its
own, so the warp error and the brightness step against the reference say nothing. Its flicker is the change of the
output's mean luminance against *its own* smoothed trend (a running median over ``TREND`` frames, so one to three
bright or dark frames stand out while a slow change of light is the trend), relative to that trend (a dark grade
and a bright one flicker by the same share), minus the part the source's own mean luminance explains the same
way (its own flicker and exposure changes, scaled by a gain fitted over the clip: a contrasty grade amplifies the
source's changes). ``luma_flicker_max`` is that excess in percent of the frame's brightness; the bound widens with
the source's own flicker (``source_luma_flicker``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray, masked_mean
from qa.facts import grade_invariant, pixel_reference

TREND = 7
"""Frames of the running median that is a clip's brightness trend (grade-invariant flicker)."""
BORDER = 8
"""Pixels at the frame's border left out of the warp error (the warp samples outside the frame there)."""


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def warp_residual(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Absolute grey error (h, w) float32 between frame ``b`` and frame ``a`` (RGB or grey) warped along ``flow``
    (a -> b)."""
    import cv2

    yy, xx = _grid(*flow.shape[:2])
    # flow maps a -> b; sample a at (x - flow) to predict b (backward warp with the forward flow: good enough
    # for the smooth flows of real shots, and the same approximation is made for reference and output).
    pred = cv2.remap(gray(a), xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.abs(pred.astype(np.float32) - gray(b))


def _masked_mean(err: np.ndarray, keep: np.ndarray) -> float:
    m = keep.copy()
    m[:BORDER], m[-BORDER:], m[:, :BORDER], m[:, -BORDER:] = False, False, False, False
    return masked_mean(err, m)


def warp_error(a: np.ndarray, b: np.ndarray, flow: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Mean absolute grey error between ``b`` and ``a`` warped along ``flow``, over ``keep`` (default: all)."""
    err = warp_residual(a, b, flow)
    return _masked_mean(err, np.ones(err.shape, bool) if keep is None else keep)


def _measure_invariant(batch: Batch) -> pd.DataFrame:
    rows, index = [], []
    for k, i in enumerate(batch.index):
        kk = batch.keep[k]
        rows.append({"luma_src": float(gray(batch.src[k])[kk].mean()) if kk.any() else np.nan,
                     "luma_out": float(gray(batch.out[k])[kk].mean()) if kk.any() else np.nan})
        index.append(int(i))
    return frame_table(rows, index)


def relative_flicker(luma: np.ndarray, width: int = TREND) -> np.ndarray:
    """Each frame's mean luminance relative to its running median over ``width`` frames, minus 1."""
    luma = np.asarray(luma, float)
    if len(luma) == 0:
        return luma
    half = width // 2
    padded = np.pad(luma, half, mode="edge")
    trend = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    return luma / np.maximum(trend, 1.0) - 1.0


def _finish_invariant(table: pd.DataFrame) -> CheckResult:
    t = table.sort_index()
    ok = t["luma_src"].notna() & t["luma_out"].notna()
    rs, ro = relative_flicker(t.loc[ok, "luma_src"].to_numpy()), relative_flicker(t.loc[ok, "luma_out"].to_numpy())
    den = float((rs * rs).sum())
    gain = float(np.clip((ro * rs).sum() / den, 0.5, 2.0)) if den > 1e-9 else 1.0
    t = t.assign(luma_flicker=np.nan)
    t.loc[ok, "luma_flicker"] = 100.0 * np.abs(ro - gain * rs)
    t.loc[ok, "src_luma_flicker"] = 100.0 * np.abs(rs)
    nan = float("nan")
    return CheckResult("temporal", t, {
        "flicker_max": nan, "flicker_mean": nan, "luma_jump_max": nan, "source_warp_noise": nan,
        "source_luma_noise": nan, "luma_flicker_max": float(t["luma_flicker"].max()),
        "luma_flicker_gain": gain, "source_luma_flicker": float(t["src_luma_flicker"].median())})


def measure(batch: Batch) -> pd.DataFrame:
    if batch.clip.grade_invariant:
        return _measure_invariant(batch)
    src, out, ref = (batch.gray_seq(k) for k in ("src", "out", "ref"))  # grey: what the warp error is made on
    keep = batch.seq("keep")
    cache = batch.clip.cache
    rows = []
    for k in range(len(batch.src_flows)):
        i = batch.pair_first + k
        key = ("src_warp", i, src.shape[1:3])
        if key not in cache:
            cache[key] = warp_error(src[k], src[k + 1], batch.src_flows[k], keep[k + 1])
        es = cache[key]
        er = es if batch.ref_is_src else warp_error(ref[k], ref[k + 1], batch.src_flows[k], keep[k + 1])
        eo = warp_error(out[k], out[k + 1], batch.out_flows[k], keep[k + 1])
        kk = keep[k + 1]
        ms = [masked_mean(f, kk) for f in (src[k], src[k + 1])]
        mr = [masked_mean(f, kk) for f in (ref[k], ref[k + 1])]
        mo = [masked_mean(f, kk) for f in (out[k], out[k + 1])]
        rows.append({"warp_error_src": es, "warp_error_ref": er, "warp_error_out": eo, "flicker": eo - er,
                     "luma_jump": abs((mo[1] - mo[0]) - (mr[1] - mr[0])), "src_luma_step": abs(ms[1] - ms[0])})
    return frame_table(rows, list(range(batch.pair_first, batch.pair_first + len(rows))))


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    nan = float("nan")
    if "luma_out" in table:
        return _finish_invariant(table)
    if table.empty:
        return CheckResult("temporal", table, {"flicker_max": nan, "flicker_mean": nan, "luma_jump_max": nan,
                                               "source_warp_noise": nan, "source_luma_noise": nan,
                                               "luma_flicker_max": nan, "luma_flicker_gain": nan,
                                               "source_luma_flicker": nan})
    return CheckResult("temporal", table, {
        "flicker_max": float(table["flicker"].max()), "flicker_mean": float(table["flicker"].mean()),
        "luma_jump_max": float(table["luma_jump"].max()),
        "source_warp_noise": float(table["warp_error_src"].median()),
        "source_luma_noise": float(table["src_luma_step"].median()),
        "luma_flicker_max": nan, "luma_flicker_gain": nan, "source_luma_flicker": nan})


CHECK = Check(
    name="temporal", needs=frozenset({"pairs"}), finish=finish, measure=measure, source_side=True,
    about="flicker and brightness jumps of the output beyond the intended reference's own, outside the label",
    about_invariant="the output's brightness against its own smoothed trend, beyond what the source's own "
                    "brightness changes explain, outside the label (grade-invariant)",
    metrics=(
        Metric("flicker_max", "max", per_mode(1.0, 1.5, 2.5), worst="flicker", key=True, unit="grey levels",
               floor="source_warp_noise", floor_scale=0.25, when=pixel_reference,
               explain="flicker{at}: {value:.1f} grey levels of frame-to-frame change the source's motion does "
                       "not explain ({limit})"),
        Metric("luma_jump_max", "max", per_mode(1.0, 1.5, 2.5), worst="luma_jump", key=True, unit="grey levels",
               floor="source_luma_noise", floor_scale=0.5, when=pixel_reference,
               explain="brightness jumps {value:.1f} grey levels{at} where the intended picture does not "
                       "({limit})"),
        Metric("luma_flicker_max", "max", per_mode(2.0, 3.0, 5.0), worst="luma_flicker", key=True, unit="%",
               floor="source_luma_flicker", floor_scale=1.0, when=grade_invariant,
               explain="flicker{at}: the picture's brightness jumps {value:.1f}% off its own trend where the "
                       "source's does not ({limit})"),
    ))
