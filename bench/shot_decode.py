"""Decode throughput of ray32.shot vs the ffmpeg command-line tool, side by side, and peak RSS.

Both decode the same 1080p H.264 clip (20 s at 24 fps) to full-size RGB24 frames; ffmpeg writes them to
/dev/null, ray32 yields them as chunks (``read_chunks``) and drops them. Each decoder runs in its own process
(alternating, several rounds); time is wall-clock, peak RSS is the process's own maximum resident set.

Goals (issue #2): ray32 within 1.3x of ffmpeg's time; peak RSS while decoding the 20 s 1080p clip <= 600 MB.

Run: ``.venv/bin/python bench/shot_decode.py [--seconds 20] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import write_result  # noqa: E402

CHILD = r"""
import resource, sys, time
sys.path.insert(0, {root!r})
from ray32.shot import open_shot, read_chunks
t0 = time.perf_counter()
shot = open_shot({path!r}, detect_cuts=False)
n = 0
for chunk in read_chunks(shot, chunk_frames=16):
    n += len(chunk.frames)
dt = time.perf_counter() - t0
print(n, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_clip(path: Path, seconds: int) -> None:
    """A 1080p H.264 clip: the demo scene at 2x, looped, with a little grain so frames differ."""
    import av
    import cv2
    import numpy as np

    from ray32.demo_shot import render_frames

    base = [cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_CUBIC) for f, _, _ in render_frames()]
    rng = np.random.default_rng(0)
    fps = Fraction(24)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
        s.options = {"crf": "20", "preset": "veryfast", "g": "48"}
        for i in range(int(seconds * fps)):
            k = i % (2 * len(base) - 2)
            img = base[k if k < len(base) else 2 * len(base) - 2 - k]
            grain = rng.integers(-3, 4, (1080 // 4, 1920 // 4, 1), dtype=np.int16)
            img = np.clip(img.astype(np.int16) + np.kron(grain, np.ones((4, 4, 1), np.int16)), 0, 255)
            f = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def run_child(args: list[str]) -> tuple[float, int, str]:
    """Run a process; return (wall seconds, peak RSS bytes, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args[0]} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss * 1024, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20, help="clip length (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per decoder (default 3)")
    ap.add_argument("--clip", type=Path, help="use this clip instead of generating one")
    ap.add_argument("--make-clip", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_clip:
        make_clip(args.make_clip, args.seconds)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or Path(tmp) / "bench_1080p.mp4"
        if not args.clip:
            print(f"writing a {args.seconds} s 1080p H.264 clip ...", file=sys.stderr)
            # In its own process: the frames it holds must not inflate this process, whose memory a forked
            # child's peak-RSS figure would include.
            subprocess.run([sys.executable, __file__, "--make-clip", str(clip), "--seconds", str(args.seconds)],
                           check=True)
        from ray32.shot import probe

        info = probe(clip)
        ffmpeg = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "rgb24",
                  "-y", "/dev/null"]
        ours = [sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(clip))]
        ff_times, ff_rss, our_times, our_rss, our_inner, our_self_rss = [], [], [], [], [], []
        for r in range(args.rounds):
            wall, rss, _ = run_child(ffmpeg)
            ff_times.append(wall)
            ff_rss.append(rss)
            wall, rss, out = run_child(ours)
            n, inner, self_rss = out.split()
            assert int(n) == info.frame_count, f"ray32 decoded {n} frames, expected {info.frame_count}"
            our_times.append(wall)
            our_rss.append(rss)
            our_inner.append(float(inner))
            our_self_rss.append(int(self_rss) * 1024)
            print(f"round {r + 1}: ffmpeg {ff_times[-1]:.2f} s, ray32 {our_times[-1]:.2f} s "
                  f"(decode loop {float(inner):.2f} s), ray32 peak RSS {rss / 2**20:.0f} MiB", file=sys.stderr)

    ff, us = statistics.median(ff_times), statistics.median(our_times)
    results = {
        "clip": {"width": info.width, "height": info.height, "fps": str(info.fps), "frames": info.frame_count,
                 "seconds": float(info.duration), "codec": info.codec},
        "rounds": args.rounds,
        "ffmpeg_seconds": ff_times,
        "ray32_seconds": our_times,
        "ray32_decode_loop_seconds": our_inner,
        "ffmpeg_fps": info.frame_count / ff,
        "ray32_fps": info.frame_count / us,
        "ratio_ray32_over_ffmpeg": us / ff,
        "goal_ratio": 1.3,
        "ratio_met": us / ff <= 1.3,
        "ray32_peak_rss_mb": max(our_rss) / 1e6,
        "ray32_peak_rss_self_reported_mb": max(our_self_rss) / 1e6,
        "ffmpeg_peak_rss_mb": max(ff_rss) / 1e6,
        "goal_peak_rss_mb": 600,
        "rss_met": max(our_rss) / 1e6 <= 600,
        "note": "wall time of whole processes (ray32's includes Python start-up and imports); medians of rounds",
    }
    path = write_result("shot_decode", results)
    print(f"ratio ray32/ffmpeg = {us / ff:.2f} (goal <= 1.3), ray32 peak RSS = {max(our_rss) / 1e6:.0f} MB "
          f"(goal <= 600) -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
