"""QA checks on real pixels, each run through the one measuring path (``qa.metrics.measure_frames``): the demo
shot, a clean label swap, a wrong market's label, and defects made from them (a duplicated frame, flicker, a
colour cast, Grace Hopper's face) — each check must see its defect and stay quiet on the clean render."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from qa.checks.exposure import colour_shift, hdr_light_levels
from qa.checks.identity import face_embedding, identity_check
from qa.checks.timing import keyframe_check, timing_check
from qa.facts import Facts
from qa.metrics import measure_frames
from qa.ocr import char_error_rate, fold_confusables, normalise_text, read_text
from ray32.demo_shot import make_label_art
from tests.qa_data import MARKET, OTHER, build, frames

EXPECTED = " ".join(MARKET)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = build(tmp_path_factory.getbasetemp() / "qa_demo")
    d["src"], d["out"], d["bad"] = frames(d["source"]), frames(d["good"]), frames(d["wrong"])
    d["art"] = np.asarray(Image.open(d["artwork"]).convert("RGB"))
    return d


def run(src, out, *, label=None, track=None, art=None, samples=3, identity=False, **kw):
    facts = Facts(variant="t", label={"text": label, "track": None} if label else None,
                  identity={"check": identity})
    return measure_frames([src], [out], facts, fps=Fraction(24), source_count=len(src), output_count=len(out),
                          label_track=None if track is None else {i: track[i] for i in range(len(src))},
                          artwork=art, samples=samples, **kw)


def test_text_helpers():
    assert normalise_text(" Aqua  FRESH 500 ml!") == "aquafresh500ml"
    assert char_error_rate("AQUA FRESH 500m", "AQUA FRESH 500ml") == pytest.approx(1 / 14)
    assert char_error_rate("", "AB") == 1.0
    assert fold_confusables("MEERESBRISE 0,51") == fold_confusables("Meeresbrise 0,5 l")   # OCR's l/1
    assert fold_confusables("AQUA FRESH 500m") != fold_confusables("AQUA FRESH 500ml")


def test_ocr_reads_label_art():
    assert read_text(make_label_art(OTHER)).text == "EAU FRAÎCHE 50 cl"


def test_label_check_passes_the_right_market_and_fails_the_wrong_one(data):
    n = 12
    good = run(data["src"][:n], data["out"][:n], label=EXPECTED, track=data["track"], art=data["art"])
    s = good.summary
    assert s["label_text_wrong_frames"] == 0 and s["label_read_frames"] >= 3          # samples (+ any dip)
    assert s["label_frames"] == n and s["label_not_judged_frames"] == 0        # every frame judged
    assert s["label_similarity_min"] > 0.95 and s["label_drift_max_px"] <= 1.5
    assert set(good.frames["ocr_text"].dropna()) == {EXPECTED}
    bad = run(data["src"][:n], data["bad"][:n], label=EXPECTED, track=data["track"], art=data["art"])
    assert bad.summary["label_text_wrong_frames"] >= 3
    assert set(bad.frames["ocr_text"].dropna()) == {"EAU FRAÎCHE 50 cl"}
    assert set(bad.frames["ref_text"].dropna()) == {EXPECTED}                  # OCR of the artwork, same warp
    assert bad.summary["label_similarity_min"] < 0.8


def test_label_check_measures_drift_of_a_moved_label(data):
    import cv2

    n = 6
    out = data["out"][:n].copy()
    out[3] = cv2.warpAffine(out[3], np.float32([[1, 0, 6], [0, 1, 3]]), out[3].shape[1::-1],
                            borderMode=cv2.BORDER_REPLICATE)
    res = run(data["src"][:n], out, label=EXPECTED, track=data["track"], art=data["art"])
    assert res.frames.loc[3, "drift_px"] == pytest.approx(np.hypot(6, 3), abs=1.0)
    assert res.frames.drop(index=3)["drift_px"].max() < 1.0


def test_weak_track_frames_are_not_judged(data):
    n = 6
    track = data["track"][:n].copy()
    track[2:4] = np.nan                                                   # the tracker lost the label there
    res = run(data["src"][:n], data["bad"][:n], label=EXPECTED, track=track, art=data["art"])
    assert res.summary["label_not_judged_frames"] == 2 and res.summary["label_frames"] == 4
    assert not res.frames.loc[2, "label_judged"] and np.isnan(res.frames.loc[2, "label_similarity"])
    assert any("not judged on 2 frame(s)" in n for n in res.notes)


def test_identity_separates_the_astronaut_from_grace_hopper(data):
    import matplotlib.cbook as cbook
    from skimage import data as skdata

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    ast = face_embedding(skdata.astronaut())[0]
    hop = face_embedding(hopper)[0]
    same = face_embedding(data["out"][12])[0]
    assert np.linalg.norm(same - ast) < 0.2           # calibration: the same person, drawn and re-encoded
    assert np.linalg.norm(hop - ast) > 0.6            # a different person
    res = identity_check({0: same, 5: hop, 9: None}, ast)
    assert res.frames.loc[5, "identity_distance"] > 0.6
    assert res.summary["face_lost_frames"] == 1 and bool(res.frames.loc[9, "face_lost"])
    assert res.summary["identity_distance_max"] > 0.6


@pytest.fixture(scope="module")
def small(data):
    import cv2

    def down(a):
        return np.stack([cv2.resize(f, (480, 270), interpolation=cv2.INTER_AREA) for f in a])

    return down(data["src"][:12]), down(data["out"][:12])


def test_motion_sees_a_duplicated_frame(small):
    src, out = small
    dup = out.copy()
    dup[6] = dup[5]
    clean, bad = run(src, out).summary, run(src, dup)
    assert clean["motion_step_ratio_min"] > 0.8
    assert clean["motion_flow_error_max_px"] < 0.4
    assert bad.frames["step_ratio"].idxmin() == 6         # the pair (5, 6) does not move ...
    assert bad.summary["motion_step_ratio_min"] < 0.5     # ... beyond the source's own step noise: under the bound
    assert bad.summary["motion_flow_error_max_px"] > clean["motion_flow_error_max_px"] + 0.2


def test_temporal_sees_flicker(small):
    src, out = small
    flick = out.copy()
    flick[7] = np.clip(flick[7].astype(np.float32) * 1.06, 0, 255).astype(np.uint8)
    clean, bad = run(src, out).summary, run(src, flick)
    assert clean["luma_jump_max"] < 0.5 and clean["flicker_max"] < 0.5
    assert bad.frames["luma_jump"].idxmax() in (7, 8)
    assert bad.summary["luma_jump_max"] > 4


def test_structure_and_exposure(small):
    src, out = small
    assert run(src, out).summary["structure_edge_min"] > 0.9
    assert run(src, out[:, ::-1].copy()).summary["structure_edge_min"] < 0.6
    warm = np.clip(out.astype(np.float32) * [1.08, 1.0, 0.9], 0, 255).astype(np.uint8)
    assert colour_shift(src[0], out[0]) < 0.5
    e = run(src, warm).summary
    assert e["colour_shift_max"] > 3
    assert run(src, out).summary["clipped_excess_max"] < 0.005


def test_timing_and_keyframes(data):
    t = timing_check(24, 24, 23, 24)
    assert t.summary == {"frame_count_delta": -1, "fps_equal": 1, "duration_delta_s": pytest.approx(-1 / 24)}
    k = keyframe_check({5: data["out"][5], 20: data["out"][20]}, {5: data["out"][5], 20: data["out"][0]})
    assert k.frames.loc[5, "keyframe_ssim"] > 0.99
    assert k.frames.loc[20, "keyframe_ssim"] < k.frames.loc[5, "keyframe_ssim"] - 0.1


def test_hdr_light_levels():
    f = np.zeros((2, 4, 4, 3), np.float32)
    f[1, 0, 0] = (12.0, 3.0, 1.0)       # 1200 cd/m² at OCIO's 1.0 = 100 cd/m²
    cll, fall = hdr_light_levels(f)
    assert cll == pytest.approx(1200) and fall == pytest.approx(1200 / 16)


def test_identity_catches_a_gradual_morph_by_its_trend(data):
    """A 35 % morph toward another face, reached gradually: each frame stays under the distance bound, the
    trend over the clip does not."""
    import matplotlib.cbook as cbook
    from skimage import data as skdata

    from qa.registry import bounds

    ast = face_embedding(skdata.astronaut())[0]
    hop = face_embedding(np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")))[0]
    frames = range(0, 96, 6)                                # a face every 6th frame of a 4 s clip
    morph = {i: (1 - 0.35 * i / 90) * ast + 0.35 * i / 90 * hop for i in frames}
    steady = {i: ast + (hop - ast) * 0.05 * ((i // 6) % 2) for i in frames}   # jitter, no drift
    m, s = identity_check(morph, ast).summary, identity_check(steady, ast).summary
    b = bounds("adhere")
    assert m["identity_distance_max"] < b["identity_distance_max"][1]          # the maximum alone misses it
    assert m["identity_distance_trend"] > b["identity_distance_trend"][1]      # the trend catches it
    assert s["identity_distance_trend"] < b["identity_distance_trend"][1] / 2


def test_faces_are_sampled_about_four_times_a_second():
    from qa.checks.identity import face_step

    assert face_step(24) == 6 and face_step(Fraction(30000, 1001)) == 7 and face_step(10) == 2
