"""Exposure, colour and HDR sanity: clipped highlights, crushed blacks, colour shift against the source, and
MaxCLL/MaxFALL of HDR output against the mastering display."""

from __future__ import annotations

import numpy as np

from qa.checks import CheckResult, frame_table
from qa.checks.geometry import gray

CLIP_LEVEL = 250
"""Grey code value (8-bit full range) at or above which a pixel counts as clipped."""
CRUSH_LEVEL = 5
"""Grey code value at or below which a pixel counts as crushed."""


def _lab(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def colour_shift(src: np.ndarray, out: np.ndarray) -> float:
    """Colour difference (CIE76 delta E) of the median per-pixel Lab offset between two frames.

    The median keeps a changed region (a swapped label, a new product) from counting as a global shift.
    """
    d = (_lab(out[::2, ::2]) - _lab(src[::2, ::2])).reshape(-1, 3)  # every 4th pixel is plenty for a median
    return float(np.linalg.norm(np.median(d, axis=0)))


def exposure_check(src: np.ndarray, out: np.ndarray, first: int = 0) -> CheckResult:
    """Clipping, crushing and colour shift of each output frame against the source frame with the same index.

    Args:
        src, out: (n, h, w, 3) uint8 RGB code values (SDR), same analysis size.
        first: the frame index of ``src[0]``.

    Returns:
        ``CheckResult`` "exposure": per frame ``clipped_out``, ``clipped_src``, ``crushed_out``, ``crushed_src``
        (fractions of pixels) and ``colour_shift`` (delta E); summary ``clipped_excess_max`` and
        ``crushed_excess_max`` (output fraction minus the source's), ``colour_shift_max``, ``colour_shift_mean``.
    """
    rows = []
    for s, o in zip(src, out):
        gs, go = gray(s), gray(o)
        rows.append({"clipped_out": float((go >= CLIP_LEVEL).mean()), "clipped_src": float((gs >= CLIP_LEVEL).mean()),
                     "crushed_out": float((go <= CRUSH_LEVEL).mean()), "crushed_src": float((gs <= CRUSH_LEVEL).mean()),
                     "colour_shift": colour_shift(s, o)})
    table = frame_table(rows, list(range(first, first + len(rows))))
    return CheckResult("exposure", table, summarise_exposure(table))


def summarise_exposure(table) -> dict[str, float]:
    if table.empty:
        nan = float("nan")
        return {"clipped_excess_max": nan, "crushed_excess_max": nan, "colour_shift_max": nan,
                "colour_shift_mean": nan}
    return {"clipped_excess_max": float((table["clipped_out"] - table["clipped_src"]).max()),
            "crushed_excess_max": float((table["crushed_out"] - table["crushed_src"]).max()),
            "colour_shift_max": float(table["colour_shift"].max()),
            "colour_shift_mean": float(table["colour_shift"].mean())}


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
