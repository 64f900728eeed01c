"""Planar tracking of a label through a shot: its four corners in every frame, from one reference frame.

Method (per DESIGN.md): SIFT features inside the label's quad on the reference frame, at half resolution;
in every frame, SIFT features in a search window around the label's last position, matched to the
reference's (ratio test), and a RANSAC homography from reference to frame. The reference corners mapped through
the homography are the frame's corners. Matching every frame against the reference (not the previous frame)
means errors do not accumulate. The corners are then smoothed over time by a local quadratic fit.

Frames where the fit is weak (too few consistent matches, a fold or collapse of the quad, a jump in size) are
flagged ``valid=False``: not guessed. Their corners are interpolated from the valid neighbours only so that
arrays stay dense; consumers check ``valid``.

Example:
    >>> track = track_label(shot, ref_frame=0, ref_corners=[[579.5, 254.5], [799.5, 254.5], [799.5, 374.5],
    ...                                                      [579.5, 374.5]])        # doctest: +SKIP
    >>> track.corners.shape, track.valid.mean()                                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ray32.errors import Ray32Error

log = logging.getLogger(__name__)

MIN_INLIERS = 12
"""A frame's fit needs at least this many RANSAC inliers ..."""
MIN_SCORE = 0.12
"""... and at least this share of the reference's features found as inliers."""
MIN_TRACK_SIDE = 60
"""Pixels the label's short side keeps at the tracking scale (half size only when it stays this long)."""
SMOOTH_RADIUS = 3
"""Frames on each side in the temporal smoothing window."""


class TrackError(Ray32Error):
    """The label cannot be tracked from the given reference (corners off the frame, nothing to hold on to)."""


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


def _gray(frame: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    if scale != 1.0:
        h, w = g.shape
        g = cv2.resize(g, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return g


def _convex_quad(q: np.ndarray) -> bool:
    """The four points, in order, make a convex quad with a consistent turning direction."""
    d = np.roll(q, -1, axis=0) - q
    cross = d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def _area(q: np.ndarray) -> float:
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


class LabelTracker:
    """Incremental tracker: ``set_reference(frame)``, then ``add(i, frame)`` for every frame, then ``finish()``.

    ``track_label`` wraps it; ``ray32.engines.base.prepare_tracks`` feeds it from the same decoding pass as the
    face detector.
    """

    def __init__(self, ref_corners: Sequence[Sequence[float]] | np.ndarray, ref_frame: int, frame_count: int,
                 *, scale: float | None = None):
        self.ref_corners = np.asarray(ref_corners, dtype=np.float64).reshape(4, 2)
        if not 0 <= ref_frame < frame_count:
            raise TrackError(f"label reference frame {ref_frame} is outside the shot's frames 0..{frame_count - 1}")
        if not _convex_quad(self.ref_corners):
            raise TrackError(f"label corners {self.ref_corners.tolist()} do not make a convex quad; give them in "
                             "order top-left, top-right, bottom-right, bottom-left")
        self.ref_frame = ref_frame
        self.frame_count = frame_count
        short = min(np.linalg.norm(self.ref_corners[1] - self.ref_corners[0]),
                    np.linalg.norm(self.ref_corners[3] - self.ref_corners[0]))
        # Half resolution (as DESIGN.md measured) unless the label would become too small to hold features: under
        # MIN_TRACK_SIDE px on its short side at half size, its corners drift by pixels (the demo's 190x104 label:
        # up to 2.2 px at half size, 0.25 px at full size), so a small label is tracked at full size.
        self.scale = scale if scale is not None else (0.5 if short >= 2 * MIN_TRACK_SIDE else 1.0)
        self.raw = np.full((frame_count, 4, 2), np.nan)
        self.score = np.zeros(frame_count)
        self.ok = np.zeros(frame_count, dtype=bool)
        self._ref = None
        self._last = self.ref_corners.copy()
        self._sift = None

    # Coordinates: pixel centres at integers, at both scales (so a half-size pixel centre x maps to 2x + 0.5).
    def _to_small(self, pts: np.ndarray) -> np.ndarray:
        return (pts + 0.5) * self.scale - 0.5

    def _to_full(self, pts: np.ndarray) -> np.ndarray:
        return (pts + 0.5) / self.scale - 0.5

    def _features(self, gray: np.ndarray, mask: np.ndarray | None):
        import cv2

        if self._sift is None:
            self._sift = cv2.SIFT_create(nfeatures=0, contrastThreshold=0.02)
        return self._sift.detectAndCompute(gray, mask)

    def set_reference(self, frame: np.ndarray) -> None:
        """Features of the label on the reference frame (RGB uint8, source size)."""
        import cv2

        self.size = frame.shape[1], frame.shape[0]
        w, h = self.size
        if np.any(self.ref_corners < -0.5) or np.any(self.ref_corners[:, 0] > w - 0.5) or \
                np.any(self.ref_corners[:, 1] > h - 0.5):
            raise TrackError(f"label corners {self.ref_corners.tolist()} reach outside the {w}x{h} frame")
        gray = _gray(frame, self.scale)
        mask = np.zeros(gray.shape, np.uint8)
        cv2.fillConvexPoly(mask, np.round(self._to_small(self.ref_corners) * 16).astype(np.int32), 255,
                           lineType=cv2.LINE_8, shift=4)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
        kps, desc = self._features(gray, mask)
        if desc is None or len(kps) < MIN_INLIERS:
            raise TrackError(f"the label on frame {self.ref_frame} has only {0 if desc is None else len(kps)} "
                             f"trackable features (at least {MIN_INLIERS} needed): check the corners, or pick a "
                             "frame where the label is sharp and unoccluded")
        self._ref = (np.float32([k.pt for k in kps]), desc)
        log.debug("label reference: %d features at scale %.2f", len(kps), self.scale)

    def set_reference_from(self, shot) -> None:
        """Decode the shot's reference frame and ``set_reference`` from it."""
        from ray32.shot import read_chunks

        index = shot.first + self.ref_frame
        for chunk in read_chunks(shot.info, start=f"{index}f", end=f"{index + 1}f", chunk_frames=1):
            self.set_reference(chunk.frames[0])
            return
        raise TrackError(f"frame {self.ref_frame} of {shot.path} could not be decoded")

    def add(self, index: int, frame: np.ndarray) -> None:
        """Fit the label on frame ``index`` (RGB uint8, source size)."""
        import cv2

        if self._ref is None:
            raise RuntimeError("set_reference() first")
        if index == self.ref_frame:
            self.raw[index], self.score[index], self.ok[index] = self.ref_corners, 1.0, True
            return
        gray = _gray(frame, self.scale)
        gh, gw = gray.shape
        # Search window: the last good quad, grown by half its size each way; the whole frame if that fails.
        q = self._to_small(self._last)
        lo, hi = q.min(axis=0), q.max(axis=0)
        pad = 0.5 * (hi - lo) + 8
        x0, y0 = np.maximum(np.floor(lo - pad).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(hi + pad).astype(int) + 1, [gw, gh])
        if not self._fit(index, gray, (x0, y0, x1, y1)) and (x0, y0, x1, y1) != (0, 0, gw, gh):
            self._fit(index, gray, (0, 0, gw, gh))

    def _fit(self, index: int, gray: np.ndarray, window: tuple[int, int, int, int]) -> bool:
        import cv2

        x0, y0, x1, y1 = (int(v) for v in window)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        kps, desc = self._features(np.ascontiguousarray(gray[y0:y1, x0:x1]), None)
        if desc is None or len(kps) < MIN_INLIERS:
            return False
        ref_pts, ref_desc = self._ref
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        pairs = matcher.knnMatch(ref_desc, desc, k=2)
        good = [m for m, *rest in pairs if rest and m.distance < 0.8 * rest[0].distance]
        if len(good) < MIN_INLIERS:
            return False
        src = ref_pts[[m.queryIdx for m in good]]
        dst = np.float32([kps[m.trainIdx].pt for m in good]) + np.float32([x0, y0])
        H, inl = cv2.findHomography(src, dst, cv2.RANSAC, 1.0, maxIters=4000, confidence=0.999)
        if H is None:
            return False
        inl = inl.ravel().astype(bool)
        n_in = int(inl.sum())
        if n_in >= 8:  # refit on the inliers alone (least squares)
            H2, _ = cv2.findHomography(src[inl], dst[inl], 0)
            H = H2 if H2 is not None else H
        quad = cv2.perspectiveTransform(self._to_small(self.ref_corners)[None].astype(np.float64), H)[0]
        quad = self._to_full(quad)
        score = n_in / len(ref_pts)
        area_ratio = _area(quad) / max(_area(self._last), 1e-6)
        self.score[index] = score
        if n_in >= MIN_INLIERS and score >= MIN_SCORE and _convex_quad(quad) and 0.5 < area_ratio < 2.0:
            self.raw[index], self.ok[index] = quad, True
            self._last = quad
            return True
        return False

    def finish(self) -> LabelTrack:
        """Smooth the valid frames' corners over time; interpolate the others and flag them."""
        valid = self.ok.copy()
        if valid.sum() == 0:
            raise TrackError("the label was not found in any frame")
        weak = np.flatnonzero(~valid)
        if len(weak):
            log.warning("label track: %d of %d frames are weak or occluded (flagged): %s", len(weak),
                        self.frame_count, _ranges(weak))
        corners = smooth_corners(self.raw, valid, radius=SMOOTH_RADIUS)
        return LabelTrack(corners=corners, valid=valid, score=np.clip(self.score, 0, 1), ref_frame=self.ref_frame,
                          ref_corners=self.ref_corners.copy())


def _ranges(idx: np.ndarray) -> str:
    out, start, prev = [], None, None
    for i in list(idx) + [None]:
        if start is None:
            start = prev = i
        elif i is not None and i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    return ", ".join(out)


def smooth_corners(raw: np.ndarray, valid: np.ndarray, *, radius: int = SMOOTH_RADIUS) -> np.ndarray:
    """Smooth (n, 4, 2) corners over time with a local quadratic fit on the valid frames within ``radius``
    frames; frames that are not valid get corners interpolated linearly from the smoothed valid ones (held
    at the ends).

    A quadratic follows a steady acceleration (a camera push-in) without lag, unlike a moving average.
    """
    n = len(raw)
    out = np.array(raw, dtype=np.float64)
    idx = np.flatnonzero(valid)
    flat = raw.reshape(n, -1)
    smooth = np.empty((len(idx), flat.shape[1]))
    for j, i in enumerate(idx):
        near = idx[(idx >= i - radius) & (idx <= i + radius)]
        if len(near) >= 4:
            t = (near - i).astype(np.float64)
            w = 1.0 - (np.abs(t) / (radius + 1)) ** 3  # tricube-like weights: the frame itself counts most
            A = np.stack([np.ones_like(t), t, t * t], axis=1) * w[:, None]
            coef, *_ = np.linalg.lstsq(A, flat[near] * w[:, None], rcond=None)
            smooth[j] = coef[0]
        else:
            smooth[j] = flat[i]
    res = np.empty_like(flat)
    for c in range(flat.shape[1]):
        res[:, c] = np.interp(np.arange(n), idx, smooth[:, c])
    out = res.reshape(raw.shape)
    return out


def track_label(shot_or_frames, ref_frame: int, ref_corners, progress: Callable[[int, int], None] | None = None,
                *, scale: float | None = None) -> LabelTrack:
    """Track a label through a shot from its corners on one frame.

    Args:
        shot_or_frames: a ``ray32.shot.Shot`` (decoded in chunks at source size), or frames: an array
            (n, h, w, 3) uint8 RGB or a sequence of such frames (a generative engine's output, say).
        ref_frame: the frame (0-based in the shot or the sequence) where ``ref_corners`` are given.
        ref_corners: (4, 2) corners tl, tr, br, bl in pixels of those frames.
        progress: ``progress(done, total)`` per chunk.
        scale: resolution of the feature matching (default 0.5, or 1.0 for a small label).

    Returns:
        ``LabelTrack``.

    Raises:
        TrackError: the corners are outside the frame or not a convex quad, the label has too few features,
            or it is found in no frame.
    """
    from ray32.shot import Shot, read_chunks

    if isinstance(shot_or_frames, Shot):
        shot = shot_or_frames
        tracker = LabelTracker(ref_corners, ref_frame, shot.frame_count, scale=scale)
        tracker.set_reference_from(shot)
        for chunk in read_chunks(shot, chunk_frames=8, progress=progress):
            for k, frame in enumerate(chunk.frames):
                tracker.add(chunk.first - shot.first + k, frame)
        return tracker.finish()
    frames = shot_or_frames if isinstance(shot_or_frames, (np.ndarray, Sequence)) else list(shot_or_frames)
    tracker = LabelTracker(ref_corners, ref_frame, len(frames), scale=scale)
    tracker.set_reference(np.asarray(frames[ref_frame]))
    for i, frame in enumerate(frames):
        tracker.add(i, np.asarray(frame))
        if progress:
            progress(i + 1, len(frames))
    return tracker.finish()

