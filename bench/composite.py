"""Benchmark of the composite engine: frames per second at 640x360 and 1080p, and peak memory for a 20 s 1080p
source next to a 5 s one (memory must not grow with clip length).

Sources are made from the demo shot: scaled, played forward then backward (no cut) and looped to the length.
Each case runs in its own subprocess, which reports its own peak RSS (``ru_maxrss``): prepare (label tracking +
faces, no cache) and then the render of a label swap + keyframed relight, consumed as a stream (not exported).

Run: ``/work/main/.venv/bin/python bench/composite.py`` (writes ``bench/results/composite.json``).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORK = ROOT / "build" / "bench_composite"
CASES = [  # (name, width, height, seconds)
    ("640x360_5s", 640, 360, 5),
    ("1080p_5s", 1920, 1080, 5),
    ("1080p_20s", 1920, 1080, 20),
]


def make_source(width: int, height: int, seconds: int) -> tuple[Path, Path]:
    """The demo shot scaled to ``width`` x ``height``, ping-ponged and looped to ``seconds``; and its truth."""
    from ray32.demo_shot import make_demo_shot

    demo = make_demo_shot(WORK / "demo")
    out = WORK / f"src_{width}x{height}_{seconds}s.mp4"
    if not out.exists():
        tmp = out.with_name(f".{out.name}.partial.mp4")
        graph = (f"[0:v]split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1:a=0,loop=loop=-1:size=144,"
                 f"setpts=N/24/TB,scale={width}:{height}:flags=area,format=yuv420p[v]")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(demo.path), "-filter_complex", graph, "-map", "[v]",
                        "-frames:v", str(seconds * 24), "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-r", "24",
                        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", str(tmp)],
                       check=True)
        tmp.replace(out)
    return out, demo.truth_path


def run_case(source: str, truth: str, scale: float) -> dict:
    """In the child: prepare + render, timed; returns numbers and this process's peak RSS."""
    import numpy as np
    from PIL import Image

    from ray32.demo_shot import load_truth, make_label_art
    from ray32.engines import get_engine
    from ray32.request import RenderRequest
    from ray32.shot import open_shot

    t = load_truth(truth)
    corners = (t.label_corners[0] + 0.5) * scale - 0.5
    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "art.png"
        Image.fromarray(make_label_art(("MEERESBRISE", "0,5 l"))).save(art)
        shot = open_shot(source, detect_cuts=False)
        req = RenderRequest(
            label_swap={"artwork": str(art), "text": "MEERESBRISE", "corners": corners.tolist(), "frame": 0},
            grade={"exposure": 0.2, "keyframes": [{"time": 0, "temperature": 6500},
                                                  {"time": f"{shot.frame_count - 1}f", "temperature": 3400}]})
        engine = get_engine("composite")
        t0 = time.perf_counter()
        prepared = engine.prepare(shot, {**engine.prepare_settings(req, shot), "cache_dir": tmp})
        t_prep = time.perf_counter() - t0
        rss_after_prepare = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        n = 0
        for chunk in engine.render(prepared, req):
            n += len(chunk)
        t_render = time.perf_counter() - t0
        track_ok = float(np.mean(prepared.label_track.valid))
    return {"frames": n, "width": shot.width, "height": shot.height, "seconds": float(shot.duration),
            "prepare_s": round(t_prep, 2), "prepare_fps": round(n / t_prep, 2),
            "render_s": round(t_render, 2), "render_fps": round(n / t_render, 2),
            "label_track_valid_share": round(track_ok, 3),
            "peak_rss_mb_after_prepare": round(rss_after_prepare, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    from bench.machine import write_result

    WORK.mkdir(parents=True, exist_ok=True)
    results = {"what": "composite engine: label swap + keyframed relight (grade through OCIO), decode included, "
                       "frames consumed as a stream (no export); prepare = label tracking + face detection "
                       "without cache; each case in its own subprocess (peak RSS = its ru_maxrss)",
               "cases": {}}
    for name, w, h, seconds in CASES:
        src, truth = make_source(w, h, seconds)
        cmd = [sys.executable, __file__, "--case", str(src), str(truth), str(w / 960)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"case {name} failed:\n{out.stderr}")
        results["cases"][name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results["cases"][name], flush=True)
    c = results["cases"]
    results["rss_20s_over_5s_1080p"] = round(c["1080p_20s"]["peak_rss_mb"] / c["1080p_5s"]["peak_rss_mb"], 3)
    results["render_fps_640x360_over_1080p"] = round(c["640x360_5s"]["render_fps"] / c["1080p_5s"]["render_fps"], 2)
    results["goal_peak_rss_mb_1080p_20s"] = 1536
    results["goal_met"] = c["1080p_20s"]["peak_rss_mb"] <= 1536 and results["rss_20s_over_5s_1080p"] < 1.15
    path = write_result("composite", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        print(json.dumps(run_case(sys.argv[2], sys.argv[3], float(sys.argv[4]))))
    else:
        main()
