"""The wan-vace engine against diffusers' stock ``WanVACEPipeline.__call__`` on the tiny eval-mode model.

With neutral settings (no locks, no keyframes, strength 1, the same seed, prompt, negative prompt, steps, guidance
and control video) the engine's loop must be the stock loop: its final latents and decoded frames equal the
pipeline's. Tolerances: latents within 1e-4 (float32 reordering; measured about 1e-6), decoded frames within one
code value of 0..255. Cases: classifier-free guidance 5, CFG 1 (no negative branch), and one reference image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ray32.request import RenderRequest
from ray32.shot import open_shot

LATENT_TOL = 1e-4
FRAME_TOL = 1.0


@pytest.fixture(scope="module")
def pipe():
    from ray32.engines.tiny_models import build_pipeline

    return build_pipeline("tiny", seed=0)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    from tests.test_engine_wan_vace import make_clip

    return open_shot(make_clip(tmp_path_factory.mktemp("eq") / "clip.mp4", 9), detect_cuts=False)


def engine_run(pipe, shot, request, cache_dir):
    """The engine's final latents (1, 16, t, h, w) and working-size frames, captured at its decode."""
    from ray32.engines.wan_vace import WanVaceEngine

    eng = WanVaceEngine(pipeline=pipe, max_side=32, window=9, overlap=5)
    seen = {}
    real = eng.decode

    def decode(lat):
        seen["latents"] = lat.detach().clone()
        seen["frames"] = real(lat)
        return seen["frames"]

    eng.decode = decode
    prepared = eng.prepare(shot, {**eng.prepare_settings(request, shot), "cache_dir": str(cache_dir)})
    list(eng.render(prepared, request))
    return eng, prepared, seen


def stock_run(pipe, eng, prepared, request, *, guidance, reference=None):
    """diffusers' pipeline on the same control video (the engine's edges of the source at the working size)."""
    import torch
    from PIL import Image

    from ray32.engines.wan_controls import DEFAULT_NEGATIVE, control_video

    canvas = eng.canvas(prepared.shot, None, 32)
    geo = canvas.geometry
    control = control_video(eng._source_frames(prepared.shot, 0, 9, canvas), "edges")
    kw = dict(video=[Image.fromarray(f) for f in control], prompt=request.prompt, negative_prompt=DEFAULT_NEGATIVE,
              height=geo.height, width=geo.width, num_frames=9, num_inference_steps=3, guidance_scale=guidance,
              conditioning_scale=1.0)
    if reference is not None:
        kw["reference_images"] = [Image.open(reference).convert("RGB")]
    lat = pipe(**kw, generator=torch.Generator().manual_seed(request.seed), output_type="latent").frames
    video = pipe(**kw, generator=torch.Generator().manual_seed(request.seed), output_type="np").frames[0]
    r = 0 if reference is None else 1
    return lat[:, :, r:], video * 255.0


def neutral(**kw):
    opts = {"steps": 3, "strength": 1.0, "control": "edges", "conditioning_scale": 1.0, "guidance": 5.0,
            **kw.pop("engine_options", {})}
    return RenderRequest(prompt="a golden bottle on a beach at sunset", seed=11, engine_options=opts, **kw)


@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_engine_equals_the_stock_pipeline(pipe, shot, tmp_path, guidance):
    request = neutral(engine_options={"guidance": guidance})
    eng, prepared, seen = engine_run(pipe, shot, request, tmp_path)
    lat, video = stock_run(pipe, eng, prepared, request, guidance=guidance)
    ours = seen["latents"].float()
    assert ours.shape == lat.shape
    assert float((ours - lat.float()).abs().max()) < LATENT_TOL
    assert float(lat.float().std()) > 0.1   # not a trivially equal pair
    assert np.abs(seen["frames"] - video).max() <= FRAME_TOL


def test_engine_with_a_reference_image_equals_the_stock_pipeline(pipe, shot, tmp_path):
    from PIL import Image

    ref = np.zeros((40, 30, 3), np.uint8)
    ref[5:35, 5:25] = (200, 30, 30)
    path = tmp_path / "product.png"
    Image.fromarray(ref).save(path)
    # a lock whose polygon lies outside the frame keeps nothing: only its reference image acts
    lock = {"kind": "product", "polygon": [[-20, -20], [-10, -20], [-10, -10]], "reference": str(path)}
    request = neutral(locks=[lock])
    eng, prepared, seen = engine_run(pipe, shot, request, tmp_path / "cache")
    lat, video = stock_run(pipe, eng, prepared, request, guidance=5.0, reference=path)
    assert float((seen["latents"].float() - lat.float()).abs().max()) < LATENT_TOL
    assert np.abs(seen["frames"] - video).max() <= FRAME_TOL
    plain_eng, _, plain = engine_run(pipe, shot, neutral(), tmp_path / "cache")
    assert float((plain["latents"] - seen["latents"]).abs().max()) > 100 * LATENT_TOL   # the reference acts


def test_tiny_models_are_in_eval_mode(pipe):
    """UMT5 has dropout: a model left in train mode gives two different embeddings for one prompt."""
    assert not any(m.training for m in (pipe.transformer, pipe.vae, pipe.text_encoder))
    a, _ = pipe.encode_prompt("a bottle", do_classifier_free_guidance=False, max_sequence_length=16)
    b, _ = pipe.encode_prompt("a bottle", do_classifier_free_guidance=False, max_sequence_length=16)
    assert bool((a == b).all())


def test_fused_qkv_projections_keep_the_result(shot, tmp_path):
    """The speed option fused QKV (default on CUDA) computes the same model: equal latents within tolerance."""
    from ray32.engines.tiny_models import build_pipeline
    from ray32.engines.wan_vace import WanVaceEngine

    plain = build_pipeline("tiny", seed=0)
    fused = build_pipeline("tiny", seed=0)
    WanVaceEngine(pipeline=fused, fuse_qkv=True)
    assert all(getattr(m, "fused_projections", False) for m in fused.transformer.modules() if hasattr(m, "to_q"))
    _, _, a = engine_run(plain, shot, neutral(), tmp_path / "a")
    _, _, b = engine_run(fused, shot, neutral(), tmp_path / "b")
    assert float((a["latents"] - b["latents"]).abs().max()) < LATENT_TOL
