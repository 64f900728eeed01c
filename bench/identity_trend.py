"""The identity check's per-sample distances on clean graded drafts and on gradual face morphs, per lighting preset:
the data the identity trend's estimator and bound were chosen on (``qa/checks/identity.py``).

It renders exactly as ``bench/qa_defects.py`` does (its segments, its composite renders, its morph seeding and its
QA call) and keeps, per variant, the sampled frames' ``identity_distance``, the source's identity noise and the
check's summary. By default only the benchmark's *calibration* clips with a face are run (Megamind.avi frames 2-37,
the demo shot frames 0-23); ``--score`` runs the score half's Megamind segments instead, to report, never to tune.

Run from the repository root: ``python bench/identity_trend.py [--score] [--out FILE]`` (JSON; default a
temporary file, printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import qa_defects as qd  # noqa: E402

MORPH_STARTS = (0.0, 0.125, 0.25)
"""Where the morph starts, as a share of the segment (the benchmark draws it from the first quarter)."""


def run(score: bool) -> list[dict]:
    import qa.metrics

    tmp = Path(tempfile.mkdtemp(prefix="identity_trend_"))
    segs = [s for s in qd.segments(tmp, quick=False)
            if s["face"] and s["half"] == ("score" if score else "calibration")
            and (not score or s["set"] == "real")]
    plan = {}
    for s in segs:
        for preset in qd.PRESETS:
            market = None if s["label"] is None else tuple(qd.MARKETS)[0]
            plan[(s["name"], preset, market)] = [
                {"kind": "face_morph", "instance": k, "start": int(f * s["frames"])}
                for k, f in enumerate(MORPH_STARTS)]
    series: dict = {}
    real = qa.metrics.measure

    def measure(*a, **kw):
        q = real(*a, **kw)
        fr = q.frames
        d = fr["identity_distance"].dropna() if "identity_distance" in fr else fr.iloc[:0, :0]
        series[q.variant] = {"frames": [int(i) for i in d.index], "distance": [float(x) for x in d],
                             "noise": float(q.summary.get("source_identity_noise", float("nan"))),
                             "trend": float(q.summary.get("identity_distance_trend", float("nan"))),
                             "max": float(q.summary.get("identity_distance_max", float("nan")))}
        return q

    qa.metrics.measure = measure
    ctx = {"tmp": tmp, "plan": plan, "presets": qd.PRESETS, "markets": tuple(qd.MARKETS),
           "t0": __import__("time").perf_counter()}
    out = []
    try:
        for s in segs:
            rows, _ = qd.do_segment(s, ctx)
            for r in rows:
                name = f"{s['name']}-{r['preset']}-{r['market']}-{r['kind']}{r.get('instance', '')}"
                out.append({"segment": s["name"], "half": s["half"], "preset": r["preset"], "kind": r["kind"],
                            "start": r.get("start"), "verdict": r["verdict"], "failed": r.get("failed"),
                            **series.get(name, {})})
    finally:
        qa.metrics.measure = real
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--score", action="store_true", help="the score half's Megamind segments (report only)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    rows = run(a.score)
    path = a.out or Path(tempfile.mkstemp(prefix="identity_trend_", suffix=".json")[1])
    path.write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"{r['segment']:18s} {r['preset']:8s} {r['kind']:10s} {str(r['start']):4s} "
              f"trend {r.get('trend', np.nan):6.3f} noise {r.get('noise', np.nan):5.3f} "
              + " ".join(f"{x:.2f}" for x in r.get("distance", [])))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
