"""Motion fidelity: does the output move like the source? Dense optical flow (OpenCV DIS) of consecutive
output frames against the source's, pair by pair; a dropped frame doubles a step, a duplicated one zeroes it."""

from __future__ import annotations

import numpy as np

from qa.checks import CheckResult, frame_table
from qa.checks.geometry import gray


def dis_flows(frames: np.ndarray) -> np.ndarray:
    """Flow from each frame to the next: (n-1, h, w, 2) float32 from (n, h, w, 3) RGB uint8 (DIS, 'fast')."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    g = [gray(f) for f in frames]
    out = np.empty((max(0, len(frames) - 1), *g[0].shape, 2), np.float32) if len(g) else np.empty((0, 0, 0, 2))
    for k in range(len(g) - 1):
        out[k] = dis.calc(g[k], g[k + 1], None)
    return out


def motion_check(src_flows: np.ndarray, out_flows: np.ndarray, src_steps: np.ndarray, out_steps: np.ndarray,
                 first: int = 1) -> CheckResult:
    """Per frame pair (i-1, i): flow disagreement and frame-step ratio.

    Args:
        src_flows, out_flows: (n, h, w, 2) flows of the source and the output between frames i-1 and i
            (``dis_flows``), at the same analysis size.
        src_steps, out_steps: (n,) mean absolute grey difference between frames i-1 and i.
        first: the frame index i of the first pair.

    Returns:
        ``CheckResult`` "motion": per frame ``src_motion_px`` (mean flow length of the source), ``flow_error_px``
        (mean end-point error of the output's flow against the source's), ``step_ratio`` (output step /
        source step: ~1 when the output changes as much as the source, ~0 on a frozen frame); summary
        ``motion_flow_error_max_px``, ``motion_flow_error_mean_px``, ``motion_step_ratio_min``,
        ``motion_step_ratio_max`` (the ratios only where the source moves more than 0.25 px).
    """
    rows = []
    for k in range(len(src_flows)):
        epe = np.linalg.norm(out_flows[k] - src_flows[k], axis=-1)
        mag = np.linalg.norm(src_flows[k], axis=-1)
        rows.append({"src_motion_px": float(mag.mean()), "flow_error_px": float(epe.mean()),
                     "step_ratio": float(out_steps[k] / max(src_steps[k], 1e-3))})
    table = frame_table(rows, list(range(first, first + len(rows))))
    return CheckResult("motion", table, summarise_motion(table))


def summarise_motion(table) -> dict[str, float]:
    """Summary numbers of a (possibly concatenated) motion table."""
    if table.empty:
        nan = float("nan")
        return {"motion_flow_error_max_px": nan, "motion_flow_error_mean_px": nan,
                "motion_step_ratio_min": nan, "motion_step_ratio_max": nan}
    moving = table[table["src_motion_px"] > 0.25]
    return {"motion_flow_error_max_px": float(table["flow_error_px"].max()),
            "motion_flow_error_mean_px": float(table["flow_error_px"].mean()),
            "motion_step_ratio_min": float(moving["step_ratio"].min()) if len(moving) else float("nan"),
            "motion_step_ratio_max": float(moving["step_ratio"].max()) if len(moving) else float("nan")}
