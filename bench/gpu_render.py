"""GPU benchmark of the wan-vace engine against diffusers' stock ``WanVACEPipeline`` call.

The real Wan2.1-VACE-1.3B architecture (transformer, VAE and UMT5-XXL text encoder from configs in code, random
weights: speed does not depend on weight values), 480x832, 81 frames, bf16 (VAE float32). Phases, each writing the
result file as it finishes (a run killed at its time limit keeps what it measured):

1. ``stock``: ``WanVACEPipeline(video=<edges control>, prompt, negative_prompt, ...)`` at S steps, guidance 5;
2. ``engine_eager``: this engine at the same S steps, guidance, full schedule and control, with the stock kernels
   (PyTorch's default attention, unfused projections): per-step time against stock is the fair ratio;
3. ``engine_fast``: + cuDNN attention (``_native_cudnn``) + fused QKV projections (the engine's CUDA defaults);
4. ``engine_compiled``: + regional compile of the repeated blocks;
5. ``draft``: the draft preset (8 steps, guidance on the first half, FirstBlockCache) with the best configuration;
6. ``campaign_4``: one ``prepare`` shared by four variants: the campaign ratio, and the cost against
   ``prepare + 4 x one variant's denoise``.

Reported: s/step, s/variant, peak VRAM per phase, transformer MFU against the GPU's dense bf16 peak (FLOPs counted
from the architecture), and the ratios measured side by side. Phases that would not fit the time budget
(``--budget-s``) are skipped and say so.

    python bench/gpu_render.py                 # on an H100/H200 -> bench/results/gpu_render.json
    python bench/gpu_render.py --smoke         # CPU, tiny config -> bench/results/gpu_render_cpu_smoke.json
    bash bench/device/run.sh                   # on the lent GPU machine: carried wheels, import check, this

The ``--smoke`` run proves the script end to end on a CPU; its numbers say nothing about GPU speed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import write_result  # noqa: E402

log = logging.getLogger("gpu_render")

BF16_PEAK_TFLOPS = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}
"""Dense bf16 tensor-core peaks (NVIDIA datasheets, without sparsity), matched against the device name."""

PROMPTS = [
    "a glass bottle of sparkling water on a sunlit beach at golden hour, warm light, shallow depth of field",
    "a glass bottle of sparkling water in a snowy pine forest at dawn, cold blue light, soft falling snow",
    "a glass bottle of sparkling water on a neon-lit city street at night, rain reflections, cinematic",
    "a glass bottle of sparkling water on a marble kitchen counter, morning window light, clean and bright",
]


class Skipped(Exception):
    """A phase left out with --skip."""


def peak_tflops(name: str) -> float | None:
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return BF16_PEAK_TFLOPS[key]
    return None


def transformer_flops(cfg, latent_shape: tuple[int, int, int], text_len: int) -> float:
    """Model FLOPs of one WanVACETransformer3DModel forward for one sample (matmuls + attention; 2 per MAC).

    ``latent_shape`` = (frames, height, width) of the latents; tokens = frames * (h/2) * (w/2).
    """
    t, h, w = latent_shape
    pt, ph, pw = cfg.patch_size
    n = (t // pt) * (h // ph) * (w // pw)
    d = cfg.num_attention_heads * cfg.attention_head_dim
    f = cfg.ffn_dim
    self_attn = 2 * n * d * d * 4 + 2 * 2 * n * n * d                  # q,k,v,o + QK^T and AV
    cross_attn = 2 * n * d * d * 2 + 2 * text_len * d * d * 2 + 2 * 2 * n * text_len * d
    ffn = 2 * n * d * f * 2
    block = self_attn + cross_attn + ffn
    vace = len(cfg.vace_layers) * (block + 2 * n * d * d) + 2 * n * d * d    # + proj_out each, proj_in once
    embed = 2 * n * d * (cfg.in_channels * pt * ph * pw) + 2 * n * d * (cfg.vace_in_channels * pt * ph * pw)
    out = 2 * n * d * (cfg.out_channels * pt * ph * pw)
    return float(cfg.num_layers * block + vace + embed + out)


def make_source(path: Path, frames: int, width: int, height: int) -> Path:
    """A synthetic source: a bright bottle-like shape moving over a textured background (H.264, 24 fps)."""
    import av

    rng = np.random.default_rng(0)
    base = rng.integers(30, 90, size=(height // 8, width // 8, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), np.uint8))[:height, :width]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "12"}
        for i in range(frames):
            f = base.copy()
            x = int(width * 0.2 + i * width * 0.5 / frames)
            f[height // 5: height * 4 // 5, x: x + width // 10] = (220, 200, 120)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


class Clock:
    """Wall time with the device synchronised, and peak memory per phase."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def sync(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def reset_peak(self):
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        if self.cuda:
            import torch

            return round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return None


def step_timer(clock: Clock):
    """A callback for the engine's progress / the pipeline's callback_on_step_end that records step times."""
    times = []

    def mark(*_):
        clock.sync()
        times.append(time.perf_counter())

    return times, mark


def per_step(times: list[float], start: float) -> float | None:
    """Median seconds per step (the first step, which may carry one-off work, is left out when there are more)."""
    stamps = [start] + times
    d = np.diff(stamps)
    if len(d) > 2:
        d = d[1:]
    return float(np.median(d)) if len(d) else None


def run_stock(pipe, control_pil, args, clock, steps: int, seed: int = 0) -> dict:
    import torch

    times, mark = step_timer(clock)

    def on_step(_pipe, _i, _t, kwargs):
        mark()
        return kwargs

    clock.reset_peak()
    clock.sync()
    t0 = time.perf_counter()
    pipe(video=control_pil, prompt=PROMPTS[0], negative_prompt=args.negative, height=args.height, width=args.width,
         num_frames=args.frames, num_inference_steps=steps, guidance_scale=args.guidance,
         generator=torch.Generator().manual_seed(seed), output_type="np", max_sequence_length=args.text_len,
         callback_on_step_end=on_step)
    clock.sync()
    total = time.perf_counter() - t0
    return {"s_per_variant": round(total, 3), "s_per_step": per_step(times, t0), "steps": steps,
            "peak_vram_gib": clock.peak_gib()}


def run_engine(engine, prepared, request, clock) -> dict:
    times, mark = step_timer(clock)
    clock.reset_peak()
    clock.sync()
    t0 = time.perf_counter()
    frames = sum(len(c) for c in engine.render(prepared, request, progress=lambda d, t: mark()))
    clock.sync()
    total = time.perf_counter() - t0
    return {"s_per_variant": round(total, 3), "s_per_step": per_step(times, t0), "steps": len(times),
            "frames": frames, "peak_vram_gib": clock.peak_gib()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU smoke run with the tiny config (proves the script)")
    ap.add_argument("--steps", type=int, default=None,
                    help="denoising steps for stock and engine (default 10; smoke 2)")
    ap.add_argument("--no-compile", action="store_true", help="skip the regional-compile configuration")
    ap.add_argument("--skip", default="", help="phases to leave out, comma separated: stock, draft, campaign")
    ap.add_argument("--budget-s", type=float, default=520.0,
                    help="wall-clock budget of the whole run: a phase that would not fit is skipped (default 520)")
    ap.add_argument("--out-dir", default=None, help="where the JSON goes (default bench/results)")
    args = ap.parse_args(argv)
    t_run = time.perf_counter()
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from ray32.engines.tiny_models import build_components
    from ray32.engines.wan_controls import control_video
    from ray32.engines.wan_vace import CUDA_ATTENTION, WanVaceEngine
    from ray32.request import RenderRequest
    from ray32.shot import open_shot, read_chunks, working_geometry

    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        print("no CUDA GPU here: run with --smoke for the CPU check, or on a GPU machine", file=sys.stderr)
        return 2
    clock = Clock(cuda)
    size = "tiny" if args.smoke else "1.3b"
    args.width, args.height, args.frames = (64, 32, 9) if args.smoke else (832, 480, 81)
    steps = args.steps or (2 if args.smoke else 10)
    args.guidance = 5.0
    args.text_len = 16 if args.smoke else 512
    args.negative = "bright tones, overexposed, static, blurred details, worst quality, low quality"
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    name = "gpu_render_cpu_smoke" if args.smoke else "gpu_render"
    results: dict = {
        "label": ("CPU SMOKE RUN with the tiny config: proves the script end to end; NOT the GPU benchmark"
                  if args.smoke else "GPU benchmark: Wan2.1-VACE-1.3B architecture, random weights"),
        "config": {"model": size, "width": args.width, "height": args.height, "frames": args.frames,
                   "steps": steps, "guidance": args.guidance, "dtype": str(dtype), "device": device,
                   "device_name": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                   "budget_s": args.budget_s},
        "goals": {"per_step_speedup_vs_stock_at_least": 1.3, "transformer_mfu_at_least": 0.45,
                  "draft_s_per_variant_at_most": 15.0,
                  "campaign_total_at_most_prepare_plus_n_denoise": "ratio <= 1.05"},
        "phases": {}, "errors": {}, "skipped": [], "complete": False,
    }
    peak = peak_tflops(results["config"]["device_name"]) if cuda else None
    results["config"]["bf16_peak_tflops"] = peak

    def save():
        results["elapsed_s"] = round(time.perf_counter() - t_run, 1)
        write_result(name, results, args.out_dir)

    def fits(phase: str, cost_s: float) -> bool:
        left = args.budget_s - (time.perf_counter() - t_run)
        if cost_s > left:
            results["skipped"].append(f"{phase}: about {cost_s:.0f} s needed, {left:.0f} s left in the budget")
            log.info("skipping %s (budget)", phase)
            save()
            return False
        return True

    log.info("building %s components on %s", size, device)
    t0 = time.perf_counter()
    from diffusers import WanVACEPipeline

    components = build_components(size, device=device, dtype=dtype)
    pipe = WanVACEPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    results["build_s"] = round(time.perf_counter() - t0, 1)
    cfg = pipe.transformer.config
    lat = ((args.frames - 1) // 4 + 1, args.height // 8, args.width // 8)
    flops_fwd = transformer_flops(cfg, lat, args.text_len)
    results["config"]["transformer_tflop_per_forward"] = float(f"{flops_fwd / 1e12:.6g}")
    save()

    def mfu(s_per_step, forwards_per_step=2):
        if not (peak and s_per_step):
            return None
        return round(flops_fwd * forwards_per_step / s_per_step / (peak * 1e12), 4)

    def phase(key, fn):
        try:
            out = fn()
            if out is not None:
                results["phases"][key] = out
                log.info("%s: %s", key, out)
        except Skipped as ex:
            results["skipped"].append(str(ex))
        except Exception as ex:  # record and go on: the other phases still say something
            results["errors"][key] = repr(ex)
            log.exception("%s failed", key)
        save()

    variant_s = [None]   # the last measured seconds per variant, for the budget

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_source(tmp / "source.mp4", args.frames, args.width, args.height)
        shot = open_shot(src, detect_cuts=False)
        geo = working_geometry(shot.width, shot.height, max_side=max(args.width, args.height), multiple=16)
        frames = np.concatenate([c.frames for c in read_chunks(shot, geometry=geo)])
        from PIL import Image

        control_pil = [Image.fromarray(f) for f in control_video(frames, "edges")]

        def stock_phase():
            if "stock" in skip:
                raise Skipped("stock")
            run_stock(pipe, control_pil, args, clock, steps=min(2, steps))   # warm-up: kernels, allocator
            st = run_stock(pipe, control_pil, args, clock, steps=steps)
            st["mfu"] = mfu(st["s_per_step"])
            variant_s[0] = st["s_per_variant"]
            return st

        phase("stock", stock_phase)

        def request(prompt, **opts):
            return RenderRequest(prompt=prompt, structure_adherence=1.0, motion_adherence=0.0,
                                 engine_options={"steps": steps, "guidance": args.guidance, "strength": 1.0,
                                                 "control": "edges", "conditioning_scale": 1.0,
                                                 "negative_prompt": args.negative, **opts})

        # Configurations build on each other (each changes the shared transformer in place).
        configs = [("engine_eager", {"attention_backend": None, "fuse_qkv": False}),
                   ("engine_fast", {"attention_backend": CUDA_ATTENTION if cuda else None, "fuse_qkv": True})]
        if cuda and not args.no_compile:
            configs.append(("engine_compiled", {"attention_backend": CUDA_ATTENTION, "fuse_qkv": True,
                                                "compile_blocks": True}))
        engines = {}

        def engine_phase(key, kw):
            def run():
                guess = 2.5 * (variant_s[0] or 0) + (120 if kw.get("compile_blocks") else 0)
                if not fits(key, guess):
                    return None
                eng = WanVaceEngine(pipeline=pipe, max_side=max(args.width, args.height), window=81, overlap=17, **kw)
                req0 = request(PROMPTS[0])
                clock.reset_peak()
                clock.sync()
                t = time.perf_counter()
                prepared = eng.prepare(shot, {**eng.prepare_settings(req0, shot), "cache_dir": str(tmp / key)})
                clock.sync()
                prep_s = time.perf_counter() - t
                warm = run_engine(eng, prepared, request(PROMPTS[0], steps=min(2, steps)), clock)  # compile/warm-up
                r = run_engine(eng, prepared, req0, clock)
                r.update(prepare_s=round(prep_s, 3), warmup_s=warm["s_per_variant"], mfu=mfu(r["s_per_step"]),
                         options={k: v for k, v in kw.items()})
                st = results["phases"].get("stock")
                if st and st.get("s_per_step") and r.get("s_per_step"):
                    r["per_step_speedup_vs_stock"] = round(st["s_per_step"] / r["s_per_step"], 3)
                    r["per_variant_speedup_vs_stock"] = round(st["s_per_variant"] / r["s_per_variant"], 3)
                variant_s[0] = r["s_per_variant"]
                engines[key] = (eng, r)
                return r
            return run

        for key, kw in configs:
            phase(key, engine_phase(key, kw))

        if engines:
            best_key = min(engines, key=lambda k: engines[k][1]["s_per_variant"])
            results["best_engine_config"] = best_key
            eng = engines[list(engines)[-1]][0]   # the transformer keeps the last configuration
            results["draft_and_campaign_run_with"] = list(engines)[-1]

            def draft_phase():
                if "draft" in skip:
                    raise Skipped("draft")
                if not fits("draft", 1.5 * (variant_s[0] or 0)):
                    return None
                prepared = eng.prepare(shot, {**eng.prepare_settings(request(PROMPTS[0]), shot),
                                              "cache_dir": str(tmp / "draft")})
                draft = RenderRequest(prompt=PROMPTS[1], structure_adherence=1.0, motion_adherence=0.0,
                                      engine_options={"preset": "draft", "strength": 1.0, "control": "edges",
                                                      "negative_prompt": args.negative})
                run_engine(eng, prepared, draft, clock)          # warm-up of the cache hook's paths
                r = run_engine(eng, prepared, draft, clock)
                r["goal_met"] = r["s_per_variant"] <= results["goals"]["draft_s_per_variant_at_most"]
                return r

            phase("draft", draft_phase)

            def campaign_phase():
                if "campaign" in skip:
                    raise Skipped("campaign")
                if not fits("campaign_4", 5 * (variant_s[0] or 0)):
                    return None
                clock.sync()
                t = time.perf_counter()
                prepared = eng.prepare(shot, {**eng.prepare_settings(request(PROMPTS[0]), shot),
                                              "cache_dir": str(tmp / "campaign")})
                clock.sync()
                prep_s = time.perf_counter() - t
                variants = [run_engine(eng, prepared, request(p), clock) for p in PROMPTS]
                total = prep_s + sum(v["s_per_variant"] for v in variants)
                one = float(np.median([v["s_per_variant"] for v in variants]))
                camp = {"prepare_s": round(prep_s, 3), "variants_s": [v["s_per_variant"] for v in variants],
                        "total_s": round(total, 3), "prepare_plus_4_denoise_s": round(prep_s + 4 * one, 3),
                        "ratio_to_prepare_plus_4_denoise": round(total / (prep_s + 4 * one), 3),
                        "peak_vram_gib": max((v["peak_vram_gib"] or 0) for v in variants) or None}
                st = results["phases"].get("stock")
                if st:
                    camp["stock_4_calls_s_estimated"] = round(4 * st["s_per_variant"], 3)
                    camp["campaign_speedup_vs_4_stock_calls"] = round(4 * st["s_per_variant"] / total, 3)
                return camp

            phase("campaign_4", campaign_phase)

    results["complete"] = True
    save()
    print(f"wrote {Path(args.out_dir or 'bench/results') / (name + '.json')}")
    return 0 if not results["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
