"""A deterministic synthetic source shot with ground truth, for the demo campaign and the tests.

The scene: a wall and a table; a person (the astronaut photo that ships with scikit-image) on the left; a
product with a flat, readable label on the right that slides and tilts a little; a camera that pushes in and
pans. Every frame's ground truth is known exactly because the scene is drawn from its geometry:

* ``label_corners[i]``: the label's four corners in frame ``i`` (top-left, top-right, bottom-right,
  bottom-left; pixel centres at integer coordinates, as OpenCV uses them);
* ``face_boxes[i]``: the face box ``[x0, y0, x1, y1]`` in frame ``i``.

Example:
    >>> demo = make_demo_shot("build/demo")      # doctest: +SKIP
    >>> truth = load_truth(demo.truth_path)      # doctest: +SKIP
    >>> truth.label_corners.shape                # (frames, 4, 2)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

DEMO_LABEL = ("AQUA FRESH", "500 ml")
"""The label text the source shot carries (the 'original market')."""

WIDTH, HEIGHT = 960, 540
FPS = Fraction(24)
SECONDS = 3
# The product sprite (body + label), in its own pixel coordinates. The bottle is tall and its label sits high in the
# frame (rows 195..299 of 540 on frame 0) and is no wider than a 9:16 crop's safe width allows: a full-height 9:16
# crop (meta-reels: clear of the top 14 %, the bottom 35 % and 6 % each side) can keep the label clear of the Reels
# interface all through the push-in (the crop moves sideways only), with room to spare for the tracker's error.
PRODUCT_SIZE = (260, 390)           # width, height
LABEL_BOX = (35, 105, 225, 209)     # x0, y0, x1, y1 (exclusive) inside the sprite
PRODUCT_ANCHOR = (690, 480)         # world position of the sprite's bottom centre at t=0
# The person: a crop of skimage's astronaut photo, and dlib's face box in that photo.
PERSON_CROP = (90, 0, 350, 330)     # x0, y0, x1, y1 in the 512x512 photo
PHOTO_FACE = (175, 76, 265, 166)    # x0, y0, x1, y1 in the photo
PERSON_AT = (110, 160)              # world position of the crop's top-left
MARGIN = 140                        # world canvas reaches this far beyond the first frame


@dataclass(frozen=True)
class DemoShot:
    path: Path
    truth_path: Path


@dataclass(frozen=True)
class GroundTruth:
    fps: Fraction
    width: int
    height: int
    label_text: tuple[str, ...]
    label_corners: np.ndarray   # (frames, 4, 2) float64
    face_boxes: np.ndarray      # (frames, 4) float64
    label_box: tuple[int, int, int, int]

    @property
    def frame_count(self) -> int:
        return len(self.label_corners)


# ------------------------------------------------------------------------------------------------ drawing

@lru_cache(maxsize=8)
def _font_path(bold: bool = True) -> str:
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


def make_label_art(lines: tuple[str, ...] | list[str] | str, size: tuple[int, int] = (440, 240),
                   background=(246, 241, 226), ink=(18, 58, 138), accent=(222, 92, 40)) -> np.ndarray:
    """Label artwork (RGB uint8, ``size`` = width, height): text lines centred, a band and a border.

    Uses DejaVu Sans Bold (ships with matplotlib), which covers accented Latin text.
    """
    from PIL import Image, ImageDraw, ImageFont

    if isinstance(lines, str):
        lines = tuple(part.strip() for part in lines.split("\n") if part.strip()) or (lines,)
    w, h = size
    img = Image.new("RGB", (w, h), tuple(background))
    draw = ImageDraw.Draw(img)
    border = max(2, w // 60)
    draw.rectangle([border, border, w - 1 - border, h - 1 - border], outline=tuple(ink), width=border)
    band_h = h // 9
    draw.rectangle([border * 2, h - band_h - border * 3, w - 1 - border * 2, h - border * 3], fill=tuple(accent))
    usable_h = h - band_h - border * 8
    sizes = [0.46, 0.30] + [0.26] * 8
    fonts = []
    for k, line in enumerate(lines):
        fs = int(usable_h * sizes[min(k, len(sizes) - 1)])
        font = ImageFont.truetype(_font_path(True), fs)
        while font.getlength(line) > w * 0.86 and fs > 8:
            fs -= 2
            font = ImageFont.truetype(_font_path(True), fs)
        fonts.append(font)
    heights = [f.getbbox(line)[3] - f.getbbox(line)[1] for f, line in zip(fonts, lines)]
    gap = usable_h * 0.08
    total = sum(heights) + gap * (len(lines) - 1)
    y = border * 4 + (usable_h - total) / 2
    for font, line, lh in zip(fonts, lines, heights):
        top = font.getbbox(line)[1]
        draw.text(((w - font.getlength(line)) / 2, y - top), line, font=font, fill=tuple(ink))
        y += lh + gap
    return np.asarray(img, dtype=np.uint8).copy()


def _background(rng: np.random.Generator) -> np.ndarray:
    """The static world: wall, posters, table. Size (HEIGHT + 2*MARGIN, WIDTH + 2*MARGIN, 3) float32."""
    import cv2

    h, w = HEIGHT + 2 * MARGIN, WIDTH + 2 * MARGIN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wall = np.stack([196 - 30 * yy / h + 8 * xx / w, 186 - 26 * yy / h, 170 - 20 * yy / h + 6 * xx / w], -1)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3) * 18
    fine = rng.normal(0, 3.0, (h, w)).astype(np.float32)
    img = wall + (noise + fine)[..., None]
    # Posters on the wall: textured rectangles that give tracking and flow something to hold.
    for (x0, y0, x1, y1, col) in [(MARGIN + 420, MARGIN + 40, MARGIN + 560, MARGIN + 230, (90, 120, 150)),
                                   (MARGIN + 820, MARGIN + 60, MARGIN + 940, MARGIN + 200, (150, 100, 80)),
                                   (MARGIN - 100, MARGIN + 30, MARGIN + 60, MARGIN + 150, (110, 140, 100))]:
        patch = rng.normal(0, 1, (y1 - y0, x1 - x0)).astype(np.float32)
        patch = cv2.GaussianBlur(patch, (0, 0), 6) * 60
        img[y0:y1, x0:x1] = np.asarray(col, np.float32) + patch[..., None]
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (40, 40, 40), 3)
    # Table: a wood-like band below the horizon.
    top = MARGIN + 430
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h - top, w)).astype(np.float32), (0, 0), sigmaX=25, sigmaY=1.5)
    wood = np.stack([120 + 40 * grain, 82 + 28 * grain, 52 + 18 * grain], -1)
    img[top:] = wood
    img[top:top + 4] = (70, 50, 35)
    return np.clip(img, 0, 255)


def _person() -> np.ndarray:
    from skimage import data

    x0, y0, x1, y1 = PERSON_CROP
    return data.astronaut()[y0:y1, x0:x1].astype(np.float32)


def _product_sprite(label_art: np.ndarray) -> np.ndarray:
    """RGBA float32 sprite of the product: a rounded body, cylindrical shading, the label, a highlight."""
    import cv2

    w, h = PRODUCT_SIZE
    rgba = np.zeros((h, w, 4), np.float32)
    body = np.zeros((h, w), np.uint8)
    cv2.rectangle(body, (14, 40), (w - 15, h - 1), 255, -1)
    cv2.ellipse(body, (w // 2, 44), (w // 2 - 14, 30), 0, 180, 360, 255, -1)
    cv2.rectangle(body, (w // 2 - 40, 0), (w // 2 + 40, 30), 255, -1)  # cap
    rgba[..., :3] = (44, 120, 168)
    rgba[:32, :, :3] = (200, 200, 205)
    lx0, ly0, lx1, ly1 = LABEL_BOX
    rgba[ly0:ly1, lx0:lx1, :3] = cv2.resize(label_art, (lx1 - lx0, ly1 - ly0), interpolation=cv2.INTER_AREA)
    # Cylindrical shading across the width and a soft specular stripe: the "source's shading" a swap must keep.
    x = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
    shade = 0.80 + 0.22 * np.sqrt(np.clip(1 - x ** 2, 0, 1))
    highlight = 38 * np.exp(-((x + 0.45) / 0.07) ** 2)
    rgba[..., :3] = rgba[..., :3] * shade[None, :, None] + highlight[None, :, None]
    rgba[..., 3] = cv2.GaussianBlur(body.astype(np.float32) / 255, (0, 0), 0.7)
    rgba[..., :3] = np.clip(rgba[..., :3], 0, 255)
    return rgba


def _ease(t: float) -> float:
    return t * t * (3 - 2 * t)


def _camera(t: float) -> np.ndarray:
    """World -> frame, 3x3: push in from 1.0 to 1.14 and pan right/down."""
    e = _ease(t)
    s = 1.0 + 0.14 * e
    cx, cy = WIDTH / 2 + 45 * e, HEIGHT / 2 + 14 * e
    return np.array([[s, 0, WIDTH / 2 - s * cx], [0, s, HEIGHT / 2 - s * cy], [0, 0, 1]], np.float64)


def _product_motion(t: float) -> np.ndarray:
    """Sprite -> world, 3x3: slide left and tilt about the bottom centre."""
    w, h = PRODUCT_SIZE
    angle = np.deg2rad(5.0 * np.sin(np.pi * t))
    ax, ay = PRODUCT_ANCHOR[0] - 48 * _ease(t), PRODUCT_ANCHOR[1]
    c, s = np.cos(angle), np.sin(angle)
    to_anchor = np.array([[1, 0, -w / 2], [0, 1, -h], [0, 0, 1]], np.float64)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)
    place = np.array([[1, 0, ax], [0, 1, ay], [0, 0, 1]], np.float64)
    return place @ rot @ to_anchor


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ m.T
    return p[:, :2] / p[:, 2:3]


def label_quad_in_sprite() -> np.ndarray:
    """The label's corners in sprite pixel-centre coordinates (edges of the label's pixels)."""
    x0, y0, x1, y1 = LABEL_BOX
    return np.array([[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y0 - 0.5], [x1 - 0.5, y1 - 0.5], [x0 - 0.5, y1 - 0.5]])


def render_frames(label_lines=DEMO_LABEL, *, seconds: int = SECONDS, fps: Fraction = FPS, seed: int = 7):
    """Yield ``(frame_rgb_uint8, label_corners(4,2), face_box(4))`` for every frame of the demo shot."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = _background(rng)
    person = _person()
    px, py = PERSON_AT
    bg[MARGIN + py:MARGIN + py + person.shape[0], MARGIN + px:MARGIN + px + person.shape[1]] = person
    sprite = _product_sprite(make_label_art(label_lines))
    sh, sw = sprite.shape[:2]
    quad = label_quad_in_sprite()
    fx0, fy0, fx1, fy1 = PHOTO_FACE
    cx0, cy0 = PERSON_AT[0] - PERSON_CROP[0], PERSON_AT[1] - PERSON_CROP[1]
    face_world = np.array([[fx0 + cx0, fy0 + cy0], [fx1 + cx0, fy1 + cy0]], np.float64)
    margin_shift = np.array([[1, 0, -MARGIN], [0, 1, -MARGIN], [0, 0, 1]], np.float64)  # canvas -> world
    n = int(seconds * fps)
    for i in range(n):
        t = i / max(1, n - 1)
        cam = _camera(t)
        frame = cv2.warpAffine(bg, (cam @ margin_shift)[:2], (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        m = cam @ _product_motion(t)
        layer = cv2.warpAffine(sprite, m[:2], (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        # Blend where the sprite can be (its warped outline plus the bilinear fringe); alpha is exactly 0 elsewhere,
        # where the blend would leave the background as it is.
        box = _apply(m, np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64))
        x0, y0 = np.maximum(np.floor(box.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(box.max(axis=0)).astype(int) + 3, [WIDTH, HEIGHT])
        if x1 > x0 and y1 > y0:
            roi, lay = frame[y0:y1, x0:x1], layer[y0:y1, x0:x1]
            a = lay[..., 3:4]
            frame[y0:y1, x0:x1] = roi * (1 - a) + lay[..., :3] * a
        frame = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        corners = _apply(m, quad)
        fb = _apply(cam, face_world)
        yield frame, corners, np.array([fb[0, 0], fb[0, 1], fb[1, 0], fb[1, 1]])


DEMO_VERSION = 2
"""Bump when ``render_frames`` draws different pixels: existing demo shots are then made again."""


def make_demo_shot(out_dir: str | os.PathLike, *, name: str = "demo_shot", label_lines=DEMO_LABEL,
                   seconds: int = SECONDS, fps: Fraction = FPS, audio: bool = True, seed: int = 7,
                   overwrite: bool = False) -> DemoShot:
    """Write the demo shot (H.264 MP4, BT.709, with a stereo AAC tone) and its ground truth JSON.

    Deterministic: the same arguments give the same pixels and the same ground truth. An existing pair made
    with the same arguments whose video still has the content recorded in the truth file (its sha256) is reused
    unless ``overwrite``; anything else is written again.

    Returns:
        ``DemoShot(path, truth_path)``.
    """
    import av

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.mp4"
    truth_path = out_dir / f"{name}.truth.json"
    params = {"label_lines": list(label_lines), "seconds": seconds, "fps": str(fps), "audio": audio, "seed": seed,
              "size": [WIDTH, HEIGHT], "version": DEMO_VERSION}
    if not overwrite and _reusable(path, truth_path, params):
        return DemoShot(path, truth_path)
    tmp = path.with_name(f".{path.name}.partial.mp4")
    corners_all, faces_all = [], []
    with av.open(str(tmp), "w") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.options = {"crf": "14", "preset": "medium", "g": "48"}
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        vs.time_base = Fraction(1) / fps
        if audio:
            sample_rate = 48000
            aus = container.add_stream("aac", rate=sample_rate)
            aus.layout = "stereo"
        for i, (img, corners, face) in enumerate(render_frames(label_lines, seconds=seconds, fps=fps, seed=seed)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            frame.pts = i
            for packet in vs.encode(frame):
                container.mux(packet)
            corners_all.append(corners.tolist())
            faces_all.append(face.tolist())
        for packet in vs.encode():
            container.mux(packet)
        if audio:
            total = int(seconds * sample_rate)
            t = np.arange(total) / sample_rate
            tone = (0.12 * np.sin(2 * np.pi * 440 * t) * np.minimum(1, t * 20)).astype(np.float32)
            stereo = np.stack([tone, tone * 0.8])
            step = 1024
            for k in range(0, total, step):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, k:k + step]), format="fltp",
                                                layout="stereo")
                af.sample_rate = sample_rate
                af.pts = k
                for packet in aus.encode(af):
                    container.mux(packet)
            for packet in aus.encode():
                container.mux(packet)
    truth = {
        "fps": str(fps), "width": WIDTH, "height": HEIGHT, "frame_count": len(corners_all),
        "label_text": list(label_lines), "label_box_in_sprite": list(LABEL_BOX),
        "coordinates": "pixel centres at integer coordinates (OpenCV); corners tl, tr, br, bl",
        "label_corners": corners_all, "face_boxes": faces_all,
        "made_with": params, "video_sha256": _sha256(tmp), "video_size": tmp.stat().st_size,
    }
    tmp_truth = truth_path.with_name(f".{truth_path.name}.partial")
    tmp_truth.write_text(json.dumps(truth))
    os.replace(tmp, path)
    os.replace(tmp_truth, truth_path)
    return DemoShot(path, truth_path)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reusable(path: Path, truth_path: Path, params: dict) -> bool:
    """True when ``path`` is the demo shot these ``params`` make (recorded in its truth file), unchanged."""
    try:
        truth = json.loads(truth_path.read_text())
        return (truth.get("made_with") == params and path.stat().st_size == truth.get("video_size")
                and _sha256(path) == truth.get("video_sha256"))
    except (OSError, ValueError):
        return False


def load_truth(path: str | os.PathLike) -> GroundTruth:
    d = json.loads(Path(path).read_text())
    return GroundTruth(fps=Fraction(d["fps"]), width=d["width"], height=d["height"],
                       label_text=tuple(d["label_text"]), label_corners=np.asarray(d["label_corners"], float),
                       face_boxes=np.asarray(d["face_boxes"], float), label_box=tuple(d["label_box_in_sprite"]))
