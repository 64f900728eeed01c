"""bench/qa_defects.py's plan: enough seeded instances per kind for a 95 % recall to mean something, every
parameter inside the issue's ranges, calibration and score on disjoint segments; and its Wilson interval."""

from __future__ import annotations

import numpy as np
import pytest

from bench.qa_defects import KINDS, MARKETS, PER_KIND, PRESETS, plan_defects, wilson


def segs():
    out = []
    for set_name, half, start, n, label, face in (
            ("synthetic", "calibration", 0, 24, True, True), ("synthetic", "score", 24, 24, True, True),
            ("synthetic", "score", 48, 24, True, True), ("real", "calibration", 0, 24, True, False),
            ("real", "score", 0, 24, True, False), ("real", "score", 120, 24, True, False),
            ("real", "score", 98, 36, False, True)):
        out.append({"set": set_name, "half": half, "name": f"{set_name}-{half}@{start}", "start": start,
                    "frames": n, "label": [[0, 0], [1, 0], [1, 1], [0, 1]] if label else None, "face": face})
    return out


def test_the_plan_seeds_twenty_of_each_kind_in_range_on_score_segments_only():
    s = segs()
    plan = plan_defects(s, PRESETS, tuple(MARKETS), PER_KIND, np.random.default_rng(11))
    by_name = {x["name"]: x for x in s}
    count = {k: 0 for k in KINDS}
    for (name, preset, market), insts in plan.items():
        seg = by_name[name]
        assert seg["half"] == "score" and preset in PRESETS
        for p in insts:
            count[p["kind"]] += 1
            n = seg["frames"]
            if p["kind"] == "face_morph":
                assert seg["face"] and 0 <= p["start"] <= n // 4
                continue
            assert seg["label"] is not None and market in MARKETS
            if p["kind"] == "misplaced":
                assert 5 <= p["px"] <= 8
            elif p["kind"] == "product_cast":
                assert 10 <= abs(p["hue_deg"]) <= 15
            elif p["kind"] == "wrong_segment":
                assert 6 <= p["length"] <= 12 and 1 <= p["start"] and p["start"] + p["length"] < n
            elif p["kind"] == "sliding":
                assert 0 <= p["start"] <= n // 4
            elif p["kind"] == "label_flicker":
                assert 0.10 <= abs(p["gain"] - 1) <= 0.15 and p["frame"] + 1 < n
            elif p["kind"] == "one_letter":
                word = MARKETS[market][0][0]
                assert len(p["text"]) == len(word) and sum(a != b for a, b in zip(p["text"], word)) == 1
    assert all(c >= 20 for c in count.values()), count


def test_wilson_interval():
    assert wilson(0, 50) == pytest.approx([0.0, 0.0714], abs=1e-4)
    lo, hi = wilson(19, 20)
    assert lo == pytest.approx(0.7639, abs=1e-3) and hi == pytest.approx(0.9911, abs=1e-3)
