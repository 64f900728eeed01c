"""QA checks on real pixels: the demo shot, a clean label swap, a wrong market's label, and defects made from
them (a duplicated frame, flicker, a colour cast, Grace Hopper's face) — each check must see its defect and stay
quiet on the clean render."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qa.checks.exposure import colour_shift, exposure_check, hdr_light_levels
from qa.checks.identity import face_embedding, identity_check
from qa.checks.label import label_check
from qa.checks.motion import dis_flows, motion_check
from qa.checks.structure import structure_check
from qa.checks.temporal import temporal_check
from qa.checks.timing import keyframe_check, timing_check
from qa.ocr import char_error_rate, fold_confusables, normalise_text, read_text
from ray32.demo_shot import make_label_art
from tests.qa_data import MARKET, OTHER, build, frames

EXPECTED = " ".join(MARKET)
SAMPLED = [0, 11, 23]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = build(tmp_path_factory.getbasetemp() / "qa_demo")
    d["src"], d["out"], d["bad"] = frames(d["source"]), frames(d["good"]), frames(d["wrong"])
    return d


def test_text_helpers():
    assert normalise_text(" Aqua  FRESH 500 ml!") == "aquafresh500ml"
    assert char_error_rate("AQUA FRESH 500m", "AQUA FRESH 500ml") == pytest.approx(1 / 14)
    assert char_error_rate("", "AB") == 1.0
    assert fold_confusables("MEERESBRISE 0,51") == fold_confusables("Meeresbrise 0,5 l")   # OCR's l/1
    assert fold_confusables("AQUA FRESH 500m") != fold_confusables("AQUA FRESH 500ml")


def test_ocr_reads_label_art():
    assert read_text(make_label_art(OTHER)).text == "EAU FRAÎCHE 50 cl"


def test_label_check_passes_the_right_market_and_fails_the_wrong_one(data):
    corners = {i: data["track"][i] for i in SAMPLED}
    art = np.asarray(Image.open(data["artwork"]).convert("RGB"))
    good = label_check({i: data["out"][i] for i in SAMPLED}, corners, EXPECTED, art)
    assert good.summary["label_text_match_rate"] == 1.0
    assert list(good.frames["ocr_text"]) == [EXPECTED] * 3
    assert good.summary["label_artwork_similarity_min"] > 0.95
    assert good.summary["label_drift_max_px"] <= 1.5
    bad = label_check({i: data["bad"][i] for i in SAMPLED}, corners, EXPECTED, art)
    assert bad.summary["label_text_match_rate"] == 0.0
    assert set(bad.frames["ocr_text"]) == {"EAU FRAÎCHE 50 cl"}
    assert bad.summary["label_artwork_similarity_min"] < 0.8


def test_label_check_measures_drift_of_a_sliding_label(data):
    import cv2

    i = 12
    frame = data["out"][i].copy()
    shifted = cv2.warpAffine(frame, np.float32([[1, 0, 14], [0, 1, 6]]), frame.shape[1::-1])
    art = np.asarray(Image.open(data["artwork"]).convert("RGB"))
    res = label_check({i: shifted}, {i: data["track"][i]}, EXPECTED, art)
    assert res.frames.loc[i, "drift_px"] == pytest.approx(np.hypot(14, 6), abs=1.5)


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


def _steps(a):
    return np.array([np.abs(a[k + 1].astype(np.float32) - a[k]).mean() for k in range(len(a) - 1)])


def test_motion_sees_a_duplicated_frame(small):
    src, out = small
    dup = out.copy()
    dup[6] = dup[5]
    sf = dis_flows(src)
    clean = motion_check(sf, dis_flows(out), _steps(src), _steps(out))
    bad = motion_check(sf, dis_flows(dup), _steps(src), _steps(dup))
    assert clean.summary["motion_step_ratio_min"] > 0.8
    assert clean.summary["motion_flow_error_max_px"] < 0.4
    assert bad.frames.loc[6, "step_ratio"] < 0.05       # the pair (5, 6) does not move
    assert bad.summary["motion_flow_error_max_px"] > clean.summary["motion_flow_error_max_px"] + 0.2


def test_temporal_sees_flicker(small):
    src, out = small
    flick = out.copy()
    flick[7] = np.clip(flick[7].astype(np.float32) * 1.06, 0, 255).astype(np.uint8)
    sf = dis_flows(src)
    clean = temporal_check(src, out, sf, dis_flows(out))
    bad = temporal_check(src, flick, sf, dis_flows(flick))
    assert clean.summary["luma_jump_max"] < 0.5 and clean.summary["flicker_max"] < 0.5
    assert bad.frames["luma_jump"].idxmax() in (7, 8)
    assert bad.summary["luma_jump_max"] > 4


def test_structure_and_exposure(small):
    src, out = small
    s = structure_check(src, out)
    assert s.summary["structure_edge_min"] > 0.9
    flipped = structure_check(src, out[:, ::-1].copy())
    assert flipped.summary["structure_edge_min"] < 0.6
    warm = np.clip(out.astype(np.float32) * [1.08, 1.0, 0.9], 0, 255).astype(np.uint8)
    assert colour_shift(src[0], out[0]) < 0.5
    e = exposure_check(src, warm)
    assert e.summary["colour_shift_max"] > 3
    assert exposure_check(src, out).summary["clipped_excess_max"] < 0.005


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
