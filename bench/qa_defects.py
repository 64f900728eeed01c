"""Seeded-defect benchmark of ray32 QA: recall per defect kind, false alarms on clean renders, QA frames/s.

Clean renders: the demo shot's label swapped to each market's label by the composite engine (``ray32.engines``,
the label track from its ``prepare``), passed through an H.264 encode/decode round trip like a delivered draft
(three quality levels: crf 16, 20, 24). Defective copies are made from the decoded clean renders (no second
encode), each with its own random position and size:

* ``wrong_label``  the render of another market, checked against this market's facts;
* ``garbled``      the label's text with one or two characters changed, over a segment of >= 30 frames;
* ``slide``        the label sliding off the product from a random frame, by 12-40 px at the end;
* ``face``         the face replaced by Grace Hopper's (matplotlib's sample photo) over a segment of >= 30 frames;
* ``flicker``      2-4 frames brightened or darkened by 3-8 %;
* ``dropped``      1-2 frames removed (half of the copies keep the frame count by repeating the last frame);
* ``duplicated``   1-2 frames replaced by a copy of the frame before;
* ``colour``       a colour cast (per-channel gains of 4-10 %).

Defects are placed in the middle 80 % of the clip, where the source moves (the demo's camera eases in and out:
a duplicated frame in a still stretch changes nothing a viewer can see). Everything is checked in mode adhere.

Run from the repository root: ``python bench/qa_defects.py [--per-kind 15] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import write_result  # noqa: E402

MARKETS = [("AQUA FRESCA", "500 ml"), ("EAU FRAÎCHE", "50 cl"), ("MEERESBRISE", "0,5 l"), ("ACQUA FRESCA", "500 ml"),
           ("FRISK VAND", "50 cl"), ("AQUA FRESH", "16.9 fl oz"), ("VERSE BRON", "500 ml"), ("AGUA VIVA", "0,5 L")]
KINDS = ["wrong_label", "garbled", "slide", "face", "flicker", "dropped", "duplicated", "colour"]
CRFS = (16, 20, 24)
SAMPLES = 6
WORK = ROOT / "build" / "bench_qa"

log = logging.getLogger("qa_defects")


# ---------------------------------------------------------------------------------------------- clean renders

class Renders:
    """Clean renders by the composite engine, encoded once per (label, crf) and kept on disk in WORK."""

    def __init__(self, work: Path):
        from ray32.demo_shot import load_truth, make_demo_shot
        from ray32.shot import open_shot, read_chunks

        self.work = work
        demo = make_demo_shot(work, name="source")
        self.truth = load_truth(demo.truth_path)
        self.shot = open_shot(demo.path, detect_cuts=False)
        self.src = np.concatenate([c.frames for c in read_chunks(self.shot)])
        self._prepared = None
        self._engine = None
        self.rendered = 0

    def _request(self, lines):
        from PIL import Image

        from ray32.demo_shot import make_label_art
        from ray32.request import RenderRequest

        art = self.work / f"art_{slug(lines)}.png"
        Image.fromarray(make_label_art(lines)).save(art)
        return RenderRequest(label_swap={"artwork": str(art), "text": " ".join(lines),
                                         "corners": self.truth.label_corners[0].tolist(), "frame": 0})

    @property
    def prepared(self):
        if self._prepared is None:
            from ray32.engines import get_engine

            self._engine = get_engine("composite")
            req = self._request(MARKETS[0])
            settings = {**self._engine.prepare_settings(req, self.shot), "cache_dir": str(self.work / "cache")}
            self._prepared = self._engine.prepare(self.shot, settings)
        return self._prepared

    def render(self, lines) -> np.ndarray:
        prepared = self.prepared
        self.rendered += 1
        return np.concatenate(list(self._engine.render(prepared, self._request(lines))))

    def encoded(self, lines, crfs) -> dict:
        from ray32.shot import read_chunks

        out, frames = {}, None
        for crf in crfs:
            path = self.work / f"render_{slug(lines)}_crf{crf}.mp4"
            if not path.exists():
                frames = self.render(lines) if frames is None else frames
                h264_encode(frames, crf, self.truth.fps, path)
            out[(tuple(lines), crf)] = np.concatenate([c.frames for c in read_chunks(path)])
        return out


def slug(lines) -> str:
    import hashlib

    return hashlib.sha1("|".join(lines).encode()).hexdigest()[:10]


def h264_encode(frames: np.ndarray, crf: int, fps: Fraction, path: Path) -> None:
    """Encode with libx264 (like a draft delivery), atomically."""
    import av

    tmp = path.with_name(f".{path.name}.partial.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": str(crf), "preset": "veryfast"}
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------- defects

def garble(lines: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
    """One or two characters of the label changed (substituted or dropped); never the same text again."""
    from qa.ocr import fold_confusables

    letters = "ABCDEFGHIJKLMNOPRSTUVWXYZ0123456789"
    for _ in range(100):
        out = list(lines)
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(len(out)))
            chars = [i for i, ch in enumerate(out[k]) if ch.isalnum()]
            i = int(rng.choice(chars))
            if rng.random() < 0.7:
                out[k] = out[k][:i] + str(rng.choice(list(letters))) + out[k][i + 1:]
            else:
                out[k] = out[k][:i] + out[k][i + 1:]
        if fold_confusables(" ".join(out)) != fold_confusables(" ".join(lines)):
            return tuple(out)
    raise RuntimeError("could not garble")


def segment(n: int, rng, min_len: int = 30) -> tuple[int, int]:
    lo, hi = int(0.1 * n), int(0.9 * n)
    length = int(rng.integers(min_len, max(min_len + 1, hi - lo)))
    start = int(rng.integers(lo, max(lo + 1, hi - length + 1)))
    return start, min(n, start + length)


def slide(frames: np.ndarray, track: np.ndarray, rng) -> np.ndarray:
    """The label (its quad) moves off its place on the product from a random frame on."""
    import cv2

    out = frames.copy()
    n = len(frames)
    start = int(rng.integers(int(0.1 * n), int(0.5 * n)))
    dist = float(rng.uniform(12, 40))
    ang = float(rng.uniform(0, 2 * np.pi))
    for i in range(start, n):
        d = dist * (i - start + 1) / (n - start)
        dx, dy = d * np.cos(ang), d * np.sin(ang)
        f = frames[i]
        mask = np.zeros(f.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, np.round(track[i]).astype(np.int32), 255)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(f, m, f.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        moved_mask = cv2.warpAffine(mask, m, f.shape[1::-1]) > 127
        hole = (mask > 0) & ~moved_mask
        g = cv2.inpaint(f, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA) if hole.any() else f.copy()
        g[moved_mask] = moved[moved_mask]
        out[i] = g
    return out


_HOPPER = None


def hopper_face():
    """Grace Hopper's face crop (matplotlib's sample photo) and its face box inside the crop."""
    global _HOPPER
    if _HOPPER is None:
        import matplotlib.cbook as cbook
        from PIL import Image

        from qa.checks.identity import face_embedding

        img = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
        _, box = face_embedding(img)
        _HOPPER = (img, box)
    return _HOPPER


def face_swap(frames: np.ndarray, boxes: np.ndarray, rng) -> np.ndarray:
    """Grace Hopper's face over the person's face box, feathered, for a segment of the clip."""
    import cv2

    img, (hx0, hy0, hx1, hy1) = hopper_face()
    out = frames.copy()
    a, b = segment(len(frames), rng)
    m = 0.35  # margin around the face box (forehead, chin, cheeks)
    hw, hh = hx1 - hx0, hy1 - hy0
    crop = img[int(max(0, hy0 - m * hh)):int(hy1 + m * hh), int(max(0, hx0 - m * hw)):int(hx1 + m * hw)]
    for i in range(a, b):
        x0, y0, x1, y1 = boxes[i]
        w, h = x1 - x0, y1 - y0
        X0, Y0 = int(round(x0 - m * w)), int(round(y0 - m * h))
        W, H = int(round(w * (1 + 2 * m))), int(round(h * (1 + 2 * m)))
        X0, Y0 = max(0, X0), max(0, Y0)
        W, H = min(W, frames.shape[2] - X0), min(H, frames.shape[1] - Y0)
        patch = cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = np.zeros((H, W), np.float32)
        cv2.ellipse(alpha, (W // 2, H // 2), (int(W * 0.42), int(H * 0.47)), 0, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, W / 30))[..., None]
        region = out[i, Y0:Y0 + H, X0:X0 + W].astype(np.float32)
        out[i, Y0:Y0 + H, X0:X0 + W] = np.clip(region * (1 - alpha) + patch * alpha + 0.5, 0, 255).astype(np.uint8)
    return out


def positions(n: int, rng, count: int) -> list[int]:
    return sorted(rng.choice(np.arange(int(0.1 * n) + 1, int(0.9 * n)), size=count, replace=False).tolist())


def make_defect(kind: str, clean: np.ndarray, rng, ctx: dict) -> tuple[np.ndarray, dict]:
    n = len(clean)
    if kind == "flicker":
        out = clean.copy()
        info = []
        for i in positions(n, rng, int(rng.integers(2, 5))):
            gain = 1 + float(rng.choice([-1, 1])) * float(rng.uniform(0.03, 0.08))
            out[i] = np.clip(out[i].astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
            info.append((i, round(gain, 3)))
        return out, {"frames": info}
    if kind == "dropped":
        drop = positions(n, rng, int(rng.integers(1, 3)))
        out = np.delete(clean, drop, axis=0)
        keep = bool(rng.random() < 0.5)
        if keep:
            out = np.concatenate([out] + [out[-1:]] * len(drop))
        return out, {"frames": drop, "count_kept": keep}
    if kind == "duplicated":
        out = clean.copy()
        dup = positions(n, rng, int(rng.integers(1, 3)))
        for i in dup:
            out[i] = out[i - 1]
        return out, {"frames": dup}
    if kind == "colour":
        gains = 1 + rng.choice([-1, 1], 3) * rng.uniform(0.04, 0.10, 3)
        return np.clip(clean.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8), {"gains": gains.round(3).tolist()}
    if kind == "slide":
        return slide(clean, ctx["track"], rng), {}
    if kind == "face":
        return face_swap(clean, ctx["face_boxes"], rng), {}
    raise ValueError(kind)


# ------------------------------------------------------------------------------------------------- running QA

_STATE: dict = {}


def _init(state):
    _STATE.update(state)
    logging.disable(logging.WARNING)


def run_instance(job: dict) -> dict:
    from PIL import Image

    from qa.facts import Facts
    from qa.metrics import measure_frames

    st = _STATE
    rng = np.random.default_rng(job["seed"])
    market = tuple(job["market"])
    clean = st["encoded"][(market, job["crf"])]
    info: dict = {}
    if job["kind"] == "clean":
        frames = clean
    elif job["kind"] == "wrong_label":
        frames = st["encoded"][(tuple(job["other"]), job["crf"])]
        info = {"rendered": " ".join(job["other"])}
    elif job["kind"] == "garbled":
        a, b = job["segment"]
        frames = clean.copy()
        frames[a:b] = st["encoded"][(tuple(job["garbled"]), job["crf"])][a:b]
        info = {"text": " ".join(job["garbled"]), "segment": [a, b]}
    else:
        frames, info = make_defect(job["kind"], clean, rng, st)
    t1 = time.perf_counter()
    facts = Facts(variant=job["name"], market=job["market_key"], mode="adhere", label={"text": " ".join(market)})
    art = st["art"].setdefault(market, np.asarray(Image.open(st["art_paths"][market]).convert("RGB")))
    qa = measure_frames([st["src"]], [frames], facts, fps=st["fps"], source_count=len(st["src"]),
                        output_count=len(frames), label_track=st["track_map"], artwork=art, samples=SAMPLES,
                        cache=st["cache"])
    t2 = time.perf_counter()
    qa.thumbs = {}
    return {"job": job, "qa": qa, "info": info, "qa_s": t2 - t1}


def measure_speed(src, clean, track, fps, repeats: int = 1) -> dict:
    """QA frames/s (all checks, default samples) at 640x360 and 1920x1080, one process."""
    import cv2

    from ray32.demo_shot import make_label_art
    from qa.facts import Facts
    from qa.metrics import SAMPLES as DEFAULT_SAMPLES
    from qa.metrics import measure_frames

    out = {}
    art = make_label_art(MARKETS[0])
    for name, (w, h) in {"640x360": (640, 360), "1920x1080": (1920, 1080)}.items():
        sx, sy = w / src.shape[2], h / src.shape[1]
        interp = cv2.INTER_AREA if w < src.shape[2] else cv2.INTER_CUBIC
        s = np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in src])
        o = np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in clean])
        tr = {i: (track[i] + 0.5) * [sx, sy] - 0.5 for i in range(len(track))}
        facts = Facts(variant=name, label={"text": " ".join(MARKETS[0])})
        best = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            qa = measure_frames([s], [o], facts, fps=fps, source_count=len(s), output_count=len(o), label_track=tr,
                                artwork=art)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        out[name] = {"frames": len(s), "seconds": round(best, 2), "frames_per_s": round(len(s) / best, 2),
                     "samples_for_ocr_and_faces": DEFAULT_SAMPLES,
                     "clean_verdict_inputs_ok": bool(qa.summary["label_text_match_rate"] == 1.0)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=8, help="seeded instances per defect kind (default 8)")
    ap.add_argument("--clean", type=int, default=16, help="clean instances (markets x encodes, default 16)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-speed", action="store_true", help="skip the frames/s measurement")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/qa_defects.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t_start = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    # 1. Jobs: which market, which defect, which encode.
    jobs = []
    for k in range(args.clean):
        m = MARKETS[k % len(MARKETS)]
        jobs.append({"kind": "clean", "market": m, "crf": CRFS[(k // len(MARKETS)) % len(CRFS)]})
    garbled_labels = []
    for kind in KINDS:
        for k in range(args.per_kind):
            m = MARKETS[k % len(MARKETS)]
            job = {"kind": kind, "market": m, "crf": int(rng.choice(CRFS))}
            if kind == "wrong_label":
                others = [x for x in MARKETS if x != m]
                job["other"] = others[int(rng.integers(len(others)))]
            if kind == "garbled":
                job["garbled"] = garble(m, rng)
                job["segment"] = segment(72, rng)
                garbled_labels.append(job["garbled"])
            jobs.append(job)
    for i, job in enumerate(jobs):
        job["seed"] = int(rng.integers(2**31))
        job["market_key"] = "-".join(job["market"][0].lower().split())
        job["name"] = f"{job['kind']}-{i:03d}-{job['market_key']}"

    # 2. Clean renders (and the garbled labels' renders) with the composite engine, H.264 round trip.
    t0 = time.perf_counter()
    rs = Renders(WORK)
    need: dict = {}
    for j in jobs:
        for key in ("market", "other", "garbled"):
            if key in j:
                need.setdefault(tuple(j[key]), set()).add(j["crf"])
    encoded = {}
    for lines, crfs in need.items():
        encoded.update(rs.encoded(lines, sorted(crfs)))
    t_render = time.perf_counter() - t0
    log.info("%d clean renders (%d rendered now) in %.0f s", len(encoded), rs.rendered, t_render)
    from PIL import Image

    from ray32.demo_shot import make_label_art

    art_paths = {}
    for m in MARKETS:
        p = WORK / f"market_{slug(m)}.png"
        Image.fromarray(make_label_art(m)).save(p)
        art_paths[m] = p
    track = rs.prepared.label_track
    corners = np.asarray(track.corners, float)
    src, truth = rs.src, rs.truth
    state = {"src": src, "encoded": encoded, "track": corners, "track_map": {i: corners[i] for i in range(len(corners))},
             "face_boxes": truth.face_boxes, "fps": truth.fps, "art_paths": art_paths, "art": {}, "cache": {}}

    # 3. QA every instance.
    t0 = time.perf_counter()
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init, initargs=(state,)) as pool:
        results = []
        for k, r in enumerate(pool.imap_unordered(run_instance, jobs, chunksize=1)):
            results.append(r)
            if (k + 1) % 10 == 0:
                log.info("%d/%d checked (%.0f s)", k + 1, len(jobs), time.perf_counter() - t0)
    t_qa = time.perf_counter() - t0
    results.sort(key=lambda r: r["job"]["name"])

    # 4. Verdicts: one Great Expectations validation of the whole table.
    from qa.expectations import verdicts

    v = verdicts([r["qa"] for r in results])
    per_kind: dict = {}
    misses, false_alarms = [], []
    for r in results:
        kind, name = r["job"]["kind"], r["job"]["name"]
        verdict = v[name]
        d = per_kind.setdefault(kind, {"instances": 0, "flagged": 0, "failed_metrics": {}})
        d["instances"] += 1
        d["flagged"] += int(not verdict.passed)
        for m in verdict.failed:
            d["failed_metrics"][m] = d["failed_metrics"].get(m, 0) + 1
        if kind == "clean" and not verdict.passed:
            false_alarms.append({"variant": name, "reasons": verdict.reasons})
        if kind != "clean" and verdict.passed:
            misses.append({"variant": name, "info": r["info"], "job": {k: r["job"][k] for k in ("crf", "seed")},
                           "summary": {k: round(float(x), 4) for k, x in r["qa"].summary.items()
                                       if isinstance(x, (int, float)) and np.isfinite(x)}})
    for kind, d in per_kind.items():
        d["rate"] = round(d["flagged"] / d["instances"], 4)
    recall = {k: per_kind[k]["rate"] for k in KINDS}
    out = {
        "setup": {"source": "demo shot 960x540, 24 fps, 72 frames", "clean_renders": "composite engine label swap, "
                  "8 markets, H.264 round trip (crf 16/20/24, preset veryfast)", "mode": "adhere",
                  "samples_for_ocr_and_faces": SAMPLES, "per_kind": args.per_kind, "clean": args.clean,
                  "workers": args.workers, "seed": args.seed},
        "recall": recall,
        "false_alarm_rate": per_kind["clean"]["rate"],
        "goals": {"recall_min": 0.95, "false_alarms_max": 0.05,
                  "met": bool(all(x >= 0.95 for x in recall.values()) and per_kind["clean"]["rate"] <= 0.05)},
        "per_kind": per_kind,
        "misses": misses,
        "false_alarms": false_alarms,
        "timing_s": {"render": round(t_render, 1), "qa_all_instances": round(t_qa, 1),
                     "qa_per_instance_mean": round(float(np.mean([r["qa_s"] for r in results])), 2)},
    }
    if not args.no_speed:
        out["speed"] = measure_speed(src, encoded[(MARKETS[0], CRFS[0])], corners, truth.fps)
    out["timing_s"]["total"] = round(time.perf_counter() - t_start, 1)
    log.info("recall %s; false alarms %.1f %%", recall, 100 * out["false_alarm_rate"])
    if not args.no_write:
        log.info("wrote %s", write_result("qa_defects", out))
    else:
        import json

        print(json.dumps(out, indent=1, default=str)[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
