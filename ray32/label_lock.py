"""Label swap and label lock: composite a market's exact artwork onto the tracked label, keeping the shot's light.

For each frame, with the label's quad from ``ray32.label_track``:

1. the label as the frame shows it is unwarped to a rectangle at the frame's resolution;
2. its *shading* is estimated in linear light: a morphological closing removes the printed ink (dark strokes
   and bands narrower than about a fifth of the label's height), a blur keeps the slow light variation and the
   broad highlights; divided by the artwork's paper white this is the light falling on the label;
3. the artwork (in linear light, through OCIO's decoding table) is multiplied by that light, so the new label
   keeps the source's shading and highlights (transfer of luminance);
4. it is warped onto the quad with an anti-aliased, feathered edge;
5. its sharpness is matched to the source label's: the blur of each is estimated from the ratio of gradient
   energy before and after a known blur, and the new label is blurred by the difference.

``apply_label_lock`` runs the same swap as a post-pass over frames from any engine (the label lock).

Where the track is lost (the product turns away, a hand covers it) the artwork is *withheld*, not pasted at
held corners: ``label_visibility`` turns the tracker's per-frame ``valid`` flags into an opacity per frame. A
weak run of at most ``BRIDGE_SECONDS`` between good frames is bridged (a blurred or missed fit: the label stays,
at interpolated corners); a longer one, or one that runs to the clip's end, is withheld (opacity 0: the source's
own pixels show), and the artwork fades out over ``FADE_SECONDS`` of good frames before it and back in after the
track is regained, so it never pops. The composite engine, the label lock after a generative engine and QA's
intended reference all take the opacity from this one function; the withheld ranges go into the render record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ray32.errors import Ray32Error

log = logging.getLogger(__name__)


LIGHT_SIDE = 64
"""Height in pixels at which the light on the label is estimated."""


BRIDGE_SECONDS = 0.1
"""A run of weak frames at most this long with good frames on both sides is bridged: the label stays, at corners
interpolated between them (a blurred or missed fit, not a turn-away)."""
FADE_SECONDS = 0.2
"""The artwork fades out over this long (on the good frames before a lost run) and back in after the track is
regained. A run of shown frames shorter than the fade is withheld too (a label flashing in and out)."""


@dataclass(frozen=True)
class LabelVisibility:
    """Where the label lock draws the artwork, per frame.

    Attributes:
        alpha: (n,) float 0..1: the artwork's opacity (1 = drawn, 0 = withheld: the source's pixels show).
        withheld: inclusive frame ranges (first, last) where the artwork is not drawn (the track is lost).
        bridged: inclusive frame ranges of weak frames where the label stays at interpolated corners.
        fade_frames: frames the fade takes at each end of a withheld range.
    """

    alpha: np.ndarray
    withheld: tuple[tuple[int, int], ...]
    bridged: tuple[tuple[int, int], ...]
    fade_frames: int

    @property
    def withheld_count(self) -> int:
        return sum(b - a + 1 for a, b in self.withheld)

    def record(self, fps) -> list[dict]:
        """The withheld ranges for a render record: frames and times (``MM:SS.ss``, end exclusive)."""
        from ray32.timecode import format_seconds

        fps = Fraction(fps)
        return [{"frames": [a, b], "start": format_seconds(Fraction(a) / fps),
                 "end": format_seconds(Fraction(b + 1) / fps)} for a, b in self.withheld]

    def describe(self, fps) -> str:
        """'frames 27-79 (00:01.01-00:02.99)' for messages; '' when nothing is withheld."""
        return ", ".join(f"frames {r['frames'][0]}-{r['frames'][1]} ({r['start']}-{r['end']})"
                         for r in self.record(fps))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) of every run of True in a 1-d bool array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def label_visibility(track_or_valid, fps, *, fade_seconds: float = FADE_SECONDS,
                     bridge_seconds: float = BRIDGE_SECONDS) -> LabelVisibility:
    """The artwork's opacity per frame from the label track's confidence (the one home of this decision).

    Args:
        track_or_valid: a ``ray32.label_track.LabelTrack`` (its ``valid`` flags: enough consistent RANSAC inliers,
            a large enough share of the reference's features, a sound quad), or those flags as a bool array.
        fps: the shot's frame rate (the bridge and the fade are times).
        fade_seconds: the fade's length (0: the artwork is cut, not faded). bridge_seconds: see ``BRIDGE_SECONDS``.

    Returns:
        ``LabelVisibility``.

    Example:
        >>> v = label_visibility(np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool), 10)
        >>> v.withheld, np.round(v.alpha[:8], 2).tolist()
        (((8, 15),), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.67, 0.33])
    """
    valid = np.asarray(getattr(track_or_valid, "valid", track_or_valid), bool)
    n = len(valid)
    fps = float(fps)
    bridge = int(round(bridge_seconds * fps))
    fade = int(round(fade_seconds * fps)) if fade_seconds > 0 else 0
    shown = valid.copy()
    bridged = []
    for a, b in _runs(~valid):
        if a > 0 and b < n - 1 and b - a + 1 <= bridge:  # good frames on both sides, and short
            shown[a:b + 1] = True
            bridged.append((a, b))
    for a, b in _runs(shown):  # too short to fade in and out: a flash, not a label
        if b - a + 1 < max(2, fade) and not (a == 0 and b == n - 1):
            shown[a:b + 1] = False
    withheld = _runs(~shown)
    alpha = shown.astype(np.float64)
    if withheld and fade > 0 and shown.any():
        idx = np.arange(n)
        gone = np.flatnonzero(~shown)
        # distance of every frame to the nearest withheld frame
        pos = np.clip(np.searchsorted(gone, idx), 1, len(gone)) - 1
        dist = np.minimum(np.abs(idx - gone[pos]), np.abs(idx - gone[np.minimum(pos + 1, len(gone) - 1)]))
        alpha = np.clip(dist / (fade + 1.0), 0.0, 1.0)
    return LabelVisibility(alpha=alpha, withheld=tuple(withheld), bridged=tuple(bridged), fade_frames=fade)


class LabelArtError(Ray32Error):
    """Label artwork that cannot be used (missing, unreadable, empty)."""


def load_artwork(path: str | os.PathLike) -> np.ndarray:
    """An artwork image file -> RGB uint8 (alpha is composited over white).

    Raises:
        LabelArtError: the file is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise LabelArtError(f"label artwork {str(path)!r} does not exist; give the path of a PNG or JPEG image")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as ex:
        raise LabelArtError(f"label artwork {str(path)!r} is not a readable image ({ex})") from ex
    if min(rgb.shape[:2]) < 8:
        raise LabelArtError(f"label artwork {str(path)!r} is {rgb.shape[1]}x{rgb.shape[0]} pixels; it needs at "
                            "least 8 pixels each way (ideally as large as the label appears, or larger)")
    return rgb


def estimate_blur(gray: np.ndarray, mask: np.ndarray) -> float:
    """Gaussian blur sigma (pixels) of edge content in ``gray`` under ``mask``.

    For a step edge blurred by s, gradient energy is proportional to 1/s; after an extra blur of 1 it is
    1/sqrt(s^2 + 1). Their ratio r gives s = 1/sqrt(r^2 - 1), whatever the edges' contrast.
    """
    import cv2

    g = gray.astype(np.float32)

    def energy(img):
        gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
        return float(((gx * gx + gy * gy) * mask).sum())

    e0 = energy(g)
    e1 = energy(cv2.GaussianBlur(g, (0, 0), 1.0))
    if e0 <= 1e-6 or e1 <= 1e-6:
        return 0.0
    r = e0 / e1
    if r <= 1.0001:
        return 5.0
    return float(np.clip(1.0 / np.sqrt(r * r - 1.0), 0.0, 5.0))


class LabelSwapper:
    """Swap a label in frames of one encoding.

    Args:
        artwork: RGB uint8 artwork (``load_artwork``).
        transfer, primaries: the frames' colour tags (``ShotInfo.color_transfer`` / ``color_primaries``);
            the artwork's code values are taken to be in the same encoding as the frames.
        feather: width in pixels of the soft edge.
    """

    def __init__(self, artwork: np.ndarray, *, transfer: str = "bt709", primaries: str = "bt709",
                 feather: float = 0.7):
        from ray32.color import decode_lut

        if artwork.ndim != 3 or artwork.shape[2] != 3 or artwork.dtype != np.uint8:
            raise LabelArtError(f"artwork must be (h, w, 3) uint8 RGB, got {artwork.shape} {artwork.dtype}")
        self.artwork = artwork
        self.lut = decode_lut(transfer, primaries, 256).astype(np.float32)  # code value -> linear (OCIO)
        self.feather = feather
        art_lin = self.lut[artwork].mean(axis=2)
        self.art_white = float(np.percentile(art_lin, 95)) or 1.0
        self._art_cache: dict[tuple[int, int], np.ndarray] = {}
        self._inverse = None

    def _encode(self, lin: np.ndarray) -> np.ndarray:
        """Linear light -> code values (float), by inverting the OCIO decoding table: a dense table indexed by
        sqrt(linear), which is fine near black where the transfer is steep."""
        if self._inverse is None:
            grid = np.linspace(0.0, 1.0, 8192, dtype=np.float64)
            top = float(self.lut[-1])
            self._inverse = (np.interp(grid * grid * top, self.lut, np.arange(256)).astype(np.float32), top)
        table, top = self._inverse
        idx = np.sqrt(np.clip(lin, 0.0, top) / top) * (len(table) - 1)
        return table[(idx + 0.5).astype(np.int32)]

    def _art_at(self, w: int, h: int) -> np.ndarray:
        import cv2

        key = (w, h)
        art = self._art_cache.get(key)  # one lookup: QA's threads share a swapper, and another may clear the cache
        if art is None:
            if len(self._art_cache) > 16:
                self._art_cache.clear()
            small = cv2.resize(self.artwork, (w, h), interpolation=cv2.INTER_AREA if w < self.artwork.shape[1]
                               else cv2.INTER_CUBIC)
            art = self._art_cache[key] = cv2.LUT(small, self.lut)
        return art

    def apply(self, frame: np.ndarray, corners: np.ndarray, *, inplace: bool = False,
              opacity: float = 1.0) -> np.ndarray:
        """Swap the label on one (h, w, 3) uint8 frame whose label has ``corners`` (4, 2).

        ``opacity`` (``LabelVisibility.alpha`` of the frame) blends the new label over the source's: 0 leaves the
        frame untouched (the label is withheld where the track is lost).

        Returns a new frame, or ``frame`` itself changed when ``inplace`` (``frame`` itself when nothing is drawn).
        Pixels farther than about two pixels from the quad are not touched."""
        import cv2

        corners = np.asarray(corners, dtype=np.float64)
        if not np.all(np.isfinite(corners)) or opacity <= 0.0:
            return frame
        fh, fw = frame.shape[:2]
        edge = lambda a, b: float(np.linalg.norm(corners[a] - corners[b]))  # noqa: E731
        wr = max(8, int(round(max(edge(0, 1), edge(3, 2)))))
        hr = max(8, int(round(max(edge(0, 3), edge(1, 2)))))
        margin = 6
        x0 = max(0, int(np.floor(corners[:, 0].min())) - margin)
        y0 = max(0, int(np.floor(corners[:, 1].min())) - margin)
        x1 = min(fw, int(np.ceil(corners[:, 0].max())) + margin + 1)
        y1 = min(fh, int(np.ceil(corners[:, 1].max())) + margin + 1)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return frame
        roi = frame[y0:y1, x0:x1]
        rect = np.float32([[-0.5, -0.5], [wr - 0.5, -0.5], [wr - 0.5, hr - 0.5], [-0.5, hr - 0.5]])
        quad = (corners - [x0, y0]).astype(np.float32)
        H = cv2.getPerspectiveTransform(rect, quad)
        size = (x1 - x0, y1 - y0)

        # 1-2. The source label, unwarped, and the light on it (ink removed by a closing, then smoothed).
        src_rect = cv2.warpPerspective(roi, H, (wr, hr), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_REPLICATE)
        lum = cv2.LUT(src_rect, self.lut).mean(axis=2)
        # The light varies slowly: estimate it on a copy about LIGHT_SIDE pixels high, then scale it back up.
        s = min(1.0, LIGHT_SIDE / hr)
        small = cv2.resize(lum, (max(4, round(wr * s)), max(4, round(hr * s))), interpolation=cv2.INTER_AREA)
        k = max(3, int(round(0.22 * small.shape[0])) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        light = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REFLECT)
        light = cv2.GaussianBlur(light, (0, 0), max(1.0, k / 4), borderType=cv2.BORDER_REFLECT)
        light = cv2.resize(light, (wr, hr), interpolation=cv2.INTER_LINEAR)

        # 3. The artwork under that light, back to code values.
        art = self._art_at(wr, hr)
        new_lin = art * (light / self.art_white)[..., None]
        new_rect = self._encode(new_lin)

        # 4. Onto the quad, with coverage as alpha (anti-aliased) and a feathered edge.
        new = cv2.warpPerspective(new_rect, H, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpPerspective(np.ones((hr, wr), np.float32), H, size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if self.feather > 0:
            alpha = cv2.GaussianBlur(alpha, (0, 0), self.feather)
            alpha = np.clip((alpha - 0.5) * 1.6 + 0.5, 0, 1)  # keep the feather at the edge, inside ~1 px

        # 5. Match the source's blur, measured inside the label.
        inner = cv2.erode((alpha > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
        if inner.sum() > 50:
            s_src = estimate_blur(cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY), inner)
            s_new = estimate_blur(new.mean(axis=2), inner)
            extra = float(np.sqrt(max(0.0, s_src * s_src - s_new * s_new)))
            if extra > 0.25:
                new = cv2.GaussianBlur(new, (0, 0), extra)

        out = frame if inplace else frame.copy()
        a = alpha[..., None] * float(min(opacity, 1.0))
        blended = roi.astype(np.float32)
        blended += (new - blended) * a
        touched = alpha > 0
        region = out[y0:y1, x0:x1]
        region[touched] = np.clip(blended[touched] + 0.5, 0, 255).astype(np.uint8)
        return out


def apply_label_lock(chunks: Iterable[np.ndarray], track, artwork: np.ndarray, *, first: int = 0,
                     transfer: str = "bt709", primaries: str = "bt709", geometry=None,
                     fps=None, visibility: LabelVisibility | None = None) -> Iterator[np.ndarray]:
    """The label lock: composite the exact artwork onto the tracked label of frames from any engine; where the
    track is lost the artwork is withheld (faded out and back in, ``label_visibility``).

    Args:
        chunks: (n, h, w, 3) uint8 RGB chunks in frame order.
        track: ``ray32.label_track.LabelTrack`` of the shot the frames follow.
        artwork: RGB uint8 artwork.
        first: the track frame index of the first frame in ``chunks``.
        transfer, primaries: the frames' colour tags.
        geometry: a ``ray32.shot.Geometry`` when the frames are at an engine's working size (corners are mapped
            from source pixels with ``geometry.to_working``); None when they are at source size.
        fps: the shot's frame rate, for ``label_visibility`` (or give ``visibility``; with neither, the artwork is
            drawn on every frame).

    Yields:
        The chunks with the label replaced (new arrays).
    """
    swapper = LabelSwapper(artwork, transfer=transfer, primaries=primaries)
    if visibility is None and fps is not None:
        visibility = label_visibility(track, fps)
    i = first
    weak = []
    for chunk in chunks:
        out = np.array(chunk, dtype=np.uint8, copy=True)
        for k, frame in enumerate(out):
            if i >= len(track):
                raise Ray32Error(f"label lock: frame {i} is past the track's {len(track)} frames")
            corners = track.corners[i]
            if geometry is not None:
                # Pixel-edge corners: map the edges, which sit half a pixel off the centres.
                corners = geometry.to_working(corners + 0.5) - 0.5
            opacity = 1.0 if visibility is None else float(visibility.alpha[i])
            if not track.valid[i] and opacity > 0:
                weak.append(i)
            swapper.apply(frame, corners, inplace=True, opacity=opacity)
            i += 1
        yield out
    if weak:
        log.warning("label lock: %d frames used interpolated corners (tracking was weak there): %s", len(weak),
                    weak[:20])
    if visibility is not None and visibility.withheld:
        log.warning("label lock: the label is withheld where the track is lost: %s", visibility.describe(fps or 1))
