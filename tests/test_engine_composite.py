"""The composite engine on the synthetic demo shot: tracking against ground truth, the label swap read back by
OCR, pixels outside the label untouched, grade maths against OpenColorIO, the reframe keeping the face, the
prepare cache, the label lock post-pass and the errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ray32.demo_shot import load_truth, make_demo_shot, make_label_art
from ray32.engines import EngineError, get_engine
from ray32.request import RenderRequest
from ray32.shot import open_shot, read_chunks

NEW_TEXT = ("MEERESBRISE", "0,5 l")
SAMPLED = [0, 12, 24, 36, 48, 60, 71]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "composite_demo"  # shared with test_render_cli in one session
    d = make_demo_shot(root)
    art = root / "art_de.png"
    Image.fromarray(make_label_art(NEW_TEXT)).save(art)
    shot = open_shot(d.path, detect_cuts=False)
    truth = load_truth(d.truth_path)
    src = np.concatenate([c.frames for c in read_chunks(shot)])
    return {"root": root, "shot": shot, "truth": truth, "art": art, "src": src, "cache": root / "cache"}


def swap_request(demo, **kw) -> RenderRequest:
    t = demo["truth"]
    return RenderRequest(label_swap={"artwork": str(demo["art"]), "text": NEW_TEXT[0],
                                     "corners": t.label_corners[0].tolist(), "frame": 0}, **kw)


@pytest.fixture(scope="module")
def prepared(demo):
    engine = get_engine("composite")
    settings = {**engine.prepare_settings(swap_request(demo), demo["shot"]), "cache_dir": str(demo["cache"])}
    t0 = time.perf_counter()
    p = engine.prepare(demo["shot"], settings)
    return p, settings, time.perf_counter() - t0


@pytest.fixture(scope="module")
def ocr():
    from rapidocr import RapidOCR

    return RapidOCR(params={"Det.limit_type": "max", "Det.limit_side_len": 960, "Global.log_level": "critical"})


def label_crop(frame, corners, pad=30):
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + pad
    return np.ascontiguousarray(frame[max(0, y0):y1, max(0, x0):x1])


def read_text(ocr, image) -> str:
    result = ocr(image)
    return " ".join(result.txts or ())


# ------------------------------------------------------------------------------------------------ tracking

def test_label_track_within_one_pixel_of_ground_truth(demo, prepared):
    p, _, _ = prepared
    track = p.label_track
    err = np.linalg.norm(track.corners - demo["truth"].label_corners, axis=-1)
    assert track.valid.all(), np.flatnonzero(~track.valid)
    assert err.mean() <= 1.0, err.mean()
    assert err.max() <= 2.0, err.max()


def test_face_boxes_follow_the_face(demo, prepared):
    p, _, _ = prepared
    assert p.face_boxes.shape == (demo["shot"].frame_count, 4)
    assert np.isfinite(p.face_boxes).all()
    truth = demo["truth"].face_boxes
    centre_err = np.linalg.norm((p.face_boxes[:, :2] + p.face_boxes[:, 2:]) / 2 - (truth[:, :2] + truth[:, 2:]) / 2,
                                axis=1)
    assert centre_err.max() < 12, centre_err.max()


def test_occluded_frames_are_flagged_not_guessed(demo):
    from ray32.label_track import track_label

    t = demo["truth"]
    frames = demo["src"][20:44].copy()
    for k in range(8, 12):  # frames 28..31: a grey card covers the label
        x0, y0 = t.label_corners[20 + k].min(axis=0).astype(int) - 10
        x1, y1 = t.label_corners[20 + k].max(axis=0).astype(int) + 10
        frames[k, y0:y1, x0:x1] = 128
    track = track_label(frames, 0, t.label_corners[20])
    assert np.flatnonzero(~track.valid).tolist() == [8, 9, 10, 11]
    err = np.linalg.norm(track.corners[track.valid] - t.label_corners[20:44][track.valid], axis=-1)
    assert err.mean() <= 1.0


def test_prepare_is_cached_by_content_and_settings(demo, prepared):
    p, settings, first_time = prepared
    engine = get_engine("composite")
    t0 = time.perf_counter()
    again = engine.prepare(demo["shot"], settings)
    assert time.perf_counter() - t0 < first_time / 5
    assert again.key == p.key and again.cache_dir == p.cache_dir
    np.testing.assert_array_equal(again.label_track.corners, p.label_track.corners)
    np.testing.assert_array_equal(again.face_boxes, p.face_boxes)
    other = engine.prepare(demo["shot"], {"faces": False, "cache_dir": settings["cache_dir"]})
    assert other.key != p.key and other.face_boxes is None and other.label_track is None


# ------------------------------------------------------------------------------------------------ swap

@pytest.fixture(scope="module")
def swapped(demo, prepared):
    p, _, _ = prepared
    engine = get_engine("composite")
    calls = []
    chunks = list(engine.render(p, swap_request(demo), progress=lambda d, t: calls.append((d, t))))
    return np.concatenate(chunks), calls


def test_swap_keeps_timing_and_reports_progress(demo, swapped):
    frames, calls = swapped
    assert frames.shape == demo["src"].shape and frames.dtype == np.uint8
    assert calls[-1] == (72, 72)


def test_ocr_reads_the_new_label_on_every_sampled_frame_and_the_old_on_none(demo, swapped, ocr):
    frames, _ = swapped
    corners = demo["truth"].label_corners
    for i in SAMPLED:
        before = read_text(ocr, label_crop(demo["src"][i], corners[i]))
        after = read_text(ocr, label_crop(frames[i], corners[i]))
        assert "AQUA" in before, (i, before)  # the reader works on the source
        assert "MEERESBRISE" in after.replace(" ", ""), (i, after)
        assert "AQUA" not in after and "FRESH" not in after, (i, after)


def test_swap_leaves_pixels_outside_the_label_unchanged(demo, swapped):
    import cv2

    frames, _ = swapped
    corners = demo["truth"].label_corners
    for i in range(0, 72, 5):
        inside = np.zeros(frames.shape[1:3], np.uint8)
        cv2.fillConvexPoly(inside, np.round(corners[i]).astype(np.int32), 1)
        near = cv2.dilate(inside, np.ones((7, 7), np.uint8)).astype(bool)  # the quad plus 3 px
        diff = np.abs(frames[i].astype(int) - demo["src"][i].astype(int)).max(axis=2)
        assert diff[~near].max() <= 1, (i, diff[~near].max())
        assert diff[inside.astype(bool)].mean() > 10  # and inside it did change


def test_swap_keeps_the_source_shading(demo, swapped):
    """The label's paper is lit like the source's: its brightness profile across the label follows the source."""
    import cv2

    frames, _ = swapped
    c = demo["truth"].label_corners[0]
    x0, y0 = c.min(axis=0).astype(int) + 4
    x1, y1 = c.max(axis=0).astype(int) - 4
    # The top rows of the label are paper on both labels: compare brightness across the width.
    band = slice(y0 + 2, y0 + 8)
    src = cv2.cvtColor(demo["src"][0], cv2.COLOR_RGB2GRAY)[band, x0:x1].mean(axis=0)
    new = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)[band, x0:x1].mean(axis=0)
    assert np.corrcoef(src, new)[0, 1] > 0.8
    assert abs(src.mean() - new.mean()) < 8


def test_label_lock_post_pass_on_working_size_frames(demo, prepared, ocr):
    """The lock composites the artwork onto an engine's output at its own working size."""
    import cv2

    from ray32.label_lock import apply_label_lock, load_artwork
    from ray32.shot import working_geometry

    p, _, _ = prepared
    geo = working_geometry(960, 540, max_side=640)
    engine_out = np.stack([cv2.resize(demo["src"][i], (geo.width, geo.height), interpolation=cv2.INTER_AREA)
                           for i in (36, 37)])
    locked = np.concatenate(list(apply_label_lock([engine_out], p.label_track, load_artwork(demo["art"]),
                                                  first=36, geometry=geo)))
    corners = geo.to_working(demo["truth"].label_corners[36] + 0.5) - 0.5
    text = read_text(ocr, label_crop(locked[0], corners, pad=20))
    assert "MEERESBRISE" in text.replace(" ", "") and "AQUA" not in text, text


# ------------------------------------------------------------------------------------------------ grade

def ocio_cpu(src, dst):
    from ray32.color import processor

    return processor(src, dst)


def test_grade_exposure_contrast_saturation_match_ocio():
    from ray32.color import apply
    from ray32.grade import Grader

    space = "Gamma 2.4 Encoded Rec.709"
    rng = np.random.default_rng(0)
    img = rng.integers(30, 200, (64, 64, 3), dtype=np.uint8)
    to_lin, to_code = ocio_cpu(space, "ACEScg"), ocio_cpu("ACEScg", space)
    lin = apply(to_lin, img.astype(np.float32) / 255)

    def graded(**values):
        v = {"temperature": 6500, "tint": 0, "exposure": 0, "contrast": 1, "saturation": 1, **values}
        return Grader([(0, v)], space).apply(0, img.copy())

    def expect(lin_out):
        return np.clip(apply(to_code, lin_out) * 255 + 0.5, 0, 255)

    np.testing.assert_allclose(graded(), img, atol=1)                       # identity
    np.testing.assert_allclose(graded(exposure=0.5), expect(lin * 2 ** 0.5), atol=2)
    pivot = 0.18
    np.testing.assert_allclose(graded(contrast=1.3), expect(pivot * (np.maximum(lin, 0) / pivot) ** 1.3), atol=2)
    grey = graded(saturation=0)
    assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1             # no colour left


def test_grade_temperature_gives_the_lights_chromaticity():
    """A grey card graded to 2856 K takes CIE illuminant A's chromaticity (xy 0.4476, 0.4074), measured by
    converting the output to CIE XYZ with OCIO's built-in transform."""
    import PyOpenColorIO as OCIO

    from ray32.color import apply, config
    from ray32.grade import Grader

    space = "Gamma 2.4 Encoded Rec.709"
    grey = np.full((8, 8, 3), 150, np.uint8)
    base = {"tint": 0, "exposure": 0, "contrast": 1, "saturation": 1}
    out = Grader([(0, {"temperature": 2856, **base})], space).apply(0, grey.copy())
    to_xyz = config().getProcessor(OCIO.BuiltinTransform("UTILITY - ACES-AP1_to_CIE-XYZ-D65_BFD")
                                   ).getDefaultCPUProcessor()

    def xy(img):
        xyz = apply(to_xyz, apply(ocio_cpu(space, "ACEScg"), img.astype(np.float32) / 255)).reshape(-1, 3).mean(0)
        return xyz[:2] / xyz.sum()

    assert np.linalg.norm(xy(out) - [0.4476, 0.4074]) < 0.01
    assert np.linalg.norm(xy(grey) - [0.3127, 0.3290]) < 0.003              # the source grey is D65
    warm = Grader([(0, {"temperature": 3200, **base, "tint": 0.5})], space).apply(0, grey.copy())
    assert warm[0, 0, 1] < Grader([(0, {"temperature": 3200, **base})], space).apply(0, grey.copy())[0, 0, 1]


def test_keyframed_grade_warms_over_the_shot_and_cube_lut_applies(demo, tmp_path):
    shot = open_shot(demo["shot"].path, start="0f", end="12f", detect_cuts=False)
    engine = get_engine("composite")
    p = engine.prepare(shot, {"faces": False, "cache_dir": str(demo["cache"])})
    req = RenderRequest(grade={"keyframes": [{"time": "0f", "temperature": 6500}, {"time": "11f", "temperature": 3000}]})
    out = np.concatenate(list(engine.render(p, req)))
    src = demo["src"][:12].astype(float)
    warmth = (out[..., 0].astype(float).mean((1, 2)) - out[..., 2].astype(float).mean((1, 2))) - \
             (src[..., 0].mean((1, 2)) - src[..., 2].mean((1, 2)))
    assert abs(warmth[0]) < 1.0 and np.all(np.diff(warmth) > 0) and warmth[-1] > 20

    # A .cube LUT that inverts the code values, applied by OCIO after the grade.
    n = 5
    cube = tmp_path / "invert.cube"
    lines = [f"LUT_3D_SIZE {n}"] + [f"{1 - r / (n - 1):.6f} {1 - g / (n - 1):.6f} {1 - b / (n - 1):.6f}"
                                    for b in range(n) for g in range(n) for r in range(n)]
    cube.write_text("\n".join(lines) + "\n")
    inv = np.concatenate(list(engine.render(p, RenderRequest(grade={"lut": str(cube)}))))
    assert np.abs(inv.astype(int) - (255 - demo["src"][:12].astype(int))).max() <= 2


# ------------------------------------------------------------------------------------------------ reframe

def test_reframe_crop_keeps_the_face_inside_in_every_frame(demo, prepared):
    p, _, _ = prepared
    engine = get_engine("composite")
    req = RenderRequest(reframe={"aspect": "9:16"})
    assert engine.output_size(p, req) == (304, 540)
    out = np.concatenate(list(engine.render(p, req)))
    assert out.shape == (72, 540, 304, 3)
    faces = demo["truth"].face_boxes
    xs = []
    for i in range(72):
        # Where the crop sits: the output is an exact slice of the source frame.
        row_src, row_out = demo["src"][i, 270].astype(int), out[i, 270].astype(int)
        x0 = next(x for x in range(960 - 304 + 1) if np.array_equal(row_src[x:x + 304], row_out))
        np.testing.assert_array_equal(out[i], demo["src"][i, :, x0:x0 + 304])
        assert x0 <= faces[i, 0] and faces[i, 2] <= x0 + 304, (i, x0, faces[i])
        xs.append(x0)
    assert np.abs(np.diff(xs)).max() <= 4  # a calm virtual camera


# ------------------------------------------------------------------------------------------------ errors

def test_errors_name_the_problem(demo, prepared, tmp_path):
    from ray32.label_lock import LabelArtError

    p, _, _ = prepared
    engine = get_engine("composite")
    with pytest.raises(EngineError, match="reframes by crop only, not 'outpaint'"):
        next(engine.render(p, RenderRequest(reframe={"aspect": "1:1", "method": "outpaint"})))
    missing = swap_request(demo).model_copy(update={"label_swap": swap_request(demo).label_swap.model_copy(
        update={"artwork": tmp_path / "nope.png"})})
    with pytest.raises(LabelArtError, match=r"label artwork '.*nope.png' does not exist"):
        next(engine.render(p, missing))
    moved = RenderRequest(label_swap={"artwork": str(demo["art"]), "text": "X", "frame": 5,
                                      "corners": demo["truth"].label_corners[5].tolist()})
    with pytest.raises(EngineError, match="differ from what the shot was prepared with"):
        next(engine.render(p, moved))
    from ray32.grade import GradeError

    with pytest.raises(GradeError, match=r"LUT '.*missing.cube' does not exist"):
        next(engine.render(p, RenderRequest(grade={"lut": str(tmp_path / "missing.cube")})))
    with pytest.raises(Exception, match="keyframe|outside the shot"):
        next(engine.render(p, RenderRequest(grade={"keyframes": [{"time": "9", "exposure": 1}]})))


def test_cancel_stops_the_stream(prepared):
    p, _, _ = prepared
    engine = get_engine("composite")
    got = list(engine.render(p, RenderRequest(), cancel=lambda: True))
    assert sum(len(c) for c in got) < p.frame_count
