"""Temporal stability: flicker, measured as the flow-warped frame error of the output beyond the source's own.

Each frame i-1 is warped onto frame i along that clip's own flow; what the warp cannot explain (new light,
flicker, popping texture) remains as error. The source's residual is the baseline (its own noise, occlusions);
the output's residual above it is flicker. A global brightness step between consecutive frames that the
source does not have is measured separately (``luma_jump``): it is what a reviewer sees as a flash.
"""

from __future__ import annotations

import numpy as np

from qa.checks import CheckResult, frame_table
from qa.checks.geometry import gray


def warp_error(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> float:
    """Mean absolute grey error between frame ``b`` and frame ``a`` warped along ``flow`` (a -> b)."""
    import cv2

    h, w = flow.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # flow maps a -> b; sample a at (x - flow) to predict b (backward warp with the forward flow: good enough
    # for the smooth flows of real shots, and the same approximation is made for source and output).
    pred = cv2.remap(gray(a), xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    m = 8  # ignore the border, where the warp samples outside the frame
    return float(np.abs(pred[m:-m, m:-m].astype(np.float32) - gray(b)[m:-m, m:-m]).mean())


def temporal_check(src: np.ndarray, out: np.ndarray, src_flows: np.ndarray, out_flows: np.ndarray,
                   first: int = 1) -> CheckResult:
    """Flicker and brightness jumps for each consecutive pair (i-1, i).

    Args:
        src, out: (n+1, h, w, 3) uint8 consecutive frames of the source and the output, same analysis size.
        src_flows, out_flows: (n, h, w, 2) flows between them (``qa.checks.motion.dis_flows``).
        first: the frame index of ``src[1]``.

    Returns:
        ``CheckResult`` "temporal": per frame ``warp_error_src``, ``warp_error_out``, ``flicker``
        (out - src residual, grey levels), ``luma_jump`` (|change of mean grey in the output - in the source|);
        summary ``flicker_max``, ``flicker_mean``, ``luma_jump_max``.
    """
    rows = []
    ms = [float(gray(f).mean()) for f in src]
    mo = [float(gray(f).mean()) for f in out]
    for k in range(len(src_flows)):
        es = warp_error(src[k], src[k + 1], src_flows[k])
        eo = warp_error(out[k], out[k + 1], out_flows[k])
        rows.append({"warp_error_src": es, "warp_error_out": eo, "flicker": eo - es,
                     "luma_jump": abs((mo[k + 1] - mo[k]) - (ms[k + 1] - ms[k]))})
    table = frame_table(rows, list(range(first, first + len(rows))))
    return CheckResult("temporal", table, summarise_temporal(table))


def summarise_temporal(table) -> dict[str, float]:
    """Summary numbers of a (possibly concatenated) temporal table."""
    if table.empty:
        nan = float("nan")
        return {"flicker_max": nan, "flicker_mean": nan, "luma_jump_max": nan}
    return {"flicker_max": float(table["flicker"].max()), "flicker_mean": float(table["flicker"].mean()),
            "luma_jump_max": float(table["luma_jump"].max())}
