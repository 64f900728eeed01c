"""Face boxes per frame: dlib's HOG frontal face detector (built into dlib, no weights file), then smoothing.

The detector runs on frames scaled so the longer side is at most ``DETECT_SIDE`` pixels (dlib's HOG finds faces
from about 80 px), on every ``stride``-th frame; frames in between are interpolated when the faces on both sides
were found. Where no face is found the box is NaN: a missing face is reported, not invented.

Example:
    >>> boxes = detect_faces(shot)          # (n, 4) [x0, y0, x1, y1], NaN where no face   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

DETECT_SIDE = 960
"""Frames are scaled so their longer side is at most this for detection."""


def face_model_dir() -> str:
    """Folder of the face-recognition-models weights (.dat), found without importing the package (its
    ``__init__`` imports ``pkg_resources``, which current setuptools no longer has)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed")
    return spec.submodule_search_locations[0] + "/models"


class FaceDetector:
    """``detect(frame) -> [x0, y0, x1, y1] | None``: the largest face in an RGB frame, in its pixels."""

    def __init__(self, max_side: int = DETECT_SIDE):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.max_side = max_side

    def detect_all(self, frame: np.ndarray) -> np.ndarray:
        """Every face in the frame, (k, 4) ``[x0, y0, x1, y1]`` float64 in the frame's pixels, largest first."""
        import cv2

        h, w = frame.shape[:2]
        s = min(1.0, self.max_side / max(h, w))
        img = frame if s == 1.0 else cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        rects = self._detector(np.ascontiguousarray(img), 0)
        if not len(rects):
            return np.zeros((0, 4))
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float64)
        boxes = (boxes + 0.5) / s - 0.5
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return boxes[np.argsort(-area)]

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """The largest face, or None."""
        boxes = self.detect_all(frame)
        return boxes[0] if len(boxes) else None


def fill_and_smooth(boxes: np.ndarray, examined: np.ndarray, *, radius: int = 2) -> np.ndarray:
    """Interpolate boxes on frames that were not examined (between two found faces), then smooth each found
    run with a moving average of ``radius`` frames each side. Frames examined without a face stay NaN.

    Args:
        boxes: (n, 4), NaN where no face was found or the frame was not examined.
        examined: (n,) bool, the frames the detector ran on.
    """
    n = len(boxes)
    out = np.array(boxes, dtype=np.float64)
    found = np.flatnonzero(np.all(np.isfinite(out), axis=1))
    if len(found) == 0:
        return out
    # Unexamined frames strictly between two found frames with nothing examined-and-empty in between.
    for a, b in zip(found[:-1], found[1:]):
        if b - a > 1 and not np.any(examined[a + 1:b]):
            t = (np.arange(a + 1, b) - a) / (b - a)
            out[a + 1:b] = out[a] * (1 - t[:, None]) + out[b] * t[:, None]
    has = np.all(np.isfinite(out), axis=1)
    smooth = out.copy()
    for i in np.flatnonzero(has):
        lo, hi = max(0, i - radius), min(n, i + radius + 1)
        win = out[lo:hi][has[lo:hi]]
        smooth[i] = win.mean(axis=0)
    return smooth


def detect_faces(shot_or_frames, *, stride: int = 2, progress: Callable[[int, int], None] | None = None
                 ) -> np.ndarray:
    """Face boxes per frame of a shot (``ray32.shot.Shot``) or of frames (n, h, w, 3).

    Returns:
        (n, 4) float64 ``[x0, y0, x1, y1]`` in source pixels; NaN rows where no face was found.
    """
    from ray32.shot import Shot, iter_frames

    detector = FaceDetector()
    if isinstance(shot_or_frames, Shot):
        n = shot_or_frames.frame_count
        frames = ((i - shot_or_frames.first, f) for i, f in iter_frames(shot_or_frames, chunk_frames=8,
                                                                         progress=progress))
    else:
        n = len(shot_or_frames)
        frames = enumerate(shot_or_frames)
    boxes = np.full((n, 4), np.nan)
    examined = np.zeros(n, dtype=bool)
    for i, frame in frames:
        if i % stride == 0 or i == n - 1:
            examined[i] = True
            box = detector.detect(frame)
            if box is not None:
                boxes[i] = box
    return fill_and_smooth(boxes, examined)
