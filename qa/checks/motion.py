"""Motion fidelity: does the output move like the source? Dense optical flow (OpenCV DIS) of consecutive
output frames against the source's, pair by pair, outside the regions whose change is intended; a dropped
frame doubles a step, a duplicated one zeroes it (steps are compared with the intended reference's, so a grade
that changes contrast does not read as a motion change). Flow is judged only where the source has texture
(``TEXTURE``), and steps are measured on lightly blurred frames with the source's quietest steps (its noise)
added to both sides of the ratio, so sensor and codec noise on a real clip do not read as motion.

Flow is also judged only where the source's own flow is forward-backward consistent (``consistent``): at an
occlusion edge (cup.mp4's forearm sweeping 12 px a frame across the flat wall) the source's flow is no measurement,
and the draft's codec moved the output's by over 20 px there, so a clean render failed on one frame (golden 1.30 px,
overcast 1.18, neutral 0.80, neon 0.88 over cup.mp4 frames 0-79; bound 1.12). Calibrated on that clip: 0.51 / 0.50 /
0.46 / 0.61 with it (bound 1.09), while seeded defects there stay far out: 6 frames shifted by (3, 2) px 2.99, a
6-frame 3 px ripple 2.64, 3 frozen frames 11.4. Scored on vtest.avi 0-39 (golden, static camera): clean 0.05 px
(0.11 before), shift 2.42, ripple 1.36, frozen 1.20 against 0.66; all three fail as before.

The flow error bound widens with the source's own flow noise (``source_motion_px``: a hand-held clip's flow is
less certain than a locked-off render's).

A generative engine's variant (``qa.facts.judging``) is judged by the same figures, made grade-invariant where they
were not: flows of both clips are computed on luminance stretched by each frame's own levels (``norm_gray``;
``qa.metrics`` passes ``normalise``), so a grade's contrast or a dark preset does not weaken the output's flow; and a
frame's step is the mean length of its flow (over the same textured pixels) instead of its grey change, which a
grade's contrast scales and a re-render's fresh noise inflates. A frozen frame has no flow, a skipped one twice
the source's. Measured on cup.mp4 darkened to 50/25/15 % with a re-render's noise, the stretch changes the flow
error by at most 0.05 px (0.18/0.24/0.43 px with it, 0.14/0.27/0.48 without): DIS is already nearly
contrast-invariant; the stretch is kept for presets that flatten the picture further.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray, masked_mean, norm_gray

PX_SIDE = 512
"""Flow lengths (``flow_error_px``, ``src_motion_px`` and the bounds on them) are in pixels of the frame scaled to
this longest side (never enlarged; ``px_unit``): the size they were calibrated at, whatever analysis size
``qa.metrics.ANALYSIS_SIDE`` measures flow at (256 since issue 11's speed work: flows made at half that size read
half as long, which would have loosened every px bound twofold)."""
MOVING_PX = 0.25
"""Source motion (mean flow length, px at ``PX_SIDE``) above which step ratios are judged."""
TEXTURE = 40.0
"""Gradient magnitude (Sobel of the lightly blurred grey source) above which a pixel's flow is judged: on a
flat wall optical flow is arbitrary (sensor and codec noise decide it) in the source and the output alike."""
STEP_BLUR = 1.5
"""Gaussian sigma applied before frame steps are measured (noise does not count as change)."""
FB_REL, FB_ABS = 0.01, 0.5
"""Forward-backward consistency of the source's own flow (Sundaram et al. 2010): a pixel's flow is trusted where
|f + b(x + f)|² < FB_REL (|f|² + |b(x + f)|²) + FB_ABS px². Where it fails (an occlusion edge, a fast arm's outline
against a flat wall, a turning surface) the source's flow is not a measurement, and the output's differs from it by
whatever the codec's blocks decide. FB_ABS is in px² at the analysis size (not at ``PX_SIDE``): at 256 it lets
about twice the disagreement in length through as at 512, so slightly more pixels near occlusion edges are
judged; the defects benchmark at 256 (no false alarm, the same recall) covers that, but it was not recalibrated."""


def dis_flows(frames: np.ndarray, normalise: bool = False) -> np.ndarray:
    """Flow from each frame to the next: (n-1, h, w, 2) float32 from (n, h, w, 3) RGB uint8 (DIS, 'fast'), on
    grey or, with ``normalise``, on luminance stretched by each frame's own levels (``norm_gray``: a grade's
    exposure and contrast do not weaken the flow; used for a generative engine's variant)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    g = [(norm_gray if normalise else gray)(f) for f in frames]
    out = np.empty((max(0, len(frames) - 1), *g[0].shape, 2), np.float32) if len(g) else np.empty((0, 0, 0, 2))
    for k in range(len(g) - 1):
        out[k] = dis.calc(g[k], g[k + 1], None)
    return out


def steps(frames: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute change of the lightly blurred grey picture between consecutive frames (over ``keep`` of
    the later frame)."""
    import cv2

    g = [cv2.GaussianBlur(gray(f), (0, 0), STEP_BLUR).astype(np.float32) for f in frames]
    out = []
    for k in range(len(frames) - 1):
        d = np.abs(g[k + 1] - g[k])
        out.append(masked_mean(d, keep[k + 1]) if keep is not None and keep[k + 1].any() else float(d.mean()))
    return np.array(out)


def textured(frame: np.ndarray) -> np.ndarray:
    """Where a frame has enough texture for optical flow to mean something (bool)."""
    import cv2

    g = cv2.GaussianBlur(gray(frame), (0, 0), 1.0).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)) > TEXTURE


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs, ys


def consistent(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """Where the forward flow ``fwd`` (h, w, 2) and the backward flow ``bwd`` agree (bool; see ``FB_REL``); pixels
    that leave the frame are not consistent."""
    import cv2

    h, w = fwd.shape[:2]
    xs, ys = _grid(h, w)
    mx, my = xs + fwd[..., 0], ys + fwd[..., 1]
    back = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    r2 = ((fwd + back) ** 2).sum(-1)
    ok = r2 < FB_REL * ((fwd ** 2).sum(-1) + (back ** 2).sum(-1)) + FB_ABS
    return ok & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def judged(src: np.ndarray, k: int, fwd: np.ndarray, normalise: bool) -> np.ndarray:
    """The pixels of source pair ``k`` whose flow is judged: textured (``TEXTURE``) in the later frame and
    forward-backward consistent (``consistent``)."""
    back = dis_flows(src[[k + 1, k]], normalise=normalise)[0]
    return textured(src[k + 1]) & consistent(fwd, back)


REPEAT_STEP = 0.05
"""A source step below this (grey levels, or px of flow for a generative variant) is a repeated frame, not noise."""


def step_noise(src_steps: np.ndarray) -> float:
    """The source's step noise: its quietest quarter of steps between frames that differ. Repeated source frames
    (a film's 3:2 pulldown, a near-still shot that repeats every third frame) are left out: counted in, they make
    the floor 0 and a near-still shot's ratio then compares the output encode's noise with the source's codec noise
    (Megamind.avi frames 200-235: 0.50 and 0.43 on clean renders). A frozen output frame where nothing moves beyond
    this noise is the ``sync`` check's to catch (output frame i closer to source frame i - 1)."""
    moving = src_steps[src_steps > REPEAT_STEP]
    return float(np.percentile(moving, 25)) if len(moving) else 0.0


def px_unit(clip: Clip) -> float:
    """Pixels at ``PX_SIDE`` per pixel of the analysis size (1 when the analysis size is that size)."""
    from qa.checks.geometry import fit_size

    if clip.full_size is None or clip.analysis_size is None:
        return 1.0
    return fit_size(*clip.full_size, PX_SIDE)[0] / clip.analysis_size[0]


def measure(batch: Batch) -> pd.DataFrame:
    import cv2

    unit = px_unit(batch.clip)
    keep = batch.seq("keep")
    src = batch.gray_seq("src")  # textured() and the backward flow need only the grey frames
    cache = batch.clip.cache
    inv = batch.clip.grade_invariant
    noise = cache.get(("step_noise", src.shape[1:3], inv))
    rows = []
    for k in range(len(batch.src_flows)):
        i = batch.pair_first + k
        key = ("judged", i, src.shape[1:3], inv)
        if key not in cache:
            cache[key] = judged(src, k, batch.src_flows[k], inv)
        kk = keep[k + 1] & cache[key]
        if kk.mean() < 0.005:  # hardly any texture: judge the flow everywhere outside the label
            kk = keep[k + 1]
        d = batch.out_flows[k] - batch.src_flows[k]
        judged_any = bool(kk.any())
        epe = masked_mean(cv2.magnitude(d[..., 0], d[..., 1]), kk) * unit
        mag = masked_mean(cv2.magnitude(batch.src_flows[k][..., 0], batch.src_flows[k][..., 1]), kk) * unit
        row = {"src_motion_px": mag if judged_any else 0.0, "flow_error_px": epe}
        if inv:  # grade-invariant: a frame's step is its flow's mean length
            out_mag = masked_mean(cv2.magnitude(batch.out_flows[k][..., 0], batch.out_flows[k][..., 1]), kk) * unit
            row.update(src_step=row["src_motion_px"], out_step=out_mag if judged_any else 0.0,
                       ref_step=row["src_motion_px"])
        else:
            row.update(src_step=float(batch.src_steps[k]), out_step=float(batch.out_steps[k]),
                       ref_step=float(batch.ref_steps[k]))
        rows.append(row)
    t = frame_table(rows, list(range(batch.pair_first, batch.pair_first + len(rows))))
    if noise is None:
        noise = cache[("step_noise", src.shape[1:3], inv)] = step_noise(t["src_step"].to_numpy())
    # the source's quietest steps are its noise: a step ratio compares change beyond that
    t["step_ratio"] = (t["out_step"] + noise) / (t["ref_step"] + noise).clip(lower=1e-3)
    return t


def _moving(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["src_motion_px"] > MOVING_PX] if "src_motion_px" in table else table


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    nan = float("nan")
    if table.empty:
        return CheckResult("motion", table, {"motion_flow_error_max_px": nan, "motion_flow_error_mean_px": nan,
                                             "motion_step_ratio_min": nan, "motion_step_ratio_max": nan,
                                             "source_motion_px": nan})
    moving = _moving(table)
    return CheckResult("motion", table, {
        "motion_flow_error_max_px": float(table["flow_error_px"].max()),
        "motion_flow_error_mean_px": float(table["flow_error_px"].mean()),
        "motion_step_ratio_min": float(moving["step_ratio"].min()) if len(moving) else nan,
        "motion_step_ratio_max": float(moving["step_ratio"].max()) if len(moving) else nan,
        "source_motion_px": float(table["src_motion_px"].median())})


def _ratio_worst(f, largest: bool):
    fr = _moving(f.qa.frames) if "src_motion_px" in f.qa.frames else f.qa.frames
    if "step_ratio" not in fr or fr["step_ratio"].dropna().empty:
        return None
    col = fr["step_ratio"].astype(float).dropna()
    return int(col.idxmax() if largest else col.idxmin())


def _frozen(f):
    from ray32.timecode import format_seconds

    i = _ratio_worst(f, False)
    at = "" if i is None else f" at {format_seconds(i / f.qa.fps)}"
    return (f"frozen or duplicated frame{at}: the picture changes {f.value:.0%} as much as the intended "
            f"picture's ({f.limit})", i)


def _skipped(f):
    from ray32.timecode import format_seconds

    i = _ratio_worst(f, True)
    at = "" if i is None else f" at {format_seconds(i / f.qa.fps)}"
    return f"skipped frame{at}: the picture jumps {f.value:.1f}x as far as the intended picture's ({f.limit})", i


CHECK = Check(
    name="motion", needs=frozenset({"pairs"}), finish=finish, measure=measure, source_side=True,
    about="optical flow and frame steps of the output against the source's, outside the label",
    about_invariant="optical flow and frame steps of the output's normalised luminance against the source's, "
                    "outside the label (grade-invariant)",
    metrics=(
        Metric("motion_flow_error_max_px", "max", per_mode(0.6, 0.9, 1.5), worst="flow_error_px", key=True,
               unit="px", floor="source_motion_px", floor_scale=0.25,
               explain="motion differs from the source{at} (flow error {value:.2f} px, {limit} px)"),
        Metric("motion_step_ratio_min", "min", per_mode(0.5, 0.4, 0.3), key=True, explain=_frozen),
        Metric("motion_step_ratio_max", "max", per_mode(1.6, 1.8, 2.2), key=True, explain=_skipped),
    ))
