"""Shared pixel helpers for the checks: grey conversion, resizing to an analysis size, rectifying a quad."""

from __future__ import annotations

import numpy as np


def gray(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 -> grey uint8 (a grey frame, 2-D, is returned as it is)."""
    import cv2

    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def masked_mean(a: np.ndarray, mask: np.ndarray) -> float:
    """``float(a[mask].mean())`` of a 2-D array without gathering the masked pixels (NaN where ``mask`` is empty).

    uint8: exactly numpy's figure (the integer sum of the masked pixels divided by their count). float32: the
    masked pixels summed in double precision (numpy sums float32 pairwise in float32), so the two agree to about
    1e-6 relative."""
    import cv2

    m = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    n = cv2.countNonZero(m)
    if n == 0:
        return float("nan")
    if a.dtype == np.uint8:
        return float(cv2.sumElems(cv2.bitwise_and(a, a, mask=m))[0]) / n
    return float(cv2.mean(a, mask=m)[0])


def masked_share(flags: np.ndarray, mask: np.ndarray) -> float:
    """``float(flags[mask].mean())`` for bool ``flags``: the share of ``mask``'s pixels where ``flags`` is set, exactly
    (NaN where ``mask`` is empty)."""
    n = int(np.count_nonzero(mask))
    return float(np.count_nonzero(flags & mask)) / n if n else float("nan")


def norm_gray(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 -> grey uint8 stretched by the frame's own levels (its 1st and 99th percentiles to 0 and 255): a
    grade's exposure, contrast and black level map to the same range, so a dark or flat preset keeps the contrast
    optical flow needs. A linear stretch, not histogram equalisation: equalising would amplify a flat wall's noise
    many times. The grade-invariant motion measures of a generative variant use it (``qa.facts.judging``)."""
    g = gray(frame)
    lo, hi = np.percentile(g[::2, ::2], (1, 99))
    if hi - lo < 1:
        return g
    return np.clip((g.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled so that the longer side is at most ``max_side`` (never enlarged), even numbers."""
    s = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def quad_size(corners: np.ndarray) -> tuple[float, float]:
    """Mean width and height of a quad (tl, tr, br, bl) in pixels."""
    c = np.asarray(corners, float)
    w = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
    h = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
    return float(w), float(h)


def rectify(frame: np.ndarray, corners: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp the quad ``corners`` (tl, tr, br, bl; pixel centres at integer coordinates) of ``frame`` to an
    upright ``size`` = (w, h) image with a homography."""
    import cv2

    w, h = size
    src = np.asarray(corners, np.float32)
    dst = np.float32([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
