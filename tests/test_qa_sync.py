"""Frame sync (qa/checks/sync.py) and the motion step ratio on a source that repeats frames, on real footage.

A dropped frame (the last repeated, so the count is right) must fail with the timecode where the output starts
running ahead, on the hand-held cup.mp4 and on vtest.avi's static camera (where the change between frames is
mostly sensor noise); frozen output frames must fail; clean graded renders must pass, also on a source that repeats
every third frame (its step noise is not zero).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.footage_util import CUP, CUP_LABEL, FOOTAGE, LIGHTING, artwork

VTEST_LABEL = [[330.0, 8.0], [450.0, 8.0], [450.0, 80.0], [330.0, 80.0]]


def _render(path: Path, corners, tmp: Path, frames: int = 24):
    """(shot, clean golden-graded frames, prepared, facts) of a label swap on the first ``frames`` of ``path``."""
    from qa.facts import facts_from_request
    from ray32.engines import get_engine
    from ray32.request import RenderRequest
    from ray32.shot import open_shot

    logging.getLogger("ray32").setLevel(logging.ERROR)
    shot = open_shot(path, end=f"{frames}f", detect_cuts=False)
    art = artwork(tmp / "art", ("AQUA", "0,5 l"), "de")
    req = {"grade": LIGHTING["golden"], "outputs": ["draft"],
           "label_swap": {"artwork": str(art), "text": "AQUA\n0,5 l", "corners": corners, "frame": 0}}
    engine = get_engine("composite")
    r = RenderRequest.model_validate(req)
    prep = engine.prepare(shot, {**engine.prepare_settings(r, shot), "cache_dir": str(tmp / "cache")})
    clean = np.concatenate(list(engine.render(prep, r)))
    return shot, clean, prep, facts_from_request(req, variant="clean")


def _qa(shot, frames, prep, facts, out: Path, name: str):
    """Encode ``frames`` as a draft and QA it as a campaign run does: (summary, verdict)."""
    from qa.expectations import verdicts
    from qa.metrics import measure
    from ray32.export import export_stream

    path = export_stream(["draft"], [frames], out / name, stem="v", fps=shot.fps, frame_count=len(frames),
                         width=frames.shape[2], height=frames.shape[1], source=shot)["draft"]
    q = measure(shot, path, facts.model_copy(update={"variant": name}), label_track=prep.label_track)
    return q.summary, verdicts([q])[name]


def dropped(frames: np.ndarray, i: int) -> np.ndarray:
    """Frame ``i`` dropped and the last repeated (the frame count is the same)."""
    return np.concatenate([frames[:i], frames[i + 1:], frames[-1:]])


@pytest.fixture(scope="module")
def cup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sync_cup")
    return (*_render(CUP, CUP_LABEL, tmp), tmp)


def test_cup_clean_passes_and_a_dropped_frame_fails_with_its_timecode(cup):
    shot, clean, prep, facts, tmp = cup
    s, v = _qa(shot, clean, prep, facts, tmp, "clean")
    assert s["sync_ratio_max"] < 0.5 and v.state == "pass", v.reasons
    s, v = _qa(shot, dropped(clean, 12), prep, facts, tmp, "dropped12")
    assert s["sync_ratio_max"] > 3
    assert "sync_ratio_max" in v.failed
    t = 12 / float(shot.fps)
    assert any(f"frame 00:{t:05.2f} is missing: from there the output runs one frame ahead of the source" in r
               for r in v.reasons), v.reasons


def test_frozen_output_frames_fail(cup):
    shot, clean, prep, facts, tmp = cup
    frozen = clean.copy()
    frozen[9:12] = clean[8]
    s, v = _qa(shot, frozen, prep, facts, tmp, "frozen")
    assert "sync_ratio_max" in v.failed, v.reasons
    assert any("repeats the frame before" in r and "00:00.3" in r for r in v.reasons), v.reasons


def test_static_camera_dropped_frame_fails(tmp_path):
    """vtest.avi: a fixed camera; between frames mostly sensor noise of 2-3 grey levels and a few pedestrians."""
    shot, clean, prep, facts = _render(FOOTAGE / "vtest.avi", VTEST_LABEL, tmp_path, frames=16)
    s, v = _qa(shot, clean, prep, facts, tmp_path, "clean")
    assert "sync_ratio_max" not in v.failed and s["sync_ratio_max"] < 0.1, v.reasons
    s, v = _qa(shot, dropped(clean, 9), prep, facts, tmp_path, "dropped9")
    assert "sync_ratio_max" in v.failed
    assert any("frame 00:00.90 is missing" in r for r in v.reasons), v.reasons


def test_source_repeating_every_third_frame_passes_the_step_ratio(tmp_path):
    """A noisy source that repeats every third frame (made from cup.mp4 with sensor noise of 4 grey levels, frame
    3k + 2 a copy of 3k + 1, encoded as H.264), like Megamind.avi frames 200-235: a clean render's step ratio must
    not read the draft's smoothing of the source's noise as a frozen frame (with the repeated steps counted in the
    noise floor, the floor is 0 and the ratio falls to 0.44 at 00:00.67), and frozen output frames still fail."""
    from ray32.shot import open_shot, read_chunks

    logging.getLogger("ray32").setLevel(logging.ERROR)
    src = open_shot(CUP, end="24f", detect_cuts=False)
    rep = np.concatenate([c.frames for c in read_chunks(src)]).astype(np.float32)
    rep = np.clip(rep + np.random.default_rng(0).normal(0, 4, rep.shape) + 0.5, 0, 255).astype(np.uint8)
    for k in range(2, len(rep), 3):
        rep[k] = rep[k - 1]
    h, w = rep.shape[1:3]
    path = tmp_path / "repeats.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", str(src.fps), "-i", "-", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
                    str(path)], input=rep.tobytes(), check=True)
    shot, clean, prep, facts = _render(path, CUP_LABEL, tmp_path)
    s, v = _qa(shot, clean, prep, facts, tmp_path, "clean")
    assert not {"motion_step_ratio_min", "motion_step_ratio_max", "sync_ratio_max"} & set(v.failed), v.reasons
    assert s["motion_step_ratio_min"] > 0.6
    frozen = clean.copy()
    frozen[9:12] = clean[8]
    s, v = _qa(shot, frozen, prep, facts, tmp_path, "frozen")
    assert "sync_ratio_max" in v.failed, v.reasons
