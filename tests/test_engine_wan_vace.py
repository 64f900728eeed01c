"""The wan-vace engine on a tiny random-weight Wan2.1-VACE built in code (CPU, no network).

Random weights make no pictures worth looking at, so every test asserts what the controls do to real outputs:
kept keyframes equal their guides, locked pixels equal the source, the conditioning scale changes the result,
windows join to exactly the source's frame count, the source is VAE-encoded once for any number of variants.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ray32.request import RenderRequest
from ray32.shot import open_shot, read_chunks

W, H = 64, 48        # source size; the engine works at max_side=32 -> 32x32 (24 px of picture + padding)
STEPS = {"steps": 3}


def make_clip(path: Path, n: int) -> Path:
    """A lossless clip: a yellow square moving right over a changing background."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = W, H, "yuv444p"
        s.options = {"qp": "0"}
        for i in range(n):
            f = np.zeros((H, W, 3), np.uint8)
            f[..., 0] = 40 + i * 8
            f[..., 2] = 120
            f[10:30, 5 + i * 2:25 + i * 2] = (250, 220, 30)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def pipe():
    from ray32.engines.tiny_models import build_pipeline

    return build_pipeline("tiny", seed=0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {n: open_shot(make_clip(d / f"clip{n}.mp4", n), detect_cuts=False) for n in (13, 21)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from ray32.engines.tiny_models import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-wan-vace")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def engine(pipe, **kw):
    from ray32.engines.wan_vace import WanVaceEngine

    return WanVaceEngine(pipeline=pipe, max_side=32, window=kw.pop("window", 9), overlap=kw.pop("overlap", 5), **kw)


def run(eng, shot, request, cache_dir, **kw):
    prepared = eng.prepare(shot, {**eng.prepare_settings(request, shot), "cache_dir": str(cache_dir)})
    return np.concatenate(list(eng.render(prepared, request, **kw)))


def source_frames(shot):
    return np.concatenate([c.frames for c in read_chunks(shot)])


def req(**kw):
    opts = {**STEPS, **kw.pop("engine_options", {})}
    return RenderRequest(prompt=kw.pop("prompt", "a golden bottle on a beach at sunset"), engine_options=opts, **kw)


# ------------------------------------------------------------------------------------------------ the model

def test_model_dir_round_trip_and_render(tiny_dir, tmp_path, clips):
    """A tiny model saved to a folder loads back with local_files_only and renders the source's frame count."""
    from ray32.engines import ENGINES
    from ray32.engines.wan_vace import WanVaceEngine

    folder = tiny_dir
    assert (folder / "model_index.json").is_file() and (folder / "tokenizer" / "tokenizer.json").is_file()
    eng = WanVaceEngine(model_dir=folder, max_side=32, window=9, overlap=5)
    shot = clips[13]
    out = run(eng, shot, req(), tmp_path / "cache")
    assert out.shape == (13, H, W, 3) and out.dtype == np.uint8
    assert eng.pipe.transformer.dtype.is_floating_point and str(eng.pipe.transformer.dtype) == "torch.float32"
    assert eng.version == ENGINES["wan-vace"].version and eng.name == "wan-vace"


def test_missing_model_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from ray32.engines.wan_vace import ModelNotFoundError, find_model

    with pytest.raises(ModelNotFoundError) as ex:
        find_model(tmp_path / "nowhere")
    msg = str(ex.value)
    assert str(tmp_path / "nowhere") in msg and "does not exist" in msg
    assert "hf download Wan-AI/Wan2.1-VACE-1.3B-diffusers" in msg and "--model-dir" in msg

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no model_index.json"):
        find_model(tmp_path / "empty")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError) as ex:
        find_model(None)
    assert str(tmp_path / "hub") in str(ex.value) and "not in the Hugging Face cache" in str(ex.value)


def test_tokenizer_built_in_code_covers_prompts():
    from ray32.engines.tiny_models import build_tokenizer

    tok = build_tokenizer()
    ids = tok("A golden bottle, 500 ml!").input_ids
    assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "A golden bottle, 500 ml!"


# ------------------------------------------------------------------------------------------- shared prepare

def test_two_variants_on_one_prepare_encode_the_source_once(pipe, clips, tmp_path, monkeypatch):
    """Counting calls on the real VAE: prepare encodes each window's source, control and empty clip once; the
    second prepare is a cache hit and the two renders encode nothing."""
    calls = []
    real = pipe.vae.encode

    def counting(x, *a, **k):
        calls.append(tuple(x.shape))
        return real(x, *a, **k)

    monkeypatch.setattr(pipe.vae, "encode", counting)
    eng = engine(pipe)
    shot = clips[13]   # 2 windows of 9 frames
    a = req(prompt="the bottle on a beach at golden hour", engine_options={"steps": 2})
    b = req(prompt="the bottle in a snowy forest at dawn", engine_options={"steps": 2, "control": "flow"})
    prep_a = eng.prepare(shot, {**eng.prepare_settings(a, shot), "cache_dir": str(tmp_path)})
    n_prepare = len(calls)
    assert n_prepare == 2 * 2 + 1   # per window: source + edges control; one empty clip per window length
    assert sum(1 for k in prep_a.extras if k.startswith("lat_source")) == 2
    prep_b = eng.prepare(shot, {**eng.prepare_settings(b, shot), "cache_dir": str(tmp_path)})
    assert prep_b.key == prep_a.key                   # the same cache entry ...
    assert len(calls) - n_prepare == 2                 # ... adds only the flow control's latents (2 windows)
    n_prepare = len(calls)
    out_a = np.concatenate(list(eng.render(prep_a, a)))
    calls_after_a = len(calls)
    out_b = np.concatenate(list(eng.render(prep_b, b)))
    # A render encodes no source: per join, the previous window's tail (generated frames, for the blend) and the
    # window's VACE context with that tail kept (inactive and reactive, as diffusers encodes masked pixels).
    assert calls_after_a - n_prepare == 3 and len(calls) - calls_after_a == 3
    assert sorted(shape[2] for shape in calls[n_prepare:calls_after_a]) == [5, 9, 9]   # tail, 2 x context
    assert out_a.shape == out_b.shape == (13, H, W, 3)
    assert np.abs(out_a.astype(int) - out_b).mean() > 0.5
    # a third variant on a fresh engine: everything comes from the cache entry on disk, no encode at all
    eng2 = engine(pipe)
    before = len(calls)
    eng2.prepare(shot, {**eng2.prepare_settings(b, shot), "cache_dir": str(tmp_path)})
    assert len(calls) == before


# ------------------------------------------------------------------------------------------------ controls

def test_conditioning_scale_changes_the_output_and_renders_are_deterministic(pipe, clips, cache):
    eng = engine(pipe)
    shot = clips[13]
    zero = run(eng, shot, req(engine_options={"conditioning_scale": 0.0}), cache)
    one = run(eng, shot, req(engine_options={"conditioning_scale": 1.0}), cache)
    again = run(eng, shot, req(engine_options={"conditioning_scale": 1.0}), cache)
    assert np.array_equal(one, again)
    assert np.abs(zero.astype(int) - one).mean() > 0.5


def test_structure_adherence_sets_scale_and_control_kind():
    from ray32.engines.wan_controls import resolve_plan

    p = resolve_plan(RenderRequest(prompt="x", structure_adherence=0.8, motion_adherence=0.3))
    assert p.control == "edges" and p.conditioning_scale == pytest.approx(0.8)
    p = resolve_plan(RenderRequest(prompt="x", structure_adherence=0.3, motion_adherence=0.2))
    assert p.control == "layout" and p.conditioning_scale == pytest.approx(0.3)
    p = resolve_plan(RenderRequest(prompt="x", structure_adherence=0.2, motion_adherence=0.9))
    assert p.control == "flow" and p.strength == pytest.approx(1 - 0.6 * 0.9)
    p = resolve_plan(RenderRequest(prompt="x", structure_adherence=0.1, motion_adherence=0.4))
    assert p.control == "gray"
    # presets fill what is not given; explicit values win
    adhere, flex, reimagine = (resolve_plan(RenderRequest(prompt="x", mode=m)) for m in ("adhere", "flex", "reimagine"))
    assert adhere.strength < flex.strength < reimagine.strength
    assert adhere.conditioning_scale > flex.conditioning_scale > reimagine.conditioning_scale
    assert resolve_plan(RenderRequest(prompt="x", mode="reimagine", structure_adherence=1.0)).conditioning_scale == 1
    p = resolve_plan(RenderRequest(prompt="x", engine_options={"preset": "draft"}))
    assert p.draft and p.steps == 8 and p.guidance_steps == 0.5


def test_bad_engine_options_are_one_clear_error():
    from ray32.engines.wan_controls import ControlError, resolve_plan

    with pytest.raises(ControlError) as ex:
        resolve_plan(RenderRequest(prompt="x", engine_options={"steps": 0, "control": "depth", "sped": 2}))
    msg = str(ex.value)
    assert "unknown engine_options ['sped']" in msg
    assert "engine_options['steps'] must be an integer in 1..200, got 0" in msg
    assert "engine_options['control'] must be one of edges, gray, layout, flow, got 'depth'" in msg


def test_motion_adherence_starts_from_the_source_latents(pipe, clips, cache):
    """Motion adherence m starts the denoising from the source's latents noised to strength 1 - 0.6 m: the render
    runs only that share of the schedule, and a small strength stays near the VAE's rendering of the source's
    latents, where a start from pure noise does not."""
    import torch

    eng = engine(pipe)
    shot = clips[13]
    opts = {"control": "edges", "conditioning_scale": 0.5, "steps": 10, "guidance": 1.0}
    totals = {}
    for m in (1.0, 0.0):
        seen = []
        run(eng, shot, req(motion_adherence=m, structure_adherence=0.5, engine_options=opts), cache,
            progress=lambda d, t: seen.append(t))
        totals[m] = seen[-1] // 2   # per window
    assert totals == {1.0: 4, 0.0: 10}   # strength 0.4 -> the last 4 of 10 steps; strength 1 -> all 10
    near = run(eng, shot, req(engine_options={**opts, "strength": 0.05}), cache).astype(np.float32)
    far = run(eng, shot, req(engine_options={**opts, "strength": 1.0}), cache).astype(np.float32)
    prepared = eng.prepare(shot, {**eng.prepare_settings(req(), shot), "cache_dir": str(cache)})
    canvas = eng.canvas(shot, None)
    ref = eng.decode(torch.from_numpy(eng._latent(prepared, canvas, "source", 0))[None])
    ref = canvas.geometry.restore(np.clip(ref, 0, 255))[:4].astype(np.float32)   # frames only window 0 makes
    d_near, d_far = np.abs(near[:4] - ref).mean(), np.abs(far[:4] - ref).mean()
    assert d_near < 0.7 * d_far   # (a random model's one last step still moves it: the tiny VAE is sensitive)


def test_keyframe_guides_are_hit_at_their_exact_frames(pipe, clips, cache, tmp_path):
    from PIL import Image

    guide = np.zeros((H, W, 3), np.uint8)
    guide[:, :W // 2] = (255, 0, 255)
    guide[:, W // 2:] = (0, 255, 0)
    Image.fromarray(guide).save(tmp_path / "guide.png")
    eng = engine(pipe)
    shot = clips[13]
    plain = run(eng, shot, req(), cache).astype(int)
    keyed = run(eng, shot, req(keyframes=[{"time": "6f", "guide": str(tmp_path / "guide.png")}],
                               engine_options={"keyframe_fade": 2}), cache).astype(int)
    assert np.abs(keyed[6] - guide).max() <= 1                  # the kept frame equals its guide
    assert np.abs(plain[6] - guide).mean() > 20                  # ... which the plain render does not
    for k in (5, 7):                                             # neighbours move toward it (no pop)
        assert np.abs(keyed[k] - guide).mean() < np.abs(plain[k] - guide).mean()
    assert np.abs(keyed[0] - plain[0]).mean() < np.abs(keyed[6] - plain[6]).mean()


def test_locked_region_equals_the_source(pipe, clips, cache):
    eng = engine(pipe)
    shot = clips[13]
    poly = [[4, 6], [30, 6], [30, 28], [4, 28]]
    out = run(eng, shot, req(locks=[{"kind": "region", "polygon": poly}]), cache).astype(int)
    src = source_frames(shot).astype(int)
    assert np.array_equal(out[:, 7:28, 5:30], src[:, 7:28, 5:30])
    assert np.abs(out[:, 34:, 36:] - src[:, 34:, 36:]).mean() > 10   # the rest is generated


def test_lock_reference_image_conditions_the_model(pipe, clips, cache, tmp_path):
    from PIL import Image

    ref = np.zeros((40, 40, 3), np.uint8)
    ref[8:32, 8:32] = (200, 30, 30)
    Image.fromarray(ref).save(tmp_path / "product.png")
    eng = engine(pipe)
    shot = clips[13]
    poly = [[4, 6], [20, 6], [20, 20], [4, 20]]
    without = run(eng, shot, req(locks=[{"kind": "product", "polygon": poly}]), cache).astype(int)
    with_ref = run(eng, shot, req(locks=[{"kind": "product", "polygon": poly,
                                          "reference": str(tmp_path / "product.png")}]), cache).astype(int)
    assert np.array_equal(with_ref[:, 7:20, 5:20], without[:, 7:20, 5:20])   # the lock holds either way
    assert np.abs(with_ref[:, 30:, 30:] - without[:, 30:, 30:]).mean() > 0.5


def test_reframe_by_outpainting_gives_the_target_aspect(pipe, clips, cache):
    from ray32.engines.wan_controls import outpaint_canvas

    eng = engine(pipe)
    shot = clips[13]
    poly = [[4, 6], [30, 6], [30, 28], [4, 28]]
    request = req(reframe={"aspect": "9:16", "method": "outpaint"}, locks=[{"kind": "region", "polygon": poly}])
    prepared = eng.prepare(shot, {**eng.prepare_settings(request, shot), "cache_dir": str(cache)})
    cw, ch, x0, y0 = outpaint_canvas(W, H, Fraction(9, 16))
    assert eng.output_size(prepared, request) == (cw, ch) == (64, 114) and (x0, y0) == (0, 33)
    out = np.concatenate(list(eng.render(prepared, request))).astype(int)
    assert out.shape == (13, 114, 64, 3)
    src = source_frames(shot).astype(int)
    assert np.array_equal(out[:, y0 + 7:y0 + 28, 5:30], src[:, 7:28, 5:30])   # the lock, placed in the canvas

    with pytest.raises(Exception, match="reframes by outpainting"):
        eng.output_size(prepared, req(reframe={"aspect": "9:16", "method": "crop"}))


# ------------------------------------------------------------------------------------------------- windows

def test_windows_join_to_exactly_the_source_frame_count(pipe, clips, cache):
    from ray32.engines.wan_controls import plan_windows

    eng = engine(pipe)
    shot = clips[21]
    assert plan_windows(21, 9, 5) == [(0, 9), (4, 13), (8, 17), (12, 21)]
    seen = []
    out = run(eng, shot, req(engine_options={"steps": 2, "strength": 1.0}), cache,
              progress=lambda d, t: seen.append((d, t)))
    assert out.shape == (21, H, W, 3)
    assert seen[-1] == (8, 8)   # 4 windows x 2 steps, one progress call per step
    # no seam: frame-to-frame change where windows meet is of the order of the change inside a window
    diffs = np.abs(np.diff(out.astype(float), axis=0)).mean(axis=(1, 2, 3))
    joins = [d for w in (4, 8, 12) for d in diffs[w + 3:w + 6]]   # around each window's last shared frame
    assert max(joins) < 3 * np.median(diffs) + 2


def test_plan_windows_cover_the_clip():
    from ray32.engines.wan_controls import ControlError, plan_windows

    for n in (1, 5, 80, 81, 82, 150, 480):
        wins = plan_windows(n)
        assert wins[0][0] == 0 and wins[-1][1] == n
        assert all(b - a <= 81 for a, b in wins)
        assert all(wins[i + 1][0] <= wins[i][1] - 17 for i in range(len(wins) - 1))
    assert len(plan_windows(480)) == 8     # 20 s at 24 fps
    with pytest.raises(ControlError, match="window must be 1 \\+ 4k frames"):
        plan_windows(100, window=80)


def test_joiner_colour_matches_and_crossfades():
    from ray32.engines.wan_controls import WindowJoiner

    a = np.full((9, 4, 4, 3), 100.0)
    b = np.full((9, 4, 4, 3), 160.0)  # the second window came out 60 levels brighter
    b += np.arange(9)[:, None, None, None]
    j = WindowJoiner(13)
    first = j.add(0, a, 4)
    second = j.add(4, b, None)
    out = np.concatenate([first, second])
    assert out.shape[0] == 13
    assert np.abs(np.diff(out.mean(axis=(1, 2, 3)))).max() < 6   # no 60-level step at the seam


def test_control_videos():
    from ray32.engines.wan_controls import ControlError, control_video

    frames = np.zeros((5, 96, 128, 3), np.uint8)
    for i in range(5):
        frames[i, 30:60, 20 + 3 * i:50 + 3 * i] = 200
    edges = control_video(frames, "edges")
    assert edges.shape == frames.shape and set(np.unique(edges)) <= {0, 255} and edges[0].max() == 255
    gray = control_video(frames, "gray")
    assert np.all(gray[..., 0] == gray[..., 1]) and gray.max() > 150
    # flow as VACE's annotator draws RAFT's: zero motion white, the moving square coloured (the Middlebury wheel)
    flow = control_video(frames, "flow")
    assert flow.shape == frames.shape and flow[2, :10, :10].min() >= 250
    square = flow[2, 30:60, 20:60].astype(int)
    assert (255 - square).mean() > 60 and square[..., 0].mean() > square[..., 2].mean() + 40   # rightward: red
    # layout as VACE's layout annotator: black contours on white, around the square and nowhere far from it
    layout = control_video(frames, "layout")
    assert set(np.unique(layout)) <= {0, 255} and (layout[0] == 0).any() and layout[0, :20].min() == 255
    ys, xs = np.nonzero(layout[0, ..., 0] == 0)
    assert ys.min() >= 20 and ys.max() <= 70 and xs.min() >= 10 and xs.max() <= 60
    with pytest.raises(ControlError, match="unknown control kind 'depth'"):
        control_video(frames, "depth")


def test_cancel_stops_the_stream(pipe, clips, cache):
    eng = engine(pipe)
    shot = clips[21]
    steps = []
    out = run(eng, shot, req(engine_options={"steps": 2, "strength": 1.0}), cache, progress=lambda d, t: steps.append(d),
              cancel=lambda: len(steps) >= 3)
    assert len(steps) == 3 and len(out) < 21


def test_draft_preset_runs_fewer_steps(pipe, clips, cache):
    eng = engine(pipe)
    shot = clips[13]
    seen = []
    draft = RenderRequest(prompt="a golden bottle", engine_options={"preset": "draft", "strength": 1.0})
    out = run(eng, shot, draft, cache, progress=lambda d, t: seen.append(t))
    assert out.shape == (13, H, W, 3) and seen[-1] == 2 * 8   # 2 windows x the draft's 8 steps


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (bf16 path)")
def test_bf16_on_cuda(clips, cache):
    from ray32.engines.tiny_models import build_pipeline

    import torch

    p = build_pipeline("tiny", device="cuda", dtype=torch.bfloat16)
    out = run(engine(p), clips[13], req(), cache)
    assert out.shape == (13, H, W, 3) and p.transformer.dtype == torch.bfloat16


# --------------------------------------------------------------------------------------------------- the CLI

def test_cli_render_with_model_dir_and_label_lock(tiny_dir, tmp_path, capsys):
    """``ray32 render --engine wan-vace --model-dir DIR`` on the demo shot (first 13 frames): the export has the
    source's timing and size, the label lock puts the market's artwork on the tracked label (OCR reads it) and the
    face lock keeps the tracked face from the source."""
    import json
    import subprocess

    from PIL import Image
    from rapidocr import RapidOCR

    from flows.cli import main
    from ray32.demo_shot import load_truth, make_demo_shot, make_label_art

    demo = make_demo_shot(tmp_path / "demo")
    truth = load_truth(demo.truth_path)
    art = tmp_path / "art_it.png"
    Image.fromarray(make_label_art(("BREZZA MARINA", "50 cl"))).save(art)
    opts = tmp_path / "request.json"
    opts.write_text(json.dumps({"locks": [{"kind": "label"},     # keep the label area, then swap the artwork on it
                                          {"kind": "face"}],     # and the face, tracked in prepare
                                "engine_options": {"steps": 2, "max_side": 64, "window": 9, "overlap": 5}}))
    corners = ",".join(f"{v:g}" for v in truth.label_corners[0].ravel()) + "@0"
    out = tmp_path / "out"
    rc = main(["render", str(demo.path), "--engine", "wan-vace", "--model-dir", str(tiny_dir), "--request", str(opts),
               "--prompt", "the bottle on a beach at golden hour", "--end", "13f", "--label-art", str(art),
               "--label-text", "BREZZA MARINA", "--label-corners", corners, "--out", "draft", "--out-dir", str(out),
               "--stem", "it", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0, capsys.readouterr().err
    draft = out / "it_draft.mp4"
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames,width,height", "-of", "json", str(draft)],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (int(probe["nb_read_frames"]), probe["width"], probe["height"]) == (13, 960, 540)
    assert json.loads((out / "it.request.json").read_text())["engine"] == "wan-vace"
    ocr = RapidOCR(params={"Det.limit_type": "max", "Det.limit_side_len": 960, "Global.log_level": "critical"})
    shot = open_shot(draft, detect_cuts=False)
    for i in (0, 12):
        frame = next(read_chunks(shot.info, start=f"{i}f", end=f"{i + 1}f")).frames[0]
        c = truth.label_corners[i]
        x0, y0 = np.floor(c.min(axis=0)).astype(int) - 30
        x1, y1 = np.ceil(c.max(axis=0)).astype(int) + 30
        text = " ".join(ocr(np.ascontiguousarray(frame[y0:y1, x0:x1])).txts or ())
        assert "BREZZA" in text and "AQUA" not in text, (i, text)
    # the face lock: inside the tracked face the export shows the source (up to the draft's compression)
    src = np.concatenate([c.frames for c in read_chunks(demo.path, end="13f")]).astype(int)
    out_frames = np.concatenate([c.frames for c in read_chunks(shot)]).astype(int)
    for i in (0, 6, 12):
        x0, y0, x1, y1 = np.round(truth.face_boxes[i]).astype(int)
        cx, cy, hw, hh = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 3, (y1 - y0) // 3
        inside = np.abs(out_frames[i, cy - hh:cy + hh, cx - hw:cx + hw] - src[i, cy - hh:cy + hh, cx - hw:cx + hw])
        assert inside.mean() < 8, (i, inside.mean())   # H.264 draft of a detailed face: a few code values
    assert np.abs(out_frames[:, :100, :100] - src[:, :100, :100]).mean() > 15   # the rest was generated


def test_cli_missing_model_is_one_message(clips, tmp_path, capsys):
    from flows.cli import main

    rc = main(["render", str(clips[13].path), "--engine", "wan-vace", "--model-dir", str(tmp_path / "weights"),
               "--prompt", "x", "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("ray32: error: no Wan2.1-VACE model in ") and str(tmp_path / "weights") in err
    assert "hf download Wan-AI/Wan2.1-VACE-1.3B-diffusers" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    rc = main(["render", str(clips[13].path), "--model-dir", str(tmp_path), "--out-dir", str(tmp_path / "o2")])
    assert rc == 2 and "--model-dir is for engines that take weights (wan-vace), not 'composite'" in \
        capsys.readouterr().err


def test_request_errors_name_the_problem_before_any_model_work(pipe, clips, cache, tmp_path):
    from ray32.engines import EngineError
    from ray32.engines.wan_controls import ControlError

    eng = engine(pipe)
    shot = clips[13]
    prepared = eng.prepare(shot, {**eng.prepare_settings(req(), shot), "cache_dir": str(cache)})

    def first(request):
        return next(iter(eng.render(prepared, request)))

    with pytest.raises(EngineError, match=r"image .*missing\.png does not exist; check the path"):
        first(req(keyframes=[{"time": "3f", "guide": str(tmp_path / "missing.png")}]))
    (tmp_path / "bad.png").write_text("not a picture")
    with pytest.raises(EngineError, match=r"bad\.png cannot be read as a picture"):
        first(req(keyframes=[{"time": "3f", "guide": str(tmp_path / "bad.png")}]))
    with pytest.raises(EngineError, match="lock 1 \\(product\\) without a polygon follows the tracked label; give"):
        first(req(locks=[{"kind": "product"}]))
    with pytest.raises(ControlError, match=r"engine_options\['max_side'\] must be an integer >= 16 \(pixels\), "
                                           r"got 8"):
        eng.prepare_settings(req(engine_options={"max_side": 8}), shot)
    with pytest.raises(ControlError, match="overlap must be 1..7 frames, got 9"):
        eng.prepare_settings(req(engine_options={"overlap": 9}), shot)


def test_keyframe_prompts_apply_per_window():
    from ray32.engines.wan_vace import _window_prompt
    from ray32.request import ResolvedKeyframe

    keys = [ResolvedKeyframe(10, None, "the sun sets"), ResolvedKeyframe(40, None, "night falls")]
    assert _window_prompt("day", keys, 0, 9) == "day"
    assert _window_prompt("day", keys, 4, 21) == "the sun sets"     # middle 12 is after frame 10
    assert _window_prompt("day", keys, 30, 81) == "night falls"


def test_vace_mask_matches_diffusers_prepare_masks(pipe):
    """VACE's mask channels (each pixel of an 8x8 block one channel) are laid out as diffusers' pipeline lays them.

    Over time the engine marks a latent frame by its own 4-frame group (a kept keyframe keeps its latent frame);
    diffusers samples one pixel frame per latent frame (nearest-exact): the test feeds diffusers a pixel mask whose
    sampled frames carry the per-latent-frame values, so only the channel layout is compared."""
    import torch

    from ray32.engines.wan_controls import vace_mask

    rng = np.random.default_rng(0)
    per_latent = (rng.random((3, 32, 48)) > 0.5).astype(np.float32)
    pixel = per_latent[np.arange(9) // 3]                   # diffusers samples frames 1, 4, 7 of 9 for 3 latents
    ours = vace_mask(per_latent, 8)
    theirs = pipe.prepare_masks(torch.from_numpy(pixel)[None, None], reference_images=[[]])[0].numpy()
    assert ours.shape == theirs.shape == (64, 3, 4, 6)
    assert np.array_equal(ours, theirs)


# ------------------------------------------------------------------------------------- the model's limits

FOOTAGE = Path(__file__).parent / "data" / "footage"


def test_cli_render_a_real_640x480_clip_with_the_saved_tiny_model(tiny_dir, tmp_path, capsys):
    """The README's path for a new user: ``save_tiny_pipeline(DIR)``, then ``ray32 render cup.mp4 --engine wan-vace
    --model-dir DIR``. The saved model takes the clip at the default working size (640x480 stays 640x480: 40x30
    tokens); the end-to-end render works at max_side 320 to keep the CPU VAE's time small."""
    import json
    import subprocess

    from flows.cli import main
    from ray32.engines.wan_vace import WanVaceEngine

    eng = WanVaceEngine(model_dir=tiny_dir)
    shot = open_shot(FOOTAGE / "cup.mp4", end="5f", detect_cuts=False)
    canvas = eng.canvas(shot, None)
    assert (canvas.geometry.width, canvas.geometry.height) == (640, 480)
    eng.check_fits(canvas, 81)          # the default working size and window fit the saved tiny model
    assert eng._pipe is None            # (read from its configs: no weights loaded)
    opts = tmp_path / "request.json"
    opts.write_text(json.dumps({"engine_options": {"steps": 1, "guidance": 1.0, "max_side": 320}}))
    rc = main(["render", str(FOOTAGE / "cup.mp4"), "--engine", "wan-vace", "--model-dir", str(tiny_dir),
               "--request", str(opts), "--prompt", "a cup on a wooden table", "--mode", "flex", "--end", "5f",
               "--out", "draft", "--out-dir", str(tmp_path / "out"), "--stem", "cup",
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0, capsys.readouterr().err
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames,width,height", "-of", "json", str(tmp_path / "out" / "cup_draft.mp4")],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (int(probe["nb_read_frames"]), probe["width"], probe["height"]) == (5, 640, 480)


def test_a_size_beyond_the_models_range_is_refused_before_any_encode(tiny_dir, tmp_path, capsys, monkeypatch):
    """A model whose positional range is 16 tokens per side cannot take 640x480 (40x30 tokens): one message naming
    the limit and the max_side that fits, before the weights are loaded or anything is encoded."""
    import json
    import shutil

    from flows.cli import main
    from ray32.engines import wan_vace

    small = tmp_path / "small-range"
    shutil.copytree(tiny_dir, small)
    cfg = json.loads((small / "transformer" / "config.json").read_text())
    (small / "transformer" / "config.json").write_text(json.dumps({**cfg, "rope_max_seq_len": 16}))
    loads = []
    monkeypatch.setattr(wan_vace, "load_pipeline", lambda *a, **k: loads.append(a) or 1 / 0)
    rc = main(["render", str(FOOTAGE / "cup.mp4"), "--engine", "wan-vace", "--model-dir", str(small),
               "--prompt", "a cup", "--end", "5f", "--out-dir", str(tmp_path / "out"),
               "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and not loads
    assert "640x480 is 40x30 tokens, beyond this model's positional range of 16" in err
    assert "engine_options['max_side'] to 256 or less" in err
    assert not (tmp_path / "cache" / "prepared").exists()
