"""Subject-tracked reframe: a crop window of the target aspect that follows the subject, smoothed over time.

The crop is as large as the source allows at the target aspect (no upscaling), even-sized (video encoders need
it). Its centre follows the subject (the face boxes from ``prepare``, else the label, else the frame centre),
smoothed with a Gaussian of ``smooth_seconds`` so the virtual camera moves calmly; then, frame by frame, it is
pushed just enough to keep the whole subject box inside (with a margin) when the box fits.

With a ``safe`` area (a delivery target's frame minus the platform's interface zones, ``ray32.targets``) the
subject is centred in that area and kept inside it rather than inside the whole crop; frames where the subject
cannot be kept clear (it is larger than the safe area, or the crop cannot move far enough) are marked in
``CropPlan.clear`` so the caller can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class CropPlan:
    """``offsets[i] = (x0, y0)`` of the crop on frame ``i``; the crop is ``width`` x ``height``."""

    width: int
    height: int
    offsets: np.ndarray  # (n, 2) int
    clear: np.ndarray | None = None  # (n,) bool: the subject lies inside the safe area (None: no safe area asked)

    def crop(self, index: int, frame: np.ndarray) -> np.ndarray:
        x0, y0 = self.offsets[index]
        return frame[y0:y0 + self.height, x0:x0 + self.width]


def crop_size(width: int, height: int, ratio: Fraction) -> tuple[int, int]:
    """The largest even-sized crop of ``ratio`` (width/height) inside ``width`` x ``height``."""
    ratio = Fraction(ratio)
    if Fraction(width, height) > ratio:
        h = height - height % 2
        w = int(round(h * ratio))
    else:
        w = width - width % 2
        h = int(round(w / ratio))
    w, h = min(w - w % 2, width), min(h - h % 2, height)
    return max(2, w), max(2, h)


def _fill(values: np.ndarray) -> np.ndarray:
    """Interpolate NaN entries of a 1-D series from its finite ones (held at the ends)."""
    idx = np.flatnonzero(np.isfinite(values))
    if len(idx) == 0:
        return values
    return np.interp(np.arange(len(values)), idx, values[idx])


def plan_crop(boxes: np.ndarray, width: int, height: int, ratio: Fraction, fps: Fraction, *,
              smooth_seconds: float = 0.5, margin: float = 0.08,
              safe: tuple[float, float, float, float] | None = None) -> CropPlan:
    """Plan the crop for every frame.

    Args:
        boxes: (n, 4) subject boxes ``[x0, y0, x1, y1]`` per frame, NaN where unknown.
        width, height: source frame size.
        ratio: target width / height (``Reframe.ratio``).
        fps: frame rate (the smoothing is in seconds).
        smooth_seconds: sigma of the temporal Gaussian applied to the crop centre.
        margin: space kept around the subject box, as a share of the box size.
        safe: ``(x0, y0, x1, y1)`` in fractions of the crop: the part of the delivered frame no interface covers;
            the subject is centred in it and kept inside it where the crop allows.

    Returns:
        ``CropPlan``.
    """
    from scipy.ndimage import gaussian_filter1d

    n = len(boxes)
    cw, ch = crop_size(width, height, ratio)
    boxes = np.asarray(boxes, dtype=np.float64)
    known = np.all(np.isfinite(boxes), axis=1)
    if not known.any():
        boxes = np.tile([width / 2, height / 2, width / 2, height / 2], (n, 1)).astype(np.float64)
        known[:] = True
    filled = np.stack([_fill(np.where(known, boxes[:, c], np.nan)) for c in range(4)], axis=1)
    sx0, sy0, sx1, sy1 = safe if safe is not None else (0.0, 0.0, 1.0, 1.0)
    cx = (filled[:, 0] + filled[:, 2]) / 2 - ((sx0 + sx1) / 2 - 0.5) * cw
    # The subject a little above the crop's centre (head room), when the crop is shorter than the frame.
    cy = (filled[:, 1] + filled[:, 3]) / 2 + (0.1 * ch if safe is None else -((sy0 + sy1) / 2 - 0.5) * ch)
    sigma = max(0.0, float(smooth_seconds * fps))
    if sigma > 0 and n > 1:
        cx = gaussian_filter1d(cx, sigma, mode="nearest")
        cy = gaussian_filter1d(cy, sigma, mode="nearest")
    x0 = cx - cw / 2
    y0 = cy - ch / 2
    # Keep the (known) subject box inside, with a margin, where it fits.
    bw = filled[:, 2] - filled[:, 0]
    bh = filled[:, 3] - filled[:, 1]
    mx, my = margin * bw, margin * bh
    lo_x, hi_x = filled[:, 2] + mx - sx1 * cw, filled[:, 0] - mx - sx0 * cw
    lo_y, hi_y = filled[:, 3] + my - sy1 * ch, filled[:, 1] - my - sy0 * ch
    fits_x, fits_y = lo_x <= hi_x, lo_y <= hi_y
    x0 = np.where(fits_x, np.clip(x0, lo_x, hi_x), x0)
    y0 = np.where(fits_y, np.clip(y0, lo_y, hi_y), y0)
    x0 = np.clip(np.round(x0), 0, width - cw).astype(int)
    y0 = np.clip(np.round(y0), 0, height - ch).astype(int)
    clear = None
    if safe is not None:
        clear = ((filled[:, 0] >= x0 + sx0 * cw - 0.5) & (filled[:, 2] <= x0 + sx1 * cw + 0.5)
                 & (filled[:, 1] >= y0 + sy0 * ch - 0.5) & (filled[:, 3] <= y0 + sy1 * ch + 0.5))
    return CropPlan(width=cw, height=ch, offsets=np.stack([x0, y0], axis=1), clear=clear)
