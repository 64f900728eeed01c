"""The label's per-frame measures run at about the label's own size in the frame (``measure_size``: a small label
is not enlarged for them), while OCR reads the pair rectified at its own, larger size (``rectified_size``), made
exactly as before: the kept pair and the intended label's first read in the OCR thread are at OCR's size."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

import qa.checks.label as label
from qa.checks.geometry import gray, rectify
from qa.facts import Facts
from qa.metrics import measure_frames
from qa.registry import bounds
from tests.footage_util import LIGHTING
from tests.qa_data import MARKET, build, frames

N = 6
SCALE = 0.6
"""The demo shot made smaller, so its label (about 220 px wide) is about 130 px wide: under OCR's 200 px."""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    import cv2

    d = build(tmp_path_factory.getbasetemp() / "qa_demo")

    def shrink(f):
        return np.stack([cv2.resize(x, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA) for x in f])

    track = {i: (np.asarray(d["track"][i], float) + 0.5) * SCALE - 0.5 for i in range(N)}
    return (shrink(frames(d["source"])[:N]), shrink(frames(d["good"])[:N]), track,
            np.asarray(Image.open(d["artwork"]).convert("RGB")))


def test_measures_at_the_labels_size_and_ocr_reads_at_its_own(small, monkeypatch):
    from qa import ocr

    src, out, track, art = small
    q0 = track[0]
    assert label.measure_size(q0)[0] < 150 < 200 <= label.rectified_size(q0)[0]
    ocr._engine()  # built: the intended label's first read goes to the OCR thread (a campaign worker's case)
    seen: dict = {}
    real_read_texts, real_background = label.read_texts, label.in_background

    def read_texts(reads, rects, *a, **k):
        seen["rects"] = dict(rects)
        return real_read_texts(reads, rects, *a, **k)

    def in_background(fn, *args):
        if args and args[0] is label.read_label:  # the intended label's full read (then the sampled frames')
            seen["first"] = args[-1]
        return real_background(fn, *args)

    monkeypatch.setattr(label, "read_texts", read_texts)
    monkeypatch.setattr(label, "in_background", in_background)
    facts = Facts(variant="t", label={"text": " ".join(MARKET), "track": None}, grade=LIGHTING["golden"])
    q = measure_frames([src], [out], facts, fps=Fraction(24), source_count=N, output_count=N, label_track=track,
                       artwork=art, samples=3, chunk_frames=4, parallel=True)
    rects = seen["rects"]
    assert sorted(rects) == list(range(N))
    for i, (o, r) in rects.items():
        w, h = label.rectified_size(track[i])
        assert o.shape == r.shape == (h, w)
        assert np.array_equal(o, gray(rectify(out[i], track[i], (w, h))))  # OCR's pair as it always was
    first = q.frames["ocr_text"].dropna().index[0]
    assert seen["first"].shape == rects[first][1].shape and np.array_equal(seen["first"], rects[first][1])
    b = bounds("adhere")
    assert q.summary["label_text_wrong_frames"] == 0 and q.summary["label_frames"] == N
    assert q.summary["label_local_diff_max"] <= b["label_local_diff_max"][1]
    assert q.summary["label_similarity_min"] >= b["label_similarity_min"][0]
    assert q.summary["label_drift_max_px"] <= 1.0
