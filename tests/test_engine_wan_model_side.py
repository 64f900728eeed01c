"""What each control does inside the model, with the engine's pixel post-pass switched off.

The post-pass (guides pasted at their keyframes, source pixels composited into locks, windows cross-faded) would hide
a control whose model-side part is missing; here ``engine_options['post_pass'] = False`` and the tests read the
latents and frames the model made (captured at the engine's decode). Each test fails when the model-side part of its
control is removed from ``ray32.engines.wan_vace`` (checked by removing each once)."""

from __future__ import annotations

import numpy as np
import pytest

from ray32.request import RenderRequest
from ray32.shot import open_shot
from tests.test_engine_wan_vace import H, W, make_clip


@pytest.fixture(scope="module")
def pipe():
    from ray32.engines.tiny_models import build_pipeline

    return build_pipeline("tiny", seed=0)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return open_shot(make_clip(tmp_path_factory.mktemp("ms") / "clip.mp4", 13), detect_cuts=False)


@pytest.fixture(scope="module")
def plain(pipe, shot, tmp_path_factory):
    """The plain render's (engine, prepared, latents of its one window)."""
    eng, prepared, (lat,), _ = model_run(pipe, shot, req(), tmp_path_factory.mktemp("plain"))
    return eng, prepared, lat


def model_run(pipe, shot, request, cache_dir, *, window=13, overlap=5, prepared_hook=None):
    """Render with the post-pass off; returns (engine, per-window latents, per-window decoded working frames)."""
    from ray32.engines.wan_vace import WanVaceEngine

    eng = WanVaceEngine(pipeline=pipe, max_side=32, window=window, overlap=overlap)
    lats, frames = [], []
    real = eng.decode

    def decode(lat):
        lats.append(lat.detach().float().numpy()[0].copy())
        frames.append(real(lat))
        return frames[-1]

    eng.decode = decode
    prepared = eng.prepare(shot, {**eng.prepare_settings(request, shot), "cache_dir": str(cache_dir)})
    if prepared_hook is not None:
        prepared_hook(eng, prepared)
    list(eng.render(prepared, request))
    return eng, prepared, lats, frames


def req(**kw):
    opts = {"steps": 2, "strength": 1.0, "guidance": 1.0, "post_pass": False, **kw.pop("engine_options", {})}
    return RenderRequest(prompt="a golden bottle on a beach", seed=3, engine_options=opts, **kw)


def per_frame(a, b):
    """Mean absolute difference per latent frame of two (16, t, h, w) arrays."""
    return np.abs(a - b).mean(axis=(0, 2, 3))


def test_a_keyframe_guide_acts_on_its_latent_frame_not_far_ones(pipe, shot, plain, tmp_path):
    from PIL import Image

    guide = np.zeros((H, W, 3), np.uint8)
    guide[:, :W // 2] = (255, 0, 255)
    guide[:, W // 2:] = (0, 255, 0)
    Image.fromarray(guide).save(tmp_path / "guide.png")
    eng, _, plain = plain
    _, _, (keyed,), _ = model_run(pipe, shot, req(keyframes=[{"time": "6f", "guide": str(tmp_path / "guide.png")}]),
                                          tmp_path / "c")
    d = per_frame(keyed, plain)          # frame 6 lies in latent frame 2 (frames 5..8)
    print("keyframe", d)
    assert d[2] > 4 * d[0]
    # ... toward the guide's own latents (the guide shown for a whole 4-frame group)
    guide_lat = eng._encode_static(eng.canvas(shot, None).geometry.pad(np.asarray(Image.fromarray(guide).resize(
        (eng.canvas(shot, None).geometry.scaled_width, eng.canvas(shot, None).geometry.scaled_height)), np.float32)))[1]
    assert np.abs(keyed[:, 2] - guide_lat).mean() < 0.5 * np.abs(plain[:, 2] - guide_lat).mean()


def test_a_locked_regions_latents_follow_the_source(pipe, shot, plain, tmp_path):
    poly = [[0, 0], [40, 0], [40, 48], [0, 48]]       # the left 40 of 64 source pixels
    eng, prepared, plain = plain
    _, _, (locked,), _ = model_run(pipe, shot, req(locks=[{"kind": "region", "polygon": poly}]), tmp_path / "c")
    src = eng._latent(prepared, eng.canvas(shot, None), "source", 0)
    # working frame 32x32 holds the 32x24 picture from row 4; latent pixels (4x4) fully inside the lock: x < 2
    inside = (slice(None), slice(None), slice(1, 3), slice(0, 2))
    outside = (slice(None), slice(None), slice(1, 3), slice(3, 4))
    d_locked, d_plain = np.abs(locked[inside] - src[inside]).mean(), np.abs(plain[inside] - src[inside]).mean()
    print("lock", d_locked, d_plain, np.abs(locked[outside] - src[outside]).mean())
    assert d_locked < 0.2 * d_plain
    assert np.abs(locked[outside] - src[outside]).mean() > 3 * d_locked   # the rest is generated


def test_a_reference_images_content_changes_the_output(pipe, shot, plain, tmp_path):
    from PIL import Image

    off_frame = [[-20, -20], [-10, -20], [-10, -10]]     # keeps nothing: only the reference acts
    outs = {}
    for name, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        img = np.full((40, 40, 3), 255, np.uint8)
        img[8:32, 8:32] = colour
        Image.fromarray(img).save(tmp_path / f"{name}.png")
        lock = {"kind": "product", "polygon": off_frame, "reference": str(tmp_path / f"{name}.png")}
        outs[name] = model_run(pipe, shot, req(locks=[lock]), tmp_path / "c")[2][0]
    again = model_run(pipe, shot, req(locks=[lock]), tmp_path / "c")[2][0]   # the blue one once more
    d_content, d_any = np.abs(outs["red"] - outs["blue"]).mean(), np.abs(outs["red"] - plain[2]).mean()
    d_same = np.abs(again - outs["blue"]).mean()
    print("ref", d_content, d_any, d_same)
    assert d_same < 1e-7                          # renders are deterministic ...
    assert d_content > 1e-5 and d_any > 1e-2      # ... so a red and a blue product give different outputs


def test_the_control_videos_content_changes_the_output(pipe, shot, tmp_path):
    """The same control kind and scale with the control's content replaced by an empty clip changes the output;
    at scale 0 the content does not matter."""
    def blank(eng, prepared):
        for k in [k for k in prepared.extras if k.startswith("lat_edges_")]:
            prepared.extras[k] = eng._latent(prepared, eng.canvas(shot, None), "empty", 0).copy()

    opts = {"control": "edges", "conditioning_scale": 1.0}
    real = model_run(pipe, shot, req(engine_options=opts), tmp_path / "a")[2][0]
    empty = model_run(pipe, shot, req(engine_options=opts), tmp_path / "b", prepared_hook=blank)[2][0]
    print("ctrl", np.abs(real - empty).mean())
    assert np.abs(real - empty).mean() > 1e-3    # float32 noise between equal runs is about 1e-6
    opts0 = {**opts, "conditioning_scale": 0.0}
    real0 = model_run(pipe, shot, req(engine_options=opts0), tmp_path / "c")[2][0]
    empty0 = model_run(pipe, shot, req(engine_options=opts0), tmp_path / "d", prepared_hook=blank)[2][0]
    assert np.abs(real0 - empty0).max() < 1e-5


def test_a_windows_tail_is_kept_by_the_model(pipe, shot, tmp_path):
    """Window 1 (frames 4..12) keeps window 0's last 5 frames (its first two latent frames): the model's latents
    there follow the tail's, where the same frames generated without the tail (the shot trimmed to start at frame
    4) do not. Compared in latent space: the tiny random VAE does not reconstruct pixels."""
    import dataclasses

    eng, _, (_, l1), (w0, _) = model_run(pipe, shot, req(), tmp_path / "c", window=9, overlap=5)
    tail = eng.encode(w0[4:9])                                  # what window 1 was asked to keep
    late = dataclasses.replace(shot, first=4)
    _, _, (free,), _ = model_run(pipe, late, req(), tmp_path / "c", window=9, overlap=5)
    d_tail, d_free = np.abs(l1[:, :2] - tail).mean(), np.abs(free[:, :2] - tail).mean()
    print("tail", d_tail, d_free)
    assert d_tail < 0.2 * d_free
