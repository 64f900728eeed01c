"""Thresholds by mode, campaign overrides, Great Expectations verdicts with human reasons, and facts errors."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from qa.checks.base import Check, Metric, per_mode
from qa.expectations import thresholds_for, verdicts
from qa.facts import Facts, QaError, facts_from_request, load_facts, parse_facts
from qa.metrics import VariantQA, sample_indices
from qa.registry import CHECKS, METRICS, metric_names, overrides_from_config

CLEAN = {"label_text_wrong_frames": 0, "label_artwork_text_wrong": 0, "label_local_diff_max": 0.1, "label_similarity_min": 0.98, "label_drift_max_px": 0.7, "label_drift_trend_px": 0.1,
         "label_hue_shift_max_deg": 1.0, "label_delta_e_max": 1.0, "label_flicker_max": 0.5,
         "label_drawn_where_lost_frames": 0,
         "identity_distance_max": 0.1, "identity_distance_trend": 0.01, "face_lost_frames": 0, "flicker_max": 0.2,
         "luma_jump_max": 0.05, "motion_flow_error_max_px": 0.2, "motion_step_ratio_min": 0.95,
         "motion_step_ratio_max": 1.05, "structure_edge_min": 0.95, "colour_shift_max": 0.0,
         "clipped_excess_max": 0.0, "crushed_excess_max": 0.0, "frame_count_delta": 0, "fps_equal": 1,
         "keyframe_ssim_min": float("nan"), "max_cll_nits": float("nan"),
         "sync_ratio_max": 0.1}
CLEAN.update({"structure_orientation_min": 0.99, "luma_flicker_max": 0.1, "gross_clipped_max": 0.0,  # generative
              "gross_crushed_max": 0.0, "exposure_blank_frames": 0, "grade_intent_max": 2.0})


def variant(name, mode="adhere", overrides=None, frames=None, **summary) -> VariantQA:
    facts = Facts(variant=name, mode=mode, overrides=overrides or {},
                  label={"text": "AQUA FRESH 500ml", "truth": "x.json"})
    return VariantQA(name, facts, {**CLEAN, **summary}, frames if frames is not None else pd.DataFrame(),
                     Fraction(24), 72)


def test_every_metric_is_declared_once_and_adhere_is_strictest():
    names = [m.name for c in CHECKS for m in c.metrics]
    assert len(names) == len(set(names)) == len(METRICS)
    for name, (_, m) in METRICS.items():
        a, f, r = (m.bound[k] for k in ("adhere", "flex", "reimagine"))
        if m.side == "max":
            assert a <= f <= r, name
        elif m.side == "min":
            assert a >= f >= r, name
    assert set(CLEAN) == set(metric_names())


def test_overrides_and_noise_floor():
    b = thresholds_for("adhere", {"identity_distance_max": {"max": 0.55}})
    assert b["identity_distance_max"] == (None, 0.55)
    with pytest.raises(ValueError, match=r"unknown metric\(s\) 'identty'; valid metrics: clipped_excess_max"):
        thresholds_for("adhere", {"identty": {"max": 1}})
    # a noisy source widens the flicker bound by a quarter of its own warp residual
    assert thresholds_for("adhere", summary={"source_warp_noise": 4.0})["flicker_max"] == (None, 2.0)
    assert thresholds_for("adhere", summary={"source_edge_noise": 0.2})["structure_edge_min"][0] == pytest.approx(0.6)


def test_campaign_qa_keys_are_checked():
    assert overrides_from_config({"label_corner_px": 2, "structure_edge_min": 0.6, "flicker_max": {"max": 3}}) == {
        "label_drift_max_px": {"max": 2.0}, "structure_edge_min": {"min": 0.6}, "flicker_max": {"max": 3.0}}
    with pytest.raises(ValueError) as ex:
        overrides_from_config({"flicker": 0.02, "luma_jump_max": "high"})
    msg = str(ex.value)
    assert "'flicker' names no QA metric" in msg and "'luma_jump_max': give a number" in msg
    assert "Valid metrics: clipped_excess_max, colour_shift_max" in msg


def test_campaign_yaml_with_an_unknown_qa_key_is_refused(tmp_path):
    from campaign_util import copy_demo, edit_yaml, plan_error

    camp = copy_demo(tmp_path / "camp", csv=True)
    edit_yaml(camp, "  label_corner_px: 2.0", "  label_corner_px: 2.0\n  flicker: 0.02")
    _, msg = plan_error(camp)
    assert "key 'qa'" in msg and "'flicker' names no QA metric" in msg and "flicker_max" in msg


def test_a_new_check_is_one_declaration():
    with pytest.raises(ValueError, match="needs a bound for each of"):
        Check("x", frozenset({"clip"}), (Metric("m", "max", {"adhere": 1}),), finish=lambda t, c: None)
    with pytest.raises(ValueError, match="needs a measure function"):
        Check("x", frozenset({"frames"}), (Metric("m", "max", per_mode(1)),), finish=lambda t, c: None)


def test_verdicts_with_reasons_and_timecodes():
    ocr = pd.DataFrame({"ocr_text": ["AQUA FRESH 500ml", "AQUA FRESH 500m"], "ref_text": ["AQUA FRESH 500ml"] * 2,
                        "text_match": [True, False]}, index=pd.Index([0, 52], name="frame"))
    flick = pd.DataFrame({"flicker": [0.1, 3.2, 0.2], "luma_jump": [0.0, 4.0, 0.1]}, index=[10, 11, 12])
    results = [
        variant("clean"),
        variant("garbled", frames=ocr, label_text_wrong_frames=1),
        variant("flicker", frames=flick, flicker_max=3.2, luma_jump_max=4.0),
        variant("flicker-reimagine", mode="reimagine", frames=flick, flicker_max=2.0, luma_jump_max=2.0),
        variant("cast", colour_shift_max=9.0),
        variant("override", identity_distance_max=0.5, overrides={"identity_distance_max": {"max": 0.6}}),
        variant("dropped", frame_count_delta=-1),
        variant("noface", identity_distance_max=float("nan")),           # not judged: neither fails nor passes
    ]
    v = verdicts(results)
    assert {k: x.state for k, x in v.items()} == {
        "clean": "pass", "garbled": "fail", "flicker": "fail", "flicker-reimagine": "pass", "cast": "fail",
        "override": "pass", "dropped": "fail", "noface": "pass"}
    assert v["garbled"].reasons[0].startswith(
        "label read as 'AQUA FRESH 500m' at 00:02.17 where the market artwork reads 'AQUA FRESH 500ml'")
    assert v["garbled"].frames == [52]
    assert any(r.startswith("brightness jumps 4.0 grey levels at 00:00.46") for r in v["flicker"].reasons)
    assert v["cast"].reasons == ["colours shifted by delta E 9.0 against the intended picture (limit 2)"]
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
    with pytest.raises(QaError, match=r"overrides: Value error, unknown QA metric\(s\) 'flicker'; valid metrics: "):
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
        ("flex", "AQUA", 3, "/a/face.png", {"temperature": 5000})
    with pytest.raises(QaError, match="give the intended grade itself"):
        parse_facts({"grade": True})
    assert parse_facts({}).mode == "adhere"
    assert np.isnan(float("nan"))


def test_label_frame_means_what_it_means_in_a_render_request():
    from ray32.request import RenderRequest

    from qa.metrics import label_frame

    fps = Fraction(24)
    for given, frame in ((12, 12), ("12", 12), ("0.5s", 12), ("00:00:00:12", 12), ("12f", 12)):
        facts = parse_facts({"label": {"text": "A", "corners": [[0, 0], [1, 0], [1, 1], [0, 1]], "frame": given}})
        req = RenderRequest.model_validate({"label_swap": {"artwork": "a.png", "text": "A", "frame": given,
                                                           "corners": [[0, 0], [1, 0], [1, 1], [0, 1]]}})
        assert label_frame(facts, fps, 72) == req.resolve_label_frame(fps, 72) == frame, given
    with pytest.raises(QaError, match="label.frame 99 is outside the shot"):
        label_frame(parse_facts({"label": {"text": "A", "corners": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                           "frame": "99"}}), fps, 72)


def test_not_judged_lists_what_could_not_be_measured_not_what_does_not_apply():
    """A label's metrics apply only to a variant with a label, the keyframe metric only with guide images, MaxCLL
    only to an HDR output (the hdr check leaves it out of an SDR output's summary): the report's "not judged"
    line lists only metrics that applied and could not be measured (no face in the source)."""
    from qa.expectations import not_judged, variant_bounds

    nan = float("nan")
    summary = {k: v for k, v in CLEAN.items() if k != "max_cll_nits"}
    summary.update({k: nan for k in summary if k.startswith("label_")}, identity_distance_max=nan,
                   identity_distance_trend=nan)
    plain = VariantQA("plain", Facts(variant="plain"), summary, pd.DataFrame(), Fraction(24), 72)
    assert not_judged(plain) == ["identity_distance_max", "identity_distance_trend"]
    assert not any(k.startswith("label_") for k in variant_bounds(plain)) and "keyframe_ssim_min" not in variant_bounds(plain)
    labelled = VariantQA("l", Facts(variant="l", label={"text": "AQUA", "truth": "x.json"},
                                    keyframes=[{"time": 0.5, "guide": "g.png"}]), summary, pd.DataFrame(),
                         Fraction(24), 72)
    off = VariantQA("off", Facts(variant="off", identity={"check": False}), summary, pd.DataFrame(), Fraction(24), 72)
    assert not_judged(off) == []                        # identity switched off in the facts: does not apply
    nj = not_judged(labelled)
    assert "label_similarity_min" in nj and "keyframe_ssim_min" in nj      # they apply here and were not measured
    # verdicts: a label metric failing on a variant without a label is not its failure
    v = verdicts([VariantQA("p2", Facts(variant="p2"), {**summary, "label_similarity_min": 0.1}, pd.DataFrame(),
                            Fraction(24), 72)])["p2"]
    assert "label_similarity_min" not in v.failed
