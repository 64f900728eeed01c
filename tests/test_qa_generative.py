"""QA of a generative engine's variant: judged on grade-invariant measures against the source.

A model re-renders every pixel, so a right variant differs from any pixel reference. These tests make
"generative-like" variants on the CPU without weights by transforming a real clip (the first 24 frames of
tests/data/footage/cup.mp4 at 320x240): a strong grade QA is not told about (a tone curve and a hue rotation)
plus a re-render's fresh noise and softness. That clean variant must pass when the facts say it came from
wan-vace, and fail when the same pixels are judged against the pixel reference (the composite engine's way), so
the switch is proven to matter. Defects seeded into it must fail on the grade-invariant measures: a changed
layout, a 2-frame brightness flicker, frozen frames, wrong motion, blank frames, and a look that is not the
intended grade's.
"""

from __future__ import annotations

import numpy as np
import pytest

from footage_util import CUP, LIGHTING
from qa.expectations import verdicts
from qa.facts import QaError, judging, parse_facts
from qa.metrics import Reference, measure_frames

N = 24
SIZE = (320, 240)


def _source():
    import cv2

    from ray32.shot import open_shot, read_chunks

    shot = open_shot(CUP, end=f"{N}f", detect_cuts=False)
    frames = np.concatenate([c.frames for c in read_chunks(shot)])[:N]
    return shot.fps, np.stack([cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in frames])


def untold_grade(frame: np.ndarray) -> np.ndarray:
    """A strong look the facts do not mention: a darkening, contrasty tone curve and a 50° hue rotation."""
    import cv2

    x = (frame.astype(np.float32) / 255.0) ** 1.3
    x = np.clip(0.5 + (x - 0.5) * 1.2, 0, 1)
    hsv = cv2.cvtColor((x * 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + 25) % 180
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def night(frame: np.ndarray) -> np.ndarray:
    """A much darker look the facts do not mention: a quarter of the light, a lifted black."""
    return np.clip(frame.astype(np.float32) * 0.25 + 3, 0, 255).astype(np.uint8)


def resynthesise(frame: np.ndarray, i: int) -> np.ndarray:
    """What a model's re-render does to every pixel: a little softness and fresh noise on every frame."""
    import cv2

    g = cv2.GaussianBlur(frame, (0, 0), 0.8).astype(np.float32)
    g += np.random.default_rng(i).normal(0, 3, g.shape)
    return np.clip(g, 0, 255).astype(np.uint8)


def moved(v: np.ndarray) -> np.ndarray:
    """A changed layout: the region around the cup drawn 40 px to the right from frame 8 on."""
    v = v.copy()
    for i in range(8, N):
        v[i, 100:200, 160:260] = v[i, 100:200, 120:220].copy()
    return v


def flickered(v: np.ndarray) -> np.ndarray:
    """Frames 10 and 11 10% brighter."""
    v = v.copy()
    v[10:12] = np.clip(v[10:12].astype(np.float32) * 1.10, 0, 255).astype(np.uint8)
    return v


def frozen(v: np.ndarray) -> np.ndarray:
    """Frames 8-13 all show frame 8."""
    v = v.copy()
    v[8:14] = v[8]
    return v


def reversed_motion(v: np.ndarray) -> np.ndarray:
    """Frames 8-15 play backwards: every frame is a right frame, the motion is wrong."""
    v = v.copy()
    v[8:16] = v[8:16][::-1]
    return v


def blanked(v: np.ndarray) -> np.ndarray:
    """Frames 5 and 6 black: a model's typical failure, never a grade's."""
    v = v.copy()
    v[5:7] = 4
    return v


def facts(name: str, engine: str | None, grade: dict | None = None):
    return parse_facts({"variant": name, "engine": engine, "grade": grade})


@pytest.fixture(scope="module")
def judged():
    fps, src = _source()
    clean = np.stack([resynthesise(untold_grade(f), i) for i, f in enumerate(src)])
    golden = Reference(facts("g", None, LIGHTING["golden"]), None, fps, N)
    graded = np.stack([resynthesise(golden(i, f, None), i) for i, f in enumerate(src)])  # golden, re-rendered
    dark = np.stack([resynthesise(night(f), i) for i, f in enumerate(src)])
    runs = {"clean": (clean, "wan-vace", None), "clean-as-composite": (clean, "composite", None),
            "night": (dark, "wan-vace", None),
            "moved": (moved(clean), "wan-vace", None), "flicker": (flickered(clean), "wan-vace", None),
            "frozen": (frozen(clean), "wan-vace", None), "reversed": (reversed_motion(clean), "wan-vace", None),
            "blank": (blanked(clean), "wan-vace", None),
            "golden-as-golden": (graded, "wan-vace", LIGHTING["golden"]),
            "golden-as-neon": (graded, "wan-vace", LIGHTING["neon"])}
    cache: dict = {}
    results = {name: measure_frames([src], [out], facts(name, engine, grade), fps=fps, source_count=N,
                                    output_count=N, cache=cache)
               for name, (out, engine, grade) in runs.items()}
    return results, verdicts(list(results.values()))


def test_judging_is_decided_once_from_the_engine():
    assert judging(parse_facts({"engine": "wan-vace"})).grade_invariant
    assert judging(parse_facts({"engine": "wan-vace", "mode": "reimagine"})).grade_invariant
    assert not judging(parse_facts({"engine": "composite"})).grade_invariant
    assert not judging(parse_facts({})).grade_invariant                    # no engine named: as before
    with pytest.raises(QaError, match="unknown engine 'sora'.*composite, wan-vace"):
        parse_facts({"engine": "sora"})


def test_clean_generative_variant_passes_and_the_pixel_reference_would_fail_it(judged):
    results, v = judged
    q = results["clean"]
    assert v["clean"].passed, v["clean"].reasons
    assert q.judged_against["reference"].startswith("grade-invariant measures against the source (generative "
                                                    "engine wan-vace")
    assert "grade-invariant" in q.judged_against["structure"]
    s = q.summary
    assert s["structure_orientation_min"] > 0.9          # the layout is the source's under the untold grade
    assert s["luma_flicker_max"] < 0.5 and s["exposure_blank_frames"] == 0
    assert np.isnan(s["structure_edge_min"]) and np.isnan(s["colour_shift_max"])   # pixel metrics not judged
    # the same pixels judged against the pixel reference (the composite engine's way) fail: the switch matters
    c = v["clean-as-composite"]
    assert not c.passed
    assert "colour_shift_max" in c.failed and results["clean-as-composite"].summary["colour_shift_max"] > 5
    assert results["clean-as-composite"].judged_against["reference"] == "the source"
    # a far darker untold look, where the re-render's noise is large against the picture, passes too
    assert v["night"].passed, v["night"].reasons
    assert results["night"].summary["structure_orientation_min"] > 0.9


def test_changed_layout_fails(judged):
    results, v = judged
    assert "structure_orientation_min" in v["moved"].failed, v["moved"].reasons
    assert results["moved"].summary["structure_orientation_min"] < 0.3
    assert any("layout departs" in r for r in v["moved"].reasons)


def test_two_frame_brightness_flicker_fails_at_its_frames(judged):
    results, v = judged
    assert "luma_flicker_max" in v["flicker"].failed, v["flicker"].reasons
    worst = results["flicker"].frames["luma_flicker"].idxmax()
    assert worst in (10, 11)
    assert any("00:00.3" in r or "00:00.4" in r for r in v["flicker"].reasons if "flicker" in r)


def test_frozen_frames_fail(judged):
    _, v = judged
    assert "motion_step_ratio_min" in v["frozen"].failed, v["frozen"].reasons


def test_wrong_motion_fails(judged):
    _, v = judged
    assert "motion_flow_error_max_px" in v["reversed"].failed, v["reversed"].reasons


def test_blank_frames_fail(judged):
    results, v = judged
    assert "exposure_blank_frames" in v["blank"].failed and results["blank"].summary["exposure_blank_frames"] == 2


def test_the_look_is_judged_against_the_intended_grade(judged):
    results, v = judged
    assert v["golden-as-golden"].passed, v["golden-as-golden"].reasons
    assert "grade_intent_max" in v["golden-as-neon"].failed, v["golden-as-neon"].reasons
    assert results["golden-as-golden"].summary["grade_intent_max"] < 5
    assert np.isnan(results["clean"].summary["grade_intent_max"])       # no grade in the facts: not judged


def test_a_real_wan_vace_render_record_is_judged_on_grade_invariant_measures(tmp_path):
    """The wiring from a real render: the tiny random-weight wan-vace renders a clip through the one render path,
    which writes its render record; ``ray32 qa --facts <record>`` reads the engine from it and judges the variant
    on grade-invariant measures (its pictures are noise: only the wiring is checked, not the verdict)."""
    from test_engine_wan_vace import STEPS, make_clip

    from qa.facts import load_facts
    from qa.metrics import measure
    from ray32.engines.tiny_models import build_pipeline
    from ray32.engines.wan_vace import WanVaceEngine
    from ray32.render import render_to_files
    from ray32.request import RenderRequest
    from ray32.shot import open_shot

    shot = open_shot(make_clip(tmp_path / "clip.mp4", 9), detect_cuts=False)
    eng = WanVaceEngine(pipeline=build_pipeline("tiny", seed=0), max_side=32, window=9, overlap=5)
    request = RenderRequest(prompt="a bottle", engine_options=STEPS, grade=LIGHTING["golden"], outputs=["draft"])
    out = render_to_files(shot, request, engine=eng, out_dir=tmp_path / "out", stem="v", write_request=True,
                          cache_dir=tmp_path / "cache")
    record = tmp_path / "out" / "v.request.json"
    f = load_facts(record)
    assert f.engine == "wan-vace" and f.variant == "v" and f.grade["temperature"] == 3800
    q = measure(shot, out.paths["draft"], f, samples=1)
    assert q.judged_against["reference"].startswith("grade-invariant measures against the source (generative engine "
                                                    "wan-vace")
    assert not np.isnan(q.summary["structure_orientation_min"]) and np.isnan(q.summary["structure_edge_min"])
    assert not np.isnan(q.summary["grade_intent_max"])        # the record's grade is the intent


def test_ray32_qa_reads_the_render_record_beside_the_output(tmp_path, capsys):
    """``ray32 qa`` without --facts finds the render record that lists the output and judges by its engine."""
    import json

    from footage_util import open_trim

    from flows.cli import main
    from ray32.export import export_stream

    shot = open_trim(frames=12)
    fps, src = _source()
    out = np.stack([resynthesise(untold_grade(f), i) for i, f in enumerate(src[:12])])
    paths = export_stream(["draft"], iter([out]), tmp_path, stem="v", fps=shot.fps, frame_count=12, width=SIZE[0],
                          height=SIZE[1], source=shot)
    (tmp_path / "v.request.json").write_text(json.dumps(
        {"source": str(CUP), "engine": "wan-vace", "request": {"prompt": "a cup"},
         "outputs": {"draft": str(paths["draft"])}}))
    small = tmp_path / "src.mp4"
    export_stream(["draft"], iter([src[:12]]), tmp_path, stem="src", fps=shot.fps, frame_count=12, width=SIZE[0],
                  height=SIZE[1], source=shot)["draft"].rename(small)
    code = main(["qa", str(small), str(paths["draft"]), "--out", str(tmp_path / "qa"), "--samples", "1"])
    printed = capsys.readouterr().out
    assert "facts: from the render record" in printed
    verdict = json.loads((tmp_path / "qa" / "verdict.json").read_text())
    assert verdict["judged_against"]["reference"].startswith("grade-invariant measures against the source")
    assert code == 0, verdict["reasons"]                  # the untold grade passes as a generative variant


def test_the_report_says_how_a_generative_variant_was_judged(judged, tmp_path):
    from qa.report import write_report

    results, v = judged
    html = write_report([results["clean"], results["flicker"]], v, tmp_path).read_text(encoding="utf-8")
    assert "judged against grade-invariant measures against the source (generative engine wan-vace" in html
    assert "structure_orientation_min" in html and "luma_flicker_max" in html
    assert "structure_edge_min" not in html and "colour_shift_max" not in html   # not this variant's measures
    assert "<svg" in html                                                        # the flicker plot
    assert "brightness jumps" in html                                            # the flicker's reason
