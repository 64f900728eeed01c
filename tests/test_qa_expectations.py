"""Thresholds by mode, campaign overrides, Great Expectations verdicts with human reasons, and facts errors."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from qa.expectations import THRESHOLDS, thresholds_for, verdicts
from qa.facts import Facts, QaError, facts_from_request, load_facts, parse_facts
from qa.metrics import VariantQA, sample_indices

CLEAN = {"label_text_match_rate": 1.0, "label_artwork_similarity_min": 0.98, "label_drift_max_px": 0.7,
         "identity_distance_max": 0.1, "face_lost_frames": 0, "flicker_max": 0.2, "luma_jump_max": 0.05,
         "motion_flow_error_max_px": 0.2, "motion_step_ratio_min": 0.95, "motion_step_ratio_max": 1.05,
         "structure_edge_min": 0.95, "colour_shift_max": 0.0, "clipped_excess_max": 0.0, "crushed_excess_max": 0.0,
         "frame_count_delta": 0, "fps_equal": 1, "keyframe_ssim_min": float("nan")}


def variant(name, mode="adhere", grade=False, overrides=None, frames=None, **summary) -> VariantQA:
    facts = Facts(variant=name, mode=mode, grade=grade, overrides=overrides or {},
                  label={"text": "AQUA FRESH 500ml", "truth": "x.json"})
    return VariantQA(name, facts, {**CLEAN, **summary}, frames if frames is not None else pd.DataFrame(),
                     Fraction(24), 72)


def test_adhere_is_at_least_as_strict_as_flex_and_reimagine():
    for metric, (lo, hi) in THRESHOLDS["adhere"].items():
        for mode in ("flex", "reimagine"):
            lo2, hi2 = THRESHOLDS[mode][metric]
            assert lo is None or lo2 is None or lo2 <= lo, (mode, metric)
            assert hi is None or hi2 is None or hi2 >= hi, (mode, metric)
    assert THRESHOLDS["reimagine"]["structure_edge_min"][0] < THRESHOLDS["adhere"]["structure_edge_min"][0]


def test_overrides_and_grade():
    b = thresholds_for("adhere", {"identity_distance_max": {"max": 0.55}}, grade=True)
    assert b["identity_distance_max"] == (None, 0.55)
    assert "colour_shift_max" not in b
    with pytest.raises(ValueError, match="unknown metric 'identty'"):
        thresholds_for("adhere", {"identty": {"max": 1}})


def test_verdicts_with_reasons_and_timecodes():
    ocr = pd.DataFrame({"ocr_text": ["AQUA FRESH 500ml", "AQUA FRESH 500m"], "text_match": [True, False],
                        "cer": [0.0, 1 / 14]}, index=pd.Index([0, 52], name="frame"))
    flick = pd.DataFrame({"flicker": [0.1, 3.2, 0.2], "luma_jump": [0.0, 4.0, 0.1]}, index=[10, 11, 12])
    results = [
        variant("clean"),
        variant("garbled", frames=ocr, label_text_match_rate=0.5),
        variant("flicker", frames=flick, flicker_max=3.2, luma_jump_max=4.0),
        variant("flicker-reimagine", mode="reimagine", frames=flick, flicker_max=2.0, luma_jump_max=2.0),
        variant("graded", grade=True, colour_shift_max=9.0),
        variant("cast", colour_shift_max=9.0),
        variant("override", identity_distance_max=0.5, overrides={"identity_distance_max": {"max": 0.6}}),
        variant("dropped", frame_count_delta=-1),
    ]
    v = verdicts(results)
    assert {k: x.state for k, x in v.items()} == {
        "clean": "pass", "garbled": "fail", "flicker": "fail", "flicker-reimagine": "pass", "graded": "pass",
        "cast": "fail", "override": "pass", "dropped": "fail"}
    assert v["garbled"].reasons[0].startswith(
        "label read as 'AQUA FRESH 500m' at 00:02.17, expected 'AQUA FRESH 500ml'")
    assert v["garbled"].frames == [52]
    assert any(r.startswith("brightness jumps 4.0 grey levels at 00:00.46") for r in v["flicker"].reasons)
    assert v["cast"].reasons == ["colours shifted by delta E 9.0 against the source (limit 2); "
                                 "set grade if the change is intended"]
    assert v["dropped"].reasons == ["output has 71 frames, the source 72: frames were dropped (1)"]
    assert v["cast"].failed["colour_shift_max"] == {"value": 9.0, "min": None, "max": 2.0}


def test_sample_indices():
    assert sample_indices(72, 5) == [0, 18, 36, 53, 71]
    assert sample_indices(72, 3, extra=[35, 100]) == [0, 35, 36, 71]
    assert sample_indices(2, 9) == [0, 1]


def test_facts_errors_name_every_problem(tmp_path):
    bad = tmp_path / "facts.json"
    bad.write_text(json.dumps({"mode": "wild", "label": {"text": "A", "corners": [[0, 0], [1, 1]]}, "extra": 1}))
    with pytest.raises(QaError) as ex:
        load_facts(bad)
    msg = str(ex.value)
    assert str(bad) in msg and "mode: Input should be 'adhere', 'flex' or 'reimagine'" in msg
    assert "label.corners" in msg and "four [x, y] points" in msg and "extra" in msg
    with pytest.raises(QaError, match=r"overrides: Value error, unknown metric\(s\) \['flicker'\]; known metrics: "):
        parse_facts({"overrides": {"flicker": {"max": 2}}})
    with pytest.raises(QaError, match="flicker_max: give 'min' and/or 'max', got \\['limit'\\]"):
        parse_facts({"overrides": {"flicker_max": {"limit": 2}}})
    with pytest.raises(QaError, match="facts file does not exist"):
        load_facts(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(QaError, match="must hold a JSON object, got list"):
        load_facts(tmp_path / "list.json")


def test_facts_paths_and_request(tmp_path):
    f = tmp_path / "facts.json"
    f.write_text(json.dumps({"variant": "de", "label": {"text": "X", "artwork": "de.png", "truth": "t.json"},
                             "keyframes": [{"time": "1.5", "guide": "g.png"}]}))
    facts = load_facts(f)
    assert facts.label.artwork == tmp_path / "de.png" and facts.keyframes[0].guide == tmp_path / "g.png"
    req = {"mode": "flex", "label_swap": {"artwork": "/a/de.png", "text": "AQUA", "corners": [[0, 0]] * 4,
                                          "frame": 3},
           "locks": [{"kind": "face", "reference": "/a/face.png"}], "keyframes": [{"time": 2, "guide": None}],
           "grade": {"temperature": 5000}}
    facts = facts_from_request(req, variant="de-aqua", overrides={"flicker_max": {"max": 2}})
    assert (facts.mode, facts.label.text, facts.label.frame, str(facts.identity.reference), facts.grade) == \
        ("flex", "AQUA", 3, "/a/face.png", True)
    assert parse_facts({}).mode == "adhere"
    assert np.isnan(float("nan"))
