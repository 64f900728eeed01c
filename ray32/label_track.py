"""Planar tracking of a label through a shot: its four corners in every frame, from one reference frame.

Implementation follows in the next commits; ``LabelTrack`` is the shape other modules rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelTrack:
    """The label's quad per frame of a shot (frame 0 = the shot's first frame after trimming).

    Attributes:
        corners: (n, 4, 2) float64 source-pixel corners (tl, tr, br, bl; pixel centres at integer coordinates).
            Frames that are not ``valid`` hold corners interpolated from their valid neighbours, for display only.
        valid: (n,) bool: the fit on this frame was strong (not occluded, enough consistent matches).
        score: (n,) float in 0..1: the fit's strength (share of the reference's features found as inliers).
        ref_frame: the reference frame index; ``ref_corners`` the corners given there.
    """

    corners: np.ndarray
    valid: np.ndarray
    score: np.ndarray
    ref_frame: int
    ref_corners: np.ndarray

    def __len__(self) -> int:
        return len(self.corners)
