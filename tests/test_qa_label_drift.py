"""The label's slow slide (issue 11: "a label sliding 1 px per 10 frames"): on real footage (cup.mp4, its first
24 frames, hand-held) the label moves only 2.3 px in the whole trim, under the per-frame drift bound, so only
the drift trend (a robust line through the per-frame position error, ``qa.checks.label.drift_trend``) can see
it; a clean render of the same trim must pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from footage_util import CUP_FRAMES, artwork, facts_for, open_trim, render, request, shift_region
from qa.checks.label import drift_trend, theil_sen
from qa.expectations import verdicts
from qa.metrics import measure
from qa.registry import bounds

TEXT = "AQUA\n0,5 l"


def test_theil_sen_ignores_outliers():
    x = np.arange(20.0)
    y = 0.1 * x + 2.0
    y[[3, 11]] = [9.0, -7.0]                               # two misread frames
    slope, icpt = theil_sen(x, y)
    assert slope == pytest.approx(0.1, abs=1e-9) and icpt == pytest.approx(2.0, abs=1e-9)


def test_drift_trend_measures_the_travel_of_a_straight_slide():
    idx = pd.Index(range(24), name="frame")
    slide = pd.DataFrame({"drift_dx_px": -0.1 * np.arange(24), "drift_dy_px": 0.05 * np.arange(24)}, index=idx)
    travel, fitted = drift_trend(slide)
    assert travel == pytest.approx(np.hypot(0.1, 0.05) * 23)
    assert fitted.idxmax() == 23
    rng = np.random.default_rng(0)
    jitter = pd.DataFrame(rng.normal(0, 0.3, (24, 2)), index=idx, columns=["drift_dx_px", "drift_dy_px"])
    assert drift_trend(jitter)[0] < 0.5
    assert np.isnan(drift_trend(slide.iloc[:5])[0])        # too few judged frames: not judged


@pytest.fixture(scope="module")
def cup_slide(tmp_path_factory):
    root = tmp_path_factory.mktemp("cup_slide")
    shot = open_trim()
    art = artwork(root, ("AQUA", "0,5 l"), "right")
    req = request(art, TEXT)
    cache: dict = {}
    out = {}
    clean, prep = render(shot, req, root, "clean", cache_dir=root / "cache")
    out["clean"] = measure(shot, clean, facts_for(req, "clean"), label_track=prep.label_track, samples=2,
                           cache=cache)
    track = prep.label_track.corners
    slid, _ = render(shot, req, root, "slide", cache_dir=root / "cache",   # 1 px per 10 frames, up and left
                     tamper=lambda i, f: shift_region(f, track[i], -round(i / 10), -round(i / 10)))
    out["slide"] = measure(shot, slid, facts_for(req, "slide"), label_track=prep.label_track, samples=2,
                           cache=cache)
    return out, verdicts(list(out.values()))


def test_a_slow_slide_on_a_real_clip_fails_by_its_trend_and_a_clean_render_passes(cup_slide):
    results, v = cup_slide
    b = bounds("adhere")
    clean, slide = results["clean"], results["slide"]
    assert v[clean.variant].passed, v[clean.variant].reasons
    assert clean.summary["label_drift_trend_px"] < b["label_drift_trend_px"][1] / 2
    assert slide.summary["label_frames"] >= CUP_FRAMES // 2
    # the slide alone: every frame's offset under the per-frame bound, the trend over it
    assert slide.summary["label_drift_max_px"] < b["label_drift_max_px"][1]
    assert slide.summary["label_drift_trend_px"] > b["label_drift_trend_px"][1]
    assert not v[slide.variant].passed
    assert any("slides slowly" in r for r in v[slide.variant].reasons), v[slide.variant].reasons

