"""Frame sync: is each output frame the intended reference's frame of the same index, not its neighbour?

A dropped frame (the last one repeated so the count is right) makes output frame i show reference frame i + 1
from the drop onward; a repeated or frozen frame makes it show frame i - 1. Frame-step ratios (``motion``) see
that only where the picture moves well beyond its noise; here the output frame is compared with the reference
frames themselves, so a static camera's unique sensor noise and a camera slowing to a stop count as well.

For each pair of consecutive reference frames (i - 1, i) the comparison is restricted to the pixels where the
reference changes between them by more than ``CHANGE`` grey levels (outside the regions whose change is intended),
and made on grey at the analysis size:

* ``behind`` of frame i: mean squared error of output i against reference i, divided by that against reference
  i - 1 (above 1: output i is closer to the frame before: a repeat, frozen or late frame);
* ``ahead`` of frame i - 1: output i - 1 against reference i - 1, divided by against reference i (above 1:
  output i - 1 already shows frame i: a frame before it is missing).

A frame's ``sync_ratio`` is the larger of the two; the bound is 1 (the output frame is closer to a neighbour than to
its own frame). Calibrated on the calibration clips only (clean golden/overcast/neon drafts; one dropped frame at
frames 5, 10, 12, 20): clean at most 0.29 (cup.mp4 0-23), 0.26 (demo 0-23), 0.17 (Megamind.avi 2-37); dropped at
least 42 (every frame after the drop at least 4.5). Checked after on score clips: clean vtest.avi (its six segments)
at most 0.024, Megamind.avi's other shots at most 0.57 (200-235); dropped vtest.avi 270-660, demo 48-71 (the camera
slowing to a stop) 9.6-44. A pair whose reference changes in fewer than ``MIN_PIXELS`` pixels (a source frame
repeated, a still shot) is not judged: there an output showing either frame is the same picture.

A generative engine's variant (``Clip.grade_invariant``) is not judged here: its frames are a re-render, not the
reference's pixels, so a neighbour is not closer or farther in a way that means timing; its motion is judged by
the grade-invariant step and flow figures of ``motion``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode

CHANGE = 4.0
"""Grey levels (analysis size, unblurred) by which the reference must change between two frames for a pixel to
be compared: beyond an H.264 draft's error on a still pixel, within a static camera's sensor noise steps."""
MIN_PIXELS = 200
"""Fewest changing pixels for a pair to be judged."""


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    return float((d * d).mean())


def measure(batch: Batch) -> pd.DataFrame:
    if batch.clip.grade_invariant:
        return frame_table([], [])
    ref = batch.gray_seq("ref").astype(np.float32)
    out = batch.gray_seq("out").astype(np.float32)
    keep = batch.seq("keep")
    first = batch.first - (0 if batch.prev is None else 1)
    rows, index = [], []
    for k in range(1, len(ref)):
        m = (np.abs(ref[k] - ref[k - 1]) > CHANGE) & keep[k] & keep[k - 1]
        n = int(m.sum())
        row = {"sync_pixels": n, "behind": np.nan, "ahead_prev": np.nan}
        if n >= MIN_PIXELS:
            r0, r1, o0, o1 = ref[k - 1][m], ref[k][m], out[k - 1][m], out[k][m]
            row["behind"] = _mse(o1, r1) / max(_mse(o1, r0), 1e-6)
            row["ahead_prev"] = _mse(o0, r0) / max(_mse(o0, r1), 1e-6)
        rows.append(row)
        index.append(first + k)
    return frame_table(rows, index)


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    nan = float("nan")
    if clip.grade_invariant:
        clip.notes.append("frame sync not judged: a generative variant's frames are a re-render (its motion is "
                          "judged on grade-invariant steps and flow)")
    if table.empty:
        return CheckResult("sync", table, {"sync_ratio_max": nan})
    n = clip.output_count
    idx = pd.Index(range(min(n, clip.source_count)), name="frame")
    behind = table["behind"].reindex(idx)
    ahead = pd.Series(table["ahead_prev"].to_numpy(), index=table.index - 1).reindex(idx)
    frames = pd.DataFrame({"sync_behind": behind, "sync_ahead": ahead})
    frames["sync_ratio"] = frames[["sync_behind", "sync_ahead"]].max(axis=1, skipna=True)
    frames["sync_pixels"] = table["sync_pixels"].reindex(idx)
    judged = frames["sync_ratio"].dropna()
    return CheckResult("sync", frames, {"sync_ratio_max": float(judged.max()) if len(judged) else nan})


def _explain(f):
    from ray32.timecode import format_seconds

    fr = f.qa.frames
    cols = [c for c in ("sync_ahead", "sync_behind") if c in fr]
    if not cols:
        return f"output frames are not the source's frames of the same time (sync {f.value:.2f}, {f.limit})", None
    bad = fr[cols].astype(float)
    over = bad[(bad > f.bound).any(axis=1)]
    if over.empty:
        return f"output frames are not the source's frames of the same time (sync {f.value:.2f}, {f.limit})", None
    i = int(over.index[0])
    at = format_seconds(i / f.qa.fps)
    ahead = over.iloc[0].get("sync_ahead", np.nan)
    behind = over.iloc[0].get("sync_behind", np.nan)
    if np.nan_to_num(ahead, nan=-1) >= np.nan_to_num(behind, nan=-1):
        return (f"frame {at} is missing: from there the output runs one frame ahead of the source (output frame "
                f"{i} matches source frame {i + 1}; sync {f.value:.2f}, {f.limit})", i)
    return (f"frame {at} repeats the frame before: from there the output runs one frame behind the source "
            f"(a frozen or duplicated frame; output frame {i} matches source frame {i - 1}; sync {f.value:.2f}, "
            f"{f.limit})", i)


CHECK = Check(
    name="sync", needs=frozenset({"frames"}), finish=finish, measure=measure,
    about="each output frame against the intended reference's frame of the same index and its neighbours, where "
          "the reference changes between frames (outside the label)",
    about_invariant="not judged: a generative variant is a re-render (see motion)",
    metrics=(
        Metric("sync_ratio_max", "max", per_mode(1.0), worst="sync_ratio", key=True, explain=_explain),
    ))
