"""Direction controls -> Wan2.1-VACE inputs: control videos, masks, windows, joins. Pure numpy/OpenCV, no torch.

The generative engine (``ray32.engines.wan_vace``) asks this module what to feed the model:

- ``control_video``: the per-shot control signal (edges, grayscale, coarse layout, optical flow), made once in
  ``prepare``;
- ``resolve_plan``: a request's adherences and options -> control kind, conditioning scale, start strength, steps;
- ``plan_windows``: a clip longer than one model window (81 frames) -> overlapping windows that cover it exactly;
- ``WindowJoiner``: windows -> one stream of exactly the source's frame count, each window colour-matched to the
  previous one over their overlap and cross-faded there, so no seam shows;
- masks for locks (polygons per frame), keyframes and the outpainting canvas.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ray32.errors import Ray32Error

CONTROL_KINDS = ("edges", "gray", "layout", "flow")
"""Control videos ``prepare`` can make, drawn the way VACE's annotators (ali-vilab/VACE, ``vace/annotators``) draw
what the model was trained on, with estimators that need no weights:

- edges: Canny lines, white on black (the canny/scribble convention: lines bright, background black);
- gray: luminance as three equal channels (VACE's ``GrayAnnotator``);
- layout: black contours, 3 px at 480p, of the regions of coarse luminance on a white canvas (VACE's
  ``LayoutMaskAnnotator`` draws the contours of object masks this way; the regions here come from blurred,
  quantised luminance instead of a segmentation model);
- flow: dense optical flow (Farneback instead of RAFT) drawn as VACE's ``FlowVisAnnotator`` draws RAFT's: the
  Middlebury colour wheel of ``flow_viz.flow_to_image``, each frame normalised by its largest motion, zero motion
  white; the first frame repeats the second's flow."""

TEMPORAL = 4
"""Wan's VAE packs 4 frames into one latent frame (after the first, which is alone)."""


class ControlError(Ray32Error):
    """Engine options that cannot be applied (unknown control kind, a bad window size, ...)."""


# --------------------------------------------------------------------------------------------- control videos

def control_video(frames: np.ndarray, kind: str) -> np.ndarray:
    """The control video of a run of frames.

    Args:
        frames: (n, h, w, 3) uint8 RGB, consecutive frames (flow needs their order).
        kind: one of ``CONTROL_KINDS``.

    Returns:
        (n, h, w, 3) uint8 RGB control frames.

    Raises:
        ControlError: an unknown kind.
    """
    import cv2

    if kind not in CONTROL_KINDS:
        raise ControlError(f"unknown control kind {kind!r}; choose one of {', '.join(CONTROL_KINDS)}")
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    h, w = gray.shape[1:]
    if kind == "gray":
        out = gray
    elif kind == "edges":
        size = max(3, (min(h, w) // 160) * 2 + 1)
        out = np.stack([cv2.Canny(cv2.GaussianBlur(g, (size, size), 0), 60, 140) for g in gray])
    elif kind == "layout":
        k = max(3, (min(h, w) // 12) | 1)
        levels = 6
        line = np.ones((max(1, round(3 * min(h, w) / 480)),) * 2, np.uint8)
        out = np.full((len(gray), h, w), 255, np.uint8)
        for i, g in enumerate(gray):
            level = np.round(cv2.GaussianBlur(g, (k, k), 0) / 255.0 * (levels - 1)).astype(np.uint8)
            border = cv2.morphologyEx(level, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8)) > 0  # region borders
            out[i][cv2.dilate(border.astype(np.uint8), line) > 0] = 0
    else:  # flow
        return flow_video(gray)
    return np.repeat(out[..., None], 3, axis=-1)


def flow_video(gray: np.ndarray) -> np.ndarray:
    """Dense optical flow (Farneback) between consecutive frames drawn as VACE's flow annotator draws RAFT's
    (``flow_to_colour``); the first frame repeats the second's flow."""
    import cv2

    n, h, w = gray.shape
    flows = [cv2.calcOpticalFlowFarneback(gray[i - 1], gray[i], None, 0.5, 3, 15, 3, 5, 1.2, 0) for i in range(1, n)]
    if not flows:
        flows = [np.zeros((h, w, 2), np.float32)]
    flows = [flows[0]] + flows
    return np.stack([flow_to_colour(f) for f in flows])


def _colour_wheel() -> np.ndarray:
    """The Middlebury flow colour wheel (Baker et al. 2007): 55 hues in six ramps, RGB 0..255, (55, 3)."""
    ramps = [(15, (255, None, 0), 1), (6, (None, 255, 0), 0), (4, (0, 255, None), 2), (11, (0, None, 255), 1),
             (13, (None, 0, 255), 0), (6, (255, 0, None), 2)]
    rows = []
    for i, (n, base, channel) in enumerate(ramps):
        ramp = np.floor(255 * np.arange(n) / n)
        block = np.zeros((n, 3))
        for c in range(3):
            if base[c] is not None:
                block[:, c] = base[c]
        block[:, channel] = ramp if i % 2 == 0 else 255 - ramp
        rows.append(block)
    return np.concatenate(rows)


def flow_to_colour(flow: np.ndarray) -> np.ndarray:
    """One flow field (h, w, 2) -> (h, w, 3) uint8 RGB as RAFT's ``flow_viz.flow_to_image``: normalised by its
    largest motion, hue = direction on the Middlebury wheel, saturation = speed (zero motion is white)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    top = float(np.sqrt(u ** 2 + v ** 2).max()) + 1e-5
    u, v = u / top, v / top
    wheel = _colour_wheel()
    ncols = len(wheel)
    rad = np.sqrt(u ** 2 + v ** 2)
    fk = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(np.int32)
    k1 = np.where(k0 + 1 == ncols, 0, k0 + 1)
    f = (fk - k0)[..., None]
    col = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    return np.floor(255 * col).astype(np.uint8)


# ------------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Plan:
    """What one variant asks of the model, after presets and options are resolved."""

    control: str
    conditioning_scale: float
    strength: float
    steps: int
    guidance: float
    guidance_steps: float
    lock_blend: float
    keyframe_fade: int
    motion_adherence: float
    structure_adherence: float
    negative_prompt: str
    draft: bool
    post_pass: bool = True
    cache_threshold: float = 0.0


DRAFT = {"steps": 8, "guidance_steps": 0.5, "cache_threshold": 0.05}
"""The draft preset: fewer steps, classifier-free guidance only on the first half of them (the rest run the
conditional branch alone, half the transformer work) and diffusers' FirstBlockCache hook (a step whose first block
changes by less than the threshold reuses the other blocks' cached residual)."""

DEFAULT_NEGATIVE = ("bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality, "
                    "JPEG artifacts, deformed, disfigured, messy background")

_OPTIONS = {"control", "conditioning_scale", "strength", "steps", "guidance", "guidance_steps", "lock_blend",
            "keyframe_fade", "negative_prompt", "preset", "max_side", "window", "overlap", "post_pass",
            "cache_threshold"}
"""``max_side``, ``window`` and ``overlap`` shape the per-shot work: the engine reads them in ``prepare_settings``."""


def choose_control(motion: float, structure: float) -> str:
    """The control video that carries what the user asked to keep most: structure first (edges when it is held
    firmly, coarse layout otherwise); motion when it matters more than structure (flow when firm, gray otherwise)."""
    if motion > structure:
        return "flow" if motion >= 0.5 else "gray"
    return "edges" if structure >= 0.5 else "layout"


def resolve_plan(request) -> Plan:
    """A ``RenderRequest`` (its mode preset, adherences and ``engine_options``) -> the model's settings.

    Mapping (explicit ``engine_options`` win):
        - structure adherence s -> ``conditioning_scale = s`` (how strongly the control video steers every VACE
          layer; 0 ignores it) and, with motion, the control kind (``choose_control``);
        - motion adherence m -> the start from the source's latents at ``strength = 1 - 0.6 m`` (share of the
          schedule re-generated: 1 = from pure noise); with no explicit m, the mode preset's strength;
        - ``preset: "draft"`` -> 8 steps and guidance on the first half of them only.

    Raises:
        ControlError: an unknown option or a value out of range (all problems in one message).
    """
    opts = dict(request.engine_options)
    unknown = sorted(set(opts) - _OPTIONS)
    problems = []
    if unknown:
        problems.append(f"unknown engine_options {unknown} for wan-vace (known: {', '.join(sorted(_OPTIONS))})")
    controls = request.controls()
    motion, structure = controls.motion_adherence, controls.structure_adherence
    preset = opts.get("preset")
    if preset not in (None, "draft", "final"):
        problems.append(f"engine_options['preset'] must be 'draft' or 'final', got {preset!r}")
    draft = preset == "draft"

    def number(name, default, lo, hi, integer=False):
        v = opts.get(name, default)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi
        if integer:
            ok = ok and float(v).is_integer()
        if not ok:
            problems.append(f"engine_options['{name}'] must be {'an integer' if integer else 'a number'} in "
                            f"{lo}..{hi}, got {v!r}")
            return default
        return int(v) if integer else float(v)

    control = opts.get("control", choose_control(motion, structure))
    if control not in CONTROL_KINDS:
        problems.append(f"engine_options['control'] must be one of {', '.join(CONTROL_KINDS)}, got {control!r}")
    plan = Plan(
        control=control,
        conditioning_scale=number("conditioning_scale", structure, 0.0, 2.0),
        strength=number("strength", controls.strength if request.motion_adherence is None
                        else round(1.0 - 0.6 * motion, 4), 0.0, 1.0),
        steps=number("steps", DRAFT["steps"] if draft else 30, 1, 200, integer=True),
        guidance=number("guidance", 5.0, 0.0, 20.0),
        guidance_steps=number("guidance_steps", DRAFT["guidance_steps"] if draft else 1.0, 0.0, 1.0),
        lock_blend=number("lock_blend", 1.0, 0.0, 1.0),
        keyframe_fade=number("keyframe_fade", 2, 0, 24, integer=True),
        motion_adherence=motion,
        structure_adherence=structure,
        negative_prompt=str(opts.get("negative_prompt", DEFAULT_NEGATIVE)),
        draft=draft,
        post_pass=bool(opts.get("post_pass", True)),
        cache_threshold=number("cache_threshold", DRAFT["cache_threshold"] if draft else 0.0, 0.0, 1.0),
    )
    if not isinstance(opts.get("post_pass", True), bool):
        problems.append(f"engine_options['post_pass'] must be true or false, got {opts['post_pass']!r}")
    if problems:
        raise ControlError("; ".join(problems))
    return plan


# -------------------------------------------------------------------------------------------------- windows

def valid_length(n: int) -> int:
    """The smallest frame count >= n that the model takes (1 + 4k)."""
    return 1 + TEMPORAL * math.ceil(max(n - 1, 0) / TEMPORAL)


def plan_windows(frame_count: int, window: int = 81, overlap: int = 17) -> list[tuple[int, int]]:
    """Windows ``[(start, stop), ...]`` covering ``0..frame_count`` exactly, consecutive ones sharing at least
    ``overlap`` frames; the last one ends at ``frame_count`` (it may share more).

    A clip shorter than one window is one window of its own length (the engine pads it to ``valid_length``).

    Raises:
        ControlError: a window that is not 1 + 4k frames, or an overlap that leaves no new frames.
    """
    if frame_count < 1:
        raise ControlError(f"a clip needs at least one frame, got {frame_count}")
    if window < 5 or (window - 1) % TEMPORAL:
        raise ControlError(f"window must be 1 + 4k frames (5, 9, ..., 81), got {window}")
    if not 1 <= overlap < window - 1:
        raise ControlError(f"overlap must be 1..{window - 2} frames, got {overlap}")
    if frame_count <= window:
        return [(0, frame_count)]
    step = window - overlap
    starts = list(range(0, frame_count - window, step))
    if starts[-1] + window < frame_count:
        starts.append(frame_count - window)
    return [(s, s + window) for s in starts]


def match_colour(frames: np.ndarray, ref: np.ndarray, over: np.ndarray) -> np.ndarray:
    """Frames recoloured so that ``over`` (their frames that show the same moments as ``ref``) matches ``ref``'s
    per-channel mean and spread; the same affine map applies to all of ``frames``. Float arrays in 0..255."""
    mu_a = over.reshape(-1, 3).mean(0)
    sd_a = over.reshape(-1, 3).std(0) + 1e-3
    mu_b = ref.reshape(-1, 3).mean(0)
    sd_b = ref.reshape(-1, 3).std(0) + 1e-3
    gain = np.clip(sd_b / sd_a, 0.5, 2.0)
    return (frames - mu_a) * gain + mu_b


class WindowJoiner:
    """Joins overlapping windows into one stream of exactly ``total`` frames.

    ``add(start, frames)`` takes a window's frames (float 0..255) in order; each window after the first is
    colour-matched to the previous one over their shared frames, then cross-faded linearly across them. It
    returns the frames that are final (everything before the next window can start), so memory stays one window.
    """

    def __init__(self, total: int):
        self.total = total
        self.emitted = 0
        self.pending: np.ndarray | None = None   # frames from self.emitted on, not final yet
        self.pending_start = 0

    def add(self, start: int, frames: np.ndarray, next_start: int | None) -> np.ndarray:
        """Add the window starting at ``start``; ``next_start`` is where the next window begins (None: last).

        Returns:
            Final frames, continuing the stream (possibly none).
        """
        frames = np.asarray(frames, np.float32)
        stop = start + len(frames)
        if self.pending is not None:
            shared = self.pending_start + len(self.pending) - start
            if shared > 0:
                old = self.pending[start - self.pending_start:]
                frames = match_colour(frames, old, frames[:shared])
                w = ((np.arange(shared) + 1) / (shared + 1)).astype(np.float32)[:, None, None, None]
                frames[:shared] = old * (1 - w) + frames[:shared] * w
                head = self.pending[:start - self.pending_start]
            else:
                head = self.pending
            frames = np.concatenate([head, frames])
            start = self.pending_start
        cut = (next_start if next_start is not None else stop) - start
        cut = min(cut, self.total - start)
        done, self.pending = frames[:cut], frames[cut:min(len(frames), self.total - start)]
        self.pending_start = start + cut
        if next_start is None:
            self.pending = None
        self.emitted += len(done)
        return done


# ---------------------------------------------------------------------------------------------------- masks

def polygon_mask(height: int, width: int, polygon: np.ndarray) -> np.ndarray:
    """A (height, width) float32 mask: 1 inside the polygon (pixel coordinates), 0 outside."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    pts = np.round(np.asarray(polygon, np.float64) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32) / 255.0


def box_polygon(box: Sequence[float], grow: float = 1.0) -> np.ndarray | None:
    """``[x0, y0, x1, y1]`` (NaN = none) -> its 4 corners, grown about the centre; None when it is NaN."""
    b = np.asarray(box, np.float64)
    if not np.all(np.isfinite(b)):
        return None
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    hw, hh = (b[2] - b[0]) / 2 * grow, (b[3] - b[1]) / 2 * grow
    return np.array([[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]])


def grow_quad(quad: np.ndarray, grow: float) -> np.ndarray:
    """A quad scaled about its centroid."""
    q = np.asarray(quad, np.float64)
    c = q.mean(0)
    return c + (q - c) * grow


def outpaint_canvas(width: int, height: int, aspect: Fraction) -> tuple[int, int, int, int]:
    """The smallest canvas of the target aspect that holds the whole source, centred.

    Returns:
        (canvas_width, canvas_height, x0, y0): even sizes; the source's top-left corner in the canvas.
    """
    aspect = Fraction(aspect)
    if Fraction(width, height) > aspect:      # target is narrower: extend top and bottom
        cw, ch = width, math.ceil(width / aspect)
    else:                                      # target is wider: extend left and right
        cw, ch = math.ceil(height * aspect), height
    cw += cw % 2
    ch += ch % 2
    return cw, ch, (cw - width) // 2, (ch - height) // 2


def temporal_pool(mask: np.ndarray) -> np.ndarray:
    """Per-frame masks (n, ...) -> per-latent-frame (1 + (n-1)//4, ...): latent 0 is frame 0, latent t>0 the max
    over frames 4t-3..4t."""
    n = len(mask)
    groups = [mask[:1]] + [mask[4 * t - 3:4 * t + 1] for t in range(1, 1 + (n - 1) // TEMPORAL)]
    return np.stack([g.max(0) for g in groups])


def vace_mask(generate: np.ndarray, factor: int = 8) -> np.ndarray:
    """A per-latent-frame generate mask (t, H, W) (1 = generate) -> VACE's mask channels (factor**2, t, H/f, W/f):
    each pixel of a factor x factor block becomes one channel, in the order diffusers' ``prepare_masks`` uses."""
    t, h, w = generate.shape
    if h % factor or w % factor:
        raise ValueError(f"mask size {w}x{h} is not a multiple of {factor}")
    m = generate.reshape(t, h // factor, factor, w // factor, factor).transpose(2, 4, 0, 1, 3)
    return np.ascontiguousarray(m.reshape(factor * factor, t, h // factor, w // factor), dtype=np.float32)


def iter_runs(values: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Sorted ints -> (start, stop) runs of consecutive values."""
    vals = sorted(values)
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        yield vals[i], vals[j] + 1
        i = j + 1
