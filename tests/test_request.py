"""The render request: validation, mode presets, frame-exact time resolution and its errors; the engine registry."""

from fractions import Fraction

import pytest
from pydantic import ValidationError

from ray32.engines import EngineError, available_engines, get_engine
from ray32.request import PRESETS, RenderRequest, RequestError

FPS = Fraction(24)


def test_keyframe_times_resolve_to_exact_frames_in_every_form():
    req = RenderRequest(prompt="p", keyframes=[
        {"time": "2.5", "prompt": "a"}, {"time": "00:00:01:12", "prompt": "b"}, {"time": "10f", "guide": "g.png"},
        {"time": 0.5, "prompt": "c"}, {"time": "00:02.75", "prompt": "d"}])
    frames = [k.frame for k in req.resolve_keyframes(FPS, 72)]
    assert frames == [10, 12, 36, 60, 66]  # sorted by frame


def test_ntsc_rate_keyframe_is_exact():
    req = RenderRequest(keyframes=[{"time": "2.5", "prompt": "a"}])
    # 2.5 s at 24000/1001 fps = 59.94 frames -> frame 60, computed in fractions (no float rounding).
    assert req.resolve_keyframes(Fraction(24000, 1001), 100)[0].frame == 60


def test_out_of_range_keyframe_is_an_error_that_names_it():
    req = RenderRequest(keyframes=[{"time": "1", "prompt": "a"}, {"time": "3", "prompt": "b"}])
    with pytest.raises(RequestError, match=r"keyframe 2 at '3' is frame 72, outside the shot \(frames 0..71"):
        req.resolve_keyframes(FPS, 72)


def test_duplicate_keyframes_are_an_error():
    req = RenderRequest(keyframes=[{"time": "1", "prompt": "a"}, {"time": "24f", "prompt": "b"}])
    with pytest.raises(RequestError, match=r"keyframe 2 at '24f' lands on frame 24, the same frame as keyframe 1"):
        req.resolve_keyframes(FPS, 72)


def test_unreadable_time_is_an_error():
    req = RenderRequest(keyframes=[{"time": "soon", "prompt": "a"}])
    with pytest.raises(RequestError, match=r"keyframe 1: cannot read 'soon' as a time"):
        req.resolve_keyframes(FPS, 72)


def test_grade_keys_fill_from_base_and_check_range():
    req = RenderRequest(grade={"exposure": 0.5, "keyframes": [{"time": "2s", "temperature": 3200},
                                                              {"time": 0, "temperature": 6500}]})
    keys = req.resolve_grade_keys(FPS, 72)
    assert [f for f, _ in keys] == [0, 48]
    assert keys[1][1]["temperature"] == 3200 and keys[1][1]["exposure"] == 0.5
    bad = RenderRequest(grade={"keyframes": [{"time": "5", "exposure": 1}]})
    with pytest.raises(RequestError, match="grade key 1 at '5' is frame 120, outside the shot"):
        bad.resolve_grade_keys(FPS, 72)


def test_label_frame_forms():
    def req(frame):
        return RenderRequest(label_swap={"artwork": "a.png", "text": "X", "frame": frame,
                                         "corners": [[0, 0], [10, 0], [10, 5], [0, 5]]})
    assert req(12).resolve_label_frame(FPS, 72) == 12
    assert req("12").resolve_label_frame(FPS, 72) == 12
    assert req("0.5s").resolve_label_frame(FPS, 72) == 12
    with pytest.raises(RequestError, match=r"label_swap.frame 80 is outside the shot's frames 0..71"):
        req(80).resolve_label_frame(FPS, 72)


def test_unknown_fields_and_bad_values_are_rejected():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RenderRequest(promt="typo")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        RenderRequest(motion_adherence=1.5)
    with pytest.raises(ValidationError, match="corners must be 4 points"):
        RenderRequest(label_swap={"artwork": "a.png", "text": "X", "corners": [[0, 0], [1, 1]]})
    with pytest.raises(ValidationError, match="neither a guide image nor a prompt"):
        RenderRequest(keyframes=[{"time": 1}])
    with pytest.raises(ValidationError, match="lut must be a .cube file"):
        RenderRequest(grade={"lut": "look.png"})
    with pytest.raises(ValidationError, match="'region' lock needs a polygon"):
        RenderRequest(locks=[{"kind": "region"}])
    with pytest.raises(ValidationError, match="Input should be '9:16'"):
        RenderRequest(reframe={"aspect": "3:2"})
    req = RenderRequest()
    with pytest.raises(ValidationError, match="frozen"):
        req.seed = 3


def test_mode_presets_and_explicit_values_win():
    assert RenderRequest(mode="reimagine").controls() == PRESETS["reimagine"]
    c = RenderRequest(mode="reimagine", motion_adherence=0.95, engine_options={"strength": 0.3}).controls()
    assert (c.motion_adherence, c.structure_adherence, c.strength) == (0.95, PRESETS["reimagine"].structure_adherence, 0.3)
    assert PRESETS["adhere"].structure_adherence > PRESETS["flex"].structure_adherence > \
        PRESETS["reimagine"].structure_adherence


def test_relative_paths_resolve_and_json_is_canonical(tmp_path):
    req = RenderRequest(label_swap={"artwork": "art/de.png", "text": "X", "corners": [[0, 0], [1, 0], [1, 1], [0, 1]]},
                        grade={"lut": "/abs/look.cube"})
    out = req.resolve_paths(tmp_path)
    assert out.label_swap.artwork == tmp_path / "art/de.png"
    assert str(out.grade.lut) == "/abs/look.cube"
    assert RenderRequest.model_validate_json(req.to_json()) == req


def test_registry_lists_composite_and_names_unknown_engines():
    assert "composite" in available_engines()
    engine = get_engine("composite")
    assert engine.name == "composite" and engine.version
    with pytest.raises(EngineError, match=r"unknown engine 'nope'; available here: composite"):
        get_engine("nope")


def test_check_times_fails_on_any_bad_time_before_work():
    ok = RenderRequest(keyframes=[{"time": "1", "prompt": "a"}], grade={"keyframes": [{"time": "2", "exposure": 1}]},
                       label_swap={"artwork": "a.png", "text": "X", "frame": "0.5s",
                                   "corners": [[0, 0], [10, 0], [10, 5], [0, 5]]})
    ok.check_times(FPS, 72)
    bad = ok.model_copy(update={"label_swap": ok.label_swap.model_copy(update={"frame": 99})})
    with pytest.raises(RequestError, match="label_swap.frame 99 is outside"):
        bad.check_times(FPS, 72)
