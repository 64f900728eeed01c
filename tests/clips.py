"""Clips written by PyAV for the tests: every frame carries its own index as a barcode, so a test can read back
which source frame it got, through compression, scaling and rotation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

BITS = 10


def code_frame(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame: the top half is a 10-bit barcode of ``index`` (white = 1), the bottom half a pattern that is
    not symmetric (so rotation is visible): a red corner block at the bottom-left."""
    img = np.full((height, width, 3), 40, np.uint8)
    bw = width // BITS
    for b in range(BITS):
        if index >> b & 1:
            img[: height // 2, b * bw:(b + 1) * bw] = 235
    img[height * 3 // 4:, : width // 4] = (220, 30, 30)
    return img


def read_code(frame: np.ndarray) -> int:
    """The index a ``code_frame`` carries (frame in upright orientation, any size)."""
    h, w = frame.shape[:2]
    bw = w / BITS
    top = frame[: h // 2].astype(np.float32).mean(axis=2)
    value = 0
    for b in range(BITS):
        x0, x1 = int(b * bw + bw * 0.3), int((b + 1) * bw - bw * 0.3)
        if top[h // 8: h * 3 // 8, x0:x1].mean() > 137:
            value |= 1 << b
    return value


def write_clip(path: Path, *, frames: int = 24, width: int = 160, height: int = 96, fps: Fraction = Fraction(24),
               codec: str = "libx264", pix_fmt: str = "yuv420p", pts: list[int] | None = None,
               time_base: Fraction | None = None, rotation: int = 0, color: tuple[int, int, int] | None = None,
               audio: bool = False, options: dict | None = None, images=None, faststart: bool = False) -> Path:
    """Write a test clip. ``pts`` (in ``time_base``) makes a variable-rate clip; ``color`` = (primaries, trc, space)
    FFmpeg enum values; ``images`` overrides the barcode frames (an iterable of RGB arrays)."""
    import av

    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            s.codec_context.time_base = time_base
            s.time_base = time_base
        opts = {"g": "12"}
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        opts.update(options or {})
        s.options = opts
        if color:
            cc = s.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace = color
            cc.color_range = 1
        if rotation:
            s.set_display_rotation(rotation)
        if audio:
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
        images = images if images is not None else (code_frame(i, width, height) for i in range(frames))
        for i, img in enumerate(images):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if color and color[2] == 1:  # tagged BT.709: convert with the BT.709 matrix, limited range
                f = f.reformat(format=pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
            else:
                f = f.reformat(format=pix_fmt)
            f.pts = pts[i] if pts is not None else i
            if pts is not None and time_base is not None:
                f.time_base = time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if audio:
            total = int(48000 * frames / fps)
            tone = (0.1 * np.sin(np.arange(total) * 2 * np.pi * 440 / 48000)).astype(np.float32)
            for k in range(0, total, 1024):
                block = np.ascontiguousarray(np.stack([tone[k:k + 1024]] * 2))
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                af.sample_rate = 48000
                af.pts = k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path
