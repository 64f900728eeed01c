"""Export speed at 1080p: frames/s per format (colour conversion + encode + mux, audio included) and OpenEXR MB/s.

A 48-frame 1920x1080 BT.709 clip with stereo audio is generated, decoded once into memory (so decoding is not
timed), then every format is written on its own from those frames, side by side in one run; finally all five in
one ``export_stream`` pass. Run from the repository root: ``python bench/export.py [--frames 48]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import write_result  # noqa: E402


def make_clip(path: Path, frames: int, fps: Fraction) -> Path:
    """A 1080p clip: the demo's label art and a moving gradient (natural-ish content, not noise)."""
    import av
    import cv2

    from ray32.demo_shot import DEMO_LABEL, make_label_art

    art = cv2.resize(make_label_art(DEMO_LABEL), (800, 400))
    yy, xx = np.mgrid[0:1080, 0:1920].astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
        s.options = {"crf": "16", "preset": "veryfast"}
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(frames):
            img = np.stack([(xx / 1920 * 200 + i * 3) % 256, yy / 1080 * 220, (xx + yy + i * 10) / 3000 * 255],
                           axis=-1).astype(np.uint8)
            x0 = 300 + i * 8
            img[300:700, x0:x0 + 800] = art
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU709",
                                                                          dst_color_range="MPEG")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        total = int(48000 * frames / fps)
        tone = (0.1 * np.sin(np.arange(total) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        for k in range(0, total, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([tone[k:k + 1024]] * 2)), format="fltp",
                                            layout="stereo")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()

    from ray32.export import available_formats, export_stream
    from ray32.shot import open_shot, read_chunks

    fps = Fraction(24)
    work = Path(tempfile.mkdtemp(prefix="ray32-bench-export-"))
    try:
        clip = make_clip(work / "clip1080.mp4", args.frames, fps)
        shot = open_shot(clip, detect_cuts=False)
        frames = np.concatenate([c.frames for c in read_chunks(shot, chunk_frames=16)])
        chunks = [frames[i:i + 16] for i in range(0, len(frames), 16)]
        kw = dict(stem="bench", fps=fps, frame_count=len(frames), width=1920, height=1080, source=shot)
        results = {"frames": len(frames), "size": "1920x1080", "fps": str(fps), "source": "H.264 BT.709 8-bit",
                   "settings": {"draft": "size=source, quality=standard (x264 veryfast crf 23)",
                                "hdr10": "x265 preset fast crf 18, spooled 10-bit then encoded",
                                "hlg": "x265 preset fast crf 18", "prores": "prores_ks 422 HQ",
                                "exr": "ACEScg half, DWAB"},
                   "load_average_1min_at_start": round(os.getloadavg()[0], 2),
                   "formats": {}}
        for fmt in available_formats():
            out = work / fmt
            t = time.perf_counter()
            paths = export_stream([fmt], chunks, out, **kw)
            sec = time.perf_counter() - t
            size = sum(p.stat().st_size for p in (paths[fmt].iterdir() if paths[fmt].is_dir() else [paths[fmt]]))
            row = {"seconds": round(sec, 2), "frames_per_s": round(len(frames) / sec, 2),
                   "output_mb": round(size / 1e6, 1)}
            if fmt == "exr":
                row["mb_per_s_written"] = round(size / 1e6 / sec, 1)
                row["mb_per_s_half_rgb"] = round(len(frames) * 1920 * 1080 * 6 / 1e6 / sec, 1)
            results["formats"][fmt] = row
            print(fmt, row, flush=True)
            shutil.rmtree(out)
        t = time.perf_counter()
        export_stream(available_formats(), chunks, work / "all", **kw)
        sec = time.perf_counter() - t
        results["all_formats_one_pass"] = {"seconds": round(sec, 2), "frames_per_s": round(len(frames) / sec, 2)}
        print("all", results["all_formats_one_pass"])
        results["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
        path = write_result("export", results)
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
