"""The generative engine: Wan2.1-VACE through diffusers, with every direction control.

``prepare`` does the per-shot work once (tracks when a lock needs them; per window of up to 81 frames: the
source's VAE latents, the latents of each control video a variant asks for, made once per kind, and of an empty
clip; all kept in the prepare cache entry) and ``render`` does only what differs per variant: text encoding
(cached per prompt), denoising and decoding (plus small encodes of a variant's own guide and reference images and
of the previous window's tail). The conditioning of a window is composed in latent space from those per-shot
latents and the variant's masks, so no variant re-encodes the source. How each control maps:

=========================  =========================================================================================
control                    what the engine does
=========================  =========================================================================================
structure adherence s      control video made in ``prepare`` (edges when s >= 0.5, coarse layout below) fed to every
                           VACE layer with ``conditioning_scale = s`` (0: the control is ignored)
motion adherence m         flow (m >= 0.5) or grayscale control when m > s; the denoising starts from the source's
                           latents noised to ``strength = 1 - 0.6 m`` of the schedule (1 = pure noise; with no
                           explicit m, the mode preset's strength)
keyframes                  the guide is placed at its exact frame in VACE's context (mask 0 = keep; the context
                           encoded from masked pixels as diffusers does) and its latent frame blended toward the
                           guide's latents every step; the decoded frame is then replaced by the guide (exact),
                           neighbours cross-faded over ``keyframe_fade`` frames (``post_pass``).
                           A keyframe prompt becomes the prompt of the windows whose middle lies at or after it
locks (face/product/       kept mask regions (polygons per frame from the tracks or the lock's polygon): VACE's
label/region)              inactive/reactive context encoded from the masked source and control pixels (diffusers'
                           ``prepare_video_latents``), the source's latents blended into them during denoising, and a
                           final composite of the source pixels (locked pixels equal the source)
lock reference images      VACE reference images (prepended latent frames, as diffusers' pipeline does)
mode adhere/flex/reimagine presets for the two adherences and the strength (``ray32.request.PRESETS``); explicit
                           values win
grade                      the composite engine's relight by grade (``ray32.grade``), after generation
draft preset               ``engine_options['preset'] = 'draft'``: 8 steps, guidance on the first half of them,
                           diffusers' FirstBlockCache inside ``transformer.cache_context``
reframe (outpaint)         the source sits in a canvas of the target aspect; the padding is mask 1 with no control
                           and starts from the empty clip's latents noised to the first sigma, so the model invents
                           it; output at the canvas size
label swap                 the label lock post-pass (``ray32.label_lock``) over the generated frames
clips over one window      overlapping windows (81 frames, 17 shared); each window keeps the previous window's last
                           frames in its context and latents, is colour-matched to it and cross-faded over the shared
                           frames; one window's CPU post-pass runs while the next one denoises
=========================  =========================================================================================

With neutral settings (nothing kept, strength 1) the loop equals diffusers' ``WanVACEPipeline.__call__``
(``tests/test_engine_wan_equivalence.py``). Before any encode, ``check_fits`` holds the request against the model's
limits (positional range, patch and VAE multiples, 4k+1 frames). Weights come from ``model_dir`` (a diffusers
folder) or the Hugging Face cache (``local_files_only``): nothing is downloaded. bf16 on CUDA (the VAE stays
float32) with cuDNN attention and fused QKV projections, float32 on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ray32.engines import ENGINES
from ray32.engines.base import Cancel, Engine, EngineError, Prepared, Progress, prepare_tracks
from ray32.engines.wan_controls import (CONTROL_KINDS, ControlError, Plan, WindowJoiner, box_polygon, control_video,
                                        grow_quad, outpaint_canvas, plan_windows, polygon_mask, resolve_plan,
                                        temporal_pool, vace_mask, valid_length)
from ray32.engines.wan_controls import _OPTIONS as ENGINE_OPTIONS
from ray32.errors import Ray32Error
from ray32.shot import Geometry, Shot, read_chunks, working_geometry

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
"""The checkpoint looked up in the Hugging Face cache when no ``model_dir`` is given."""

GET_WEIGHTS = (f"get the weights on a machine with internet access with `hf download {DEFAULT_MODEL_ID} "
               "--local-dir DIR` (or `huggingface-cli download ...`), copy DIR here and pass --model-dir DIR")


class ModelNotFoundError(Ray32Error):
    """No Wan2.1-VACE weights where the engine looked."""


# ------------------------------------------------------------------------------------------------- loading

def find_model(model_dir: str | os.PathLike | None = None) -> Path:
    """The folder of a diffusers Wan2.1-VACE checkpoint.

    Args:
        model_dir: a folder with ``model_index.json``; None looks for ``DEFAULT_MODEL_ID`` in the Hugging Face
            cache (``$HF_HUB_CACHE``) without any network access.

    Returns:
        The folder.

    Raises:
        ModelNotFoundError: names where it looked and how to get the weights.
    """
    if model_dir is not None:
        folder = Path(model_dir).expanduser()
        if not (folder / "model_index.json").is_file():
            what = "does not exist" if not folder.exists() else "has no model_index.json"
            raise ModelNotFoundError(f"no Wan2.1-VACE model in {folder} ({what}); {GET_WEIGHTS}")
        return folder
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(DEFAULT_MODEL_ID, local_files_only=True))
    except Exception as ex:  # LocalEntryNotFoundError and friends: not in the cache
        raise ModelNotFoundError(
            f"no --model-dir given and {DEFAULT_MODEL_ID} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); {GET_WEIGHTS}") from ex


WEIGHTED_COMPONENTS = ("transformer", "vae", "text_encoder")
"""Components whose folder must hold weights (``*.safetensors`` or ``*.bin``) besides their ``config.json``."""


def check_model(model_dir: str | os.PathLike | None = None) -> Path:
    """``find_model``, then check that every component ``model_index.json`` names is there, without loading any.

    Returns:
        The folder.

    Raises:
        ModelNotFoundError: what was looked for and where (the folder, each missing file), and how to get it.
    """
    import json

    folder = find_model(model_dir)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as ex:
        raise ModelNotFoundError(f"the model in {folder} has an unreadable model_index.json ({ex}); {GET_WEIGHTS}")
    missing = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/")
            continue
        if name in WEIGHTED_COMPONENTS:
            if not (sub / "config.json").is_file():
                missing.append(f"{name}/config.json")
            if not any(sub.glob("*.safetensors")) and not any(sub.glob("*.bin")):
                missing.append(f"{name}/*.safetensors")
    for name in WEIGHTED_COMPONENTS:
        if name not in index:
            missing.append(f"{name} (in model_index.json)")
    if missing:
        raise ModelNotFoundError(f"the Wan2.1-VACE model in {folder} is incomplete: missing {', '.join(missing)}; "
                                 f"{GET_WEIGHTS}")
    return folder


CUDA_ATTENTION = "_native_cudnn"
"""The attention backend used on CUDA unless told otherwise: PyTorch's cuDNN SDPA kernel through diffusers' dispatcher
(fast on Hopper, in the PyTorch wheel itself: nothing to download)."""


def load_pipeline(model_dir: str | os.PathLike | None = None, *, device: str | None = None, dtype=None,
                  attention_backend: str | None = "auto", compile_blocks: bool = False, fuse_qkv: bool | None = None):
    """Load ``diffusers.WanVACEPipeline`` from a local folder (never the network).

    Args:
        model_dir: see ``find_model``.
        device: ``"cuda"``, ``"cpu"``; None picks CUDA when present.
        dtype: transformer and text-encoder dtype; None: bfloat16 on CUDA, float32 on CPU. The VAE is float32.
        attention_backend: a diffusers attention backend name (``"_native_cudnn"``, ``"flash"``, ``"sage"``...);
            ``"auto"``: ``CUDA_ATTENTION`` on CUDA, PyTorch's default elsewhere; None: PyTorch's default.
        compile_blocks: ``torch.compile`` the transformer's repeated blocks (regional compile).
        fuse_qkv: fuse each self-attention's q, k, v projections (and cross-attention's k, v) into one matmul;
            None: on CUDA.

    Returns:
        The pipeline on ``device``.

    Raises:
        ModelNotFoundError: no weights there.
    """
    import torch
    from diffusers import AutoencoderKLWan, WanVACEPipeline

    folder = find_model(model_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", dtype=torch.float32, local_files_only=True)
    pipe = WanVACEPipeline.from_pretrained(folder, vae=vae, dtype=dtype, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    configure_transformer(pipe.transformer, attention_backend=attention_backend, compile_blocks=compile_blocks,
                          fuse_qkv=fuse_qkv)
    pipe._ray32_model_dir = folder  # noqa: SLF001 (the engine keys its prepare cache on these weights)
    return pipe


def configure_transformer(transformer, *, attention_backend: str | None = None, compile_blocks: bool = False,
                          fuse_qkv: bool | None = None):
    """Speed options of the transformer (see ``load_pipeline``): the attention backend (``"auto"``: cuDNN on CUDA),
    fused QKV projections (None: on CUDA) and the regional compile of the repeated blocks."""
    cuda = next(transformer.parameters()).device.type == "cuda"
    if attention_backend == "auto":
        attention_backend = CUDA_ATTENTION if cuda else None
    if fuse_qkv is None:
        fuse_qkv = cuda
    if fuse_qkv:
        for module in transformer.modules():
            if hasattr(module, "fuse_projections") and hasattr(module, "to_q"):
                module.fuse_projections()
    if attention_backend:
        try:
            transformer.set_attention_backend(attention_backend)
        except Exception as ex:  # an unknown backend or a missing kernel package
            raise EngineError(f"attention backend {attention_backend!r} is not usable here: {ex}") from ex
    if compile_blocks:
        transformer.compile_repeated_blocks(fullgraph=True)
    return transformer


def _weights_tag(folder: Path | None) -> str:
    """A short fingerprint of the VAE weights (the prepared latents depend on them)."""
    if folder is None:
        return "in-memory"
    h = hashlib.sha256()
    for f in sorted((folder / "vae").glob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}".encode())
            if st.st_size <= 64 * 2**20:
                h.update(f.read_bytes())
            else:
                with open(f, "rb") as fh:
                    h.update(fh.read(2**20))
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- the engine

@dataclasses.dataclass(frozen=True)
class Canvas:
    """Where the model works: the working size, and where the source sits in it (outpainting)."""

    aspect: str | None          # None: the source's own frame
    out_width: int              # output size (source pixels)
    out_height: int
    x0: int                     # the source's top-left in the output canvas
    y0: int
    src_width: int
    src_height: int
    geometry: Geometry          # output canvas <-> working frame


class WanVaceEngine(Engine):
    """Wan2.1-VACE video-to-video with the Ray-3.2 controls (see the module docstring).

    Args:
        model_dir: diffusers folder of the weights (None: the Hugging Face cache).
        pipeline: an already built ``WanVACEPipeline`` (tests, benchmarks); ``model_dir`` is then not read.
        device, dtype, attention_backend, compile_blocks, fuse_qkv: see ``load_pipeline`` (defaults: cuDNN attention
            and fused QKV on CUDA).
        max_side: longest side of the working frames (832 = Wan's 480p).
        window, overlap: frames per model window (1 + 4k) and frames shared by consecutive windows.
    """

    name = "wan-vace"
    options = tuple(sorted(ENGINE_OPTIONS))
    version = ENGINES["wan-vace"].version
    prepare_version = "2"   # control videos drawn as VACE's annotators draw them

    def __init__(self, model_dir: str | os.PathLike | None = None, *, pipeline=None, device: str | None = None,
                 dtype=None, attention_backend: str | None = "auto", compile_blocks: bool = False,
                 fuse_qkv: bool | None = None, max_side: int = 832, window: int = 81, overlap: int = 17):
        plan_windows(window + 1, window, overlap)  # validates window and overlap early
        self.model_dir = model_dir
        self._pipe = pipeline
        self.device = device
        self.dtype = dtype
        self.attention_backend = attention_backend
        self.compile_blocks = compile_blocks
        self.fuse_qkv = fuse_qkv
        self.max_side = max_side
        self.window = window
        self.overlap = overlap
        self._prompts: OrderedDict[str, Any] = OrderedDict()
        self._tag: str | None = None
        self._limits: dict | None = None
        if pipeline is not None:
            configure_transformer(pipeline.transformer, attention_backend=attention_backend,
                                  compile_blocks=compile_blocks, fuse_qkv=fuse_qkv)

    # ------------------------------------------------------------------------------------------ model access

    @property
    def pipe(self):
        """The ``WanVACEPipeline`` (loaded on first use)."""
        if self._pipe is None:
            self._pipe = load_pipeline(self.model_dir, device=self.device, dtype=self.dtype,
                                       attention_backend=self.attention_backend, compile_blocks=self.compile_blocks,
                                       fuse_qkv=self.fuse_qkv)
        return self._pipe

    def model_tag(self) -> str:
        """Fingerprint of the weights the prepared latents depend on."""
        if self._tag is None:
            if self._pipe is not None and not hasattr(self._pipe, "_ray32_model_dir"):
                self._tag = f"memory-{id(self._pipe):x}-{os.getpid()}"
            else:
                folder = getattr(self._pipe, "_ray32_model_dir", None) or find_model(self.model_dir)
                self._tag = _weights_tag(Path(folder))
        return self._tag

    @property
    def _device(self):
        return self.pipe._execution_device  # noqa: SLF001

    @property
    def _spatial(self) -> int:
        lim = self.model_limits()
        return lim["vae_spatial"] * lim["patch"]

    def model_limits(self) -> dict:
        """What the model can take, from its configs (no weights are loaded for this): ``patch`` (pixels of latent
        per token side), ``vae_spatial`` and ``vae_temporal`` (the VAE's factors), ``positions`` (the rotary
        embedding's range: tokens per axis, ``rope_max_seq_len``)."""
        if self._limits is None:
            if self._pipe is not None:
                t_cfg, v_cfg = dict(self._pipe.transformer.config), dict(self._pipe.vae.config)
            else:
                import json

                folder = find_model(self.model_dir)
                try:
                    t_cfg = json.loads((folder / "transformer" / "config.json").read_text())
                    v_cfg = json.loads((folder / "vae" / "config.json").read_text())
                except (OSError, ValueError) as ex:
                    raise ModelNotFoundError(f"the model in {folder} is incomplete: {ex}; {GET_WEIGHTS}") from ex
            down = v_cfg.get("temperal_downsample", [False, True, True])
            self._limits = {"patch": int(t_cfg.get("patch_size", (1, 2, 2))[1]),
                            "patch_t": int(t_cfg.get("patch_size", (1, 2, 2))[0]),
                            "vae_spatial": 2 ** len(down), "vae_temporal": 2 ** sum(bool(d) for d in down),
                            "positions": int(t_cfg.get("rope_max_seq_len", 1024))}
        return self._limits

    def check_fits(self, canvas: Canvas, window: int, references: int = 0) -> None:
        """Check a working size and window against ``model_limits`` before any encode.

        Raises:
            ControlError: what does not fit and what to change (``max_side``, a smaller window).
        """
        lim = self.model_limits()
        geo = canvas.geometry
        cell = lim["vae_spatial"] * lim["patch"]
        problems = []
        if geo.width % cell or geo.height % cell:
            problems.append(f"the working size {geo.width}x{geo.height} is not a multiple of {cell} pixels (VAE x "
                            "patch)")
        tokens = (geo.width // cell, geo.height // cell)
        if max(tokens) > lim["positions"]:
            longest = max(canvas.out_width, canvas.out_height)
            fit = lim["positions"] * cell
            problems.append(f"the working size {geo.width}x{geo.height} is {tokens[0]}x{tokens[1]} tokens, beyond "
                            f"this model's positional range of {lim['positions']} per side (rope_max_seq_len): set "
                            f"engine_options['max_side'] to {min(fit, longest)} or less")
        if (window - 1) % lim["vae_temporal"]:
            problems.append(f"window {window} is not 1 + {lim['vae_temporal']}k frames")
        latent_frames = (window - 1) // lim["vae_temporal"] + 1 + references
        if latent_frames > lim["positions"]:
            most = (lim["positions"] - 1 - references) * lim["vae_temporal"] + 1
            problems.append(f"a window of {window} frames is {latent_frames} latent frames, beyond this model's "
                            f"positional range of {lim['positions']}: set engine_options['window'] to {most} or less")
        if problems:
            raise ControlError("this model cannot take the request: " + "; ".join(problems))

    # ----------------------------------------------------------------------------------------------- prepare

    def prepare_settings(self, request, shot: Shot) -> dict:
        """Tracks only when a lock needs them; the working size, windows and weights (the cache key); and, outside
        the key, which control kinds and outpainting canvases to compute now (``wan_eager``)."""
        settings = super().prepare_settings(request, shot)
        settings["faces"] = any(lock.kind == "face" for lock in request.locks)
        plan = resolve_plan(request)
        opts = request.engine_options
        window, overlap = opts.get("window", self.window), opts.get("overlap", self.overlap)
        plan_windows(window + 1, window, overlap)  # a bad window or overlap fails here, with its value
        max_side = opts.get("max_side", self.max_side)
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 16:
            raise ControlError(f"engine_options['max_side'] must be an integer >= 16 (pixels), got {max_side!r}")
        settings["wan"] = {"max_side": max_side, "window": window, "overlap": overlap, "model": self.model_tag()}
        canvas = request.reframe.aspect if request.reframe is not None and request.reframe.method == "outpaint" \
            else None
        # The model's limits, before any encode: the working size and window this request asks for.
        refs = sum(lock.reference is not None for lock in request.locks)
        for aspect in {None, canvas}:
            self.check_fits(self.canvas(shot, aspect, max_side), min(window, valid_length(shot.frame_count)), refs)
        settings["wan_eager"] = {"controls": [plan.control], "canvases": [canvas]}
        return settings

    def prepare(self, shot: Shot, settings: dict | None = None, progress: Progress | None = None) -> Prepared:
        """``Engine.prepare`` (tracks, the source's latents; cached on disk), then the control latents a request
        needs (``settings['wan_eager']``): each kind and canvas is encoded once per shot and kept in the cache
        entry, so variants asking for other controls add to the same entry instead of preparing again."""
        settings = dict(settings or {})
        eager = settings.pop("wan_eager", None) or {"controls": [], "canvases": [None]}
        prepared = super().prepare(shot, settings, progress=progress)
        for aspect in eager.get("canvases", [None]):
            canvas = self.canvas(shot, aspect, (prepared.settings.get("wan") or {}).get("max_side"))
            for w in range(len(self._windows(prepared))):
                for kind in ["source", *eager.get("controls", []), "empty"]:
                    self._latent(prepared, canvas, kind, w)
        return prepared

    def compute_prepared(self, shot: Shot, settings: dict, key: str, progress: Progress | None = None) -> Prepared:
        """Tracks (when asked), then per window the source's and an empty clip's latents."""
        track, faces = None, None
        if settings.get("label") is not None or settings.get("faces"):
            track, faces = prepare_tracks(shot, settings, progress=None)
        prepared = Prepared(shot=shot, key=key, settings=settings, label_track=track, face_boxes=faces)
        canvas = self.canvas(shot, None, (settings.get("wan") or {}).get("max_side"))
        windows = self._windows(prepared)
        for w in range(len(windows)):
            self._latent(prepared, canvas, "source", w)
            self._latent(prepared, canvas, "empty", w)
            if progress:
                progress(w + 1, len(windows))
        return prepared

    def canvas(self, shot: Shot, aspect: str | None, max_side: int | None = None) -> Canvas:
        """The working canvas for the source's frame (``aspect`` None) or an outpainting aspect like ``"9:16"``,
        at most ``max_side`` pixels on its long side (default: the engine's)."""
        from fractions import Fraction

        max_side = max_side or self.max_side
        if aspect is None:
            geo = working_geometry(shot.width, shot.height, max_side=max_side, multiple=self._spatial)
            return Canvas(None, shot.width, shot.height, 0, 0, shot.width, shot.height, geo)
        a, b = aspect.split(":")
        cw, ch, x0, y0 = outpaint_canvas(shot.width, shot.height, Fraction(int(a), int(b)))
        geo = working_geometry(cw, ch, max_side=max_side, multiple=self._spatial)
        return Canvas(aspect, cw, ch, x0, y0, shot.width, shot.height, geo)

    def _windows(self, prepared: Prepared) -> list[tuple[int, int]]:
        wan = prepared.settings.get("wan") or {}
        return plan_windows(prepared.frame_count, wan.get("window", self.window), wan.get("overlap", self.overlap))

    def _source_frames(self, shot: Shot, start: int, stop: int, canvas: Canvas) -> np.ndarray:
        """Source frames ``start..stop`` (trim-relative) placed in the canvas, at working size, uint8."""
        import cv2

        sub = dataclasses.replace(shot, first=shot.first + start, stop=shot.first + stop)
        geo = canvas.geometry
        if canvas.aspect is None:
            return np.concatenate([c.frames for c in read_chunks(sub, geometry=geo, chunk_frames=32)])
        # The source's rectangle inside the working canvas; the rest is mid-grey (VACE's "nothing here").
        x0, y0, x1, y1 = self._source_rect(canvas)
        near = working_geometry(shot.width, shot.height, max_width=x1 - x0 + 1, max_height=y1 - y0 + 1)
        out = []
        for c in read_chunks(sub, geometry=near, chunk_frames=32):
            for f in c.frames:
                frame = np.full((geo.height, geo.width, 3), 127, np.uint8)
                frame[y0:y1, x0:x1] = cv2.resize(f, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
                out.append(frame)
        return np.stack(out)

    def _control_frames(self, shot: Shot, start: int, stop: int, canvas: Canvas, kind: str) -> np.ndarray:
        """The control video of frames ``start..stop`` at working size; mid-grey (no signal) outside the source
        when outpainting."""
        if kind not in CONTROL_KINDS:
            raise ControlError(f"unknown control kind {kind!r}")
        ctrl = control_video(self._source_frames(shot, start, stop, canvas), kind)
        if canvas.aspect is not None:
            x0, y0, x1, y1 = self._source_rect(canvas)
            grey = np.full_like(ctrl, 127)
            grey[:, y0:y1, x0:x1] = ctrl[:, y0:y1, x0:x1]
            ctrl = grey
        return ctrl

    def _source_rect(self, canvas: Canvas) -> tuple[int, int, int, int]:
        """The source's rectangle (x0, y0, x1, y1) inside the working canvas."""
        geo = canvas.geometry
        s = geo.scaled_width / geo.src_width
        x0, y0 = round(canvas.x0 * s) + geo.pad_left, round(canvas.y0 * s) + geo.pad_top
        return x0, y0, x0 + round(canvas.src_width * s), y0 + round(canvas.src_height * s)

    def _latent(self, prepared: Prepared, canvas: Canvas, kind: str, w: int) -> np.ndarray:
        """Per-shot latents, computed once and kept (in memory, in the prepare cache): ``kind`` is ``"source"``,
        a control kind or ``"empty"`` (a mid-grey clip, VACE's "no content" value)."""
        start, stop = self._windows(prepared)[w]
        n = valid_length(stop - start)
        name = f"lat_{kind}_{(canvas.aspect or 'src').replace(':', 'x')}_" + (f"n{n}" if kind == "empty" else f"w{w}")
        if name in prepared.extras:
            return prepared.extras[name]
        path = prepared.cache_dir / f"{name}.npy" if prepared.cache_dir is not None else None
        if path is not None and path.is_file():
            prepared.extras[name] = np.load(path)
            return prepared.extras[name]
        geo = canvas.geometry
        if kind == "empty":
            pixels = np.full((n, geo.height, geo.width, 3), 127.5, np.float32)
        elif kind == "source":
            pixels = _pad_frames(self._source_frames(prepared.shot, start, stop, canvas), n)
        else:
            pixels = _pad_frames(self._control_frames(prepared.shot, start, stop, canvas, kind), n)
        lat = self.encode(pixels)
        prepared.extras[name] = lat
        if path is not None and prepared.cache_dir.exists():
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial.npy")  # one writer per process
            np.save(tmp, lat)
            os.replace(tmp, path)
        return lat

    # ------------------------------------------------------------------------------------------------ model I/O

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Frames (n, h, w, 3) 0..255 -> normalised VAE latents (16, 1 + (n-1)//4, h/8, w/8) float32."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frames, np.float32)).to(self._device)
        return self._encode_normalised((x / 127.5 - 1.0).permute(3, 0, 1, 2)[None])

    def _encode_normalised(self, x) -> np.ndarray:
        """A (1, 3, n, h, w) tensor in -1..1 -> normalised VAE latents (16, t, h/8, w/8) float32."""
        import torch

        vae = self.pipe.vae
        x = x.to(self._device, vae.dtype)
        with torch.no_grad():
            lat = vae.encode(x).latent_dist.mode()
        mean, inv_std = self._latent_stats(lat)
        return ((lat.float() - mean) * inv_std)[0].cpu().numpy()

    def decode(self, lat) -> np.ndarray:
        """Normalised latents (1, 16, t, h, w) tensor -> frames (n, H, W, 3) float32 0..255."""
        import torch

        vae = self.pipe.vae
        mean, inv_std = self._latent_stats(lat)
        with torch.no_grad():
            video = vae.decode((lat.float() / inv_std + mean).to(vae.dtype), return_dict=False)[0]
        video = ((video[0].float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 3, 0)
        return video.cpu().numpy()

    def _latent_stats(self, like):
        import torch

        cfg = self.pipe.vae.config
        mean = torch.tensor(cfg.latents_mean, device=like.device, dtype=torch.float32).view(1, cfg.z_dim, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(cfg.latents_std, device=like.device, dtype=torch.float32).view(
            1, cfg.z_dim, 1, 1, 1)
        return mean, inv_std

    def encode_prompt(self, prompt: str, max_sequence_length: int = 512):
        """Text embeddings of one prompt, cached (a campaign repeats its negative prompt in every variant)."""
        import torch

        key = f"{max_sequence_length}:{prompt}"
        if key in self._prompts:
            self._prompts.move_to_end(key)
            return self._prompts[key]
        with torch.no_grad():
            emb, _ = self.pipe.encode_prompt(prompt=prompt, do_classifier_free_guidance=False,
                                             max_sequence_length=max_sequence_length, device=self._device)
        emb = emb.to(self.pipe.transformer.dtype)
        self._prompts[key] = emb
        while len(self._prompts) > 32:
            self._prompts.popitem(last=False)
        return emb

    # ------------------------------------------------------------------------------------------------- render

    def output_size(self, prepared: Prepared, request) -> tuple[int, int]:
        canvas = self._request_canvas(prepared, request)
        return canvas.out_width, canvas.out_height

    def _request_canvas(self, prepared: Prepared, request) -> Canvas:
        if request.reframe is None:
            return self.canvas(prepared.shot, None, (prepared.settings.get("wan") or {}).get("max_side"))
        if request.reframe.method != "outpaint":
            raise EngineError(f"wan-vace reframes by outpainting; reframe method {request.reframe.method!r} is the "
                              "composite engine's: use method 'outpaint' here or render with --engine composite")
        return self.canvas(prepared.shot, request.reframe.aspect, (prepared.settings.get("wan") or {}).get("max_side"))

    def render(self, prepared: Prepared, request, progress: Progress | None = None,
               cancel: Cancel | None = None) -> Iterator[np.ndarray]:
        """Stream one variant (see the module docstring for what each control does).

        Args:
            prepared: from ``prepare`` (any variant of the same shot can use it).
            request: a ``RenderRequest``; wan-vace reads ``engine_options`` ``steps``, ``guidance``,
                ``guidance_steps``, ``conditioning_scale``, ``strength``, ``control``, ``lock_blend``,
                ``keyframe_fade``, ``negative_prompt``, ``preset`` ("draft").
            progress: ``progress(done_steps, total_steps)`` over all windows.
            cancel: polled every denoising step; True stops the stream without error.

        Yields:
            (n, H, W, 3) uint8 RGB chunks at ``output_size``, ``prepared.frame_count`` frames in all.

        Raises:
            ControlError, EngineError, RequestError: the request does not fit this engine or shot.
        """
        # 1. Check inputs (everything that can fail does so before any model work)
        plan = resolve_plan(request)
        shot = prepared.shot
        canvas = self._request_canvas(prepared, request)
        keyframes = request.resolve_keyframes(shot.fps, shot.frame_count)
        guides = {k.frame: _read_image(k.guide, canvas.out_width, canvas.out_height) for k in keyframes if k.guide}
        lock_polys = self._lock_polygons(prepared, request)
        references = [_read_image(lock.reference) for lock in request.locks if lock.reference is not None]
        artwork = None
        if request.label_swap is not None:
            from ray32.label_lock import load_artwork

            if prepared.label_track is None:
                raise EngineError("the request swaps a label but the prepared shot has no label track; prepare it "
                                  "with engine.prepare_settings(request, shot)")
            artwork = load_artwork(request.label_swap.artwork)
        grader = None
        if request.grade is not None:
            from ray32.color import source_space
            from ray32.grade import Grader

            keys = request.resolve_grade_keys(shot.fps, shot.frame_count) or [(0, request.grade.values())]
            grader = Grader(keys, source_space(shot.info.color_transfer, shot.info.color_primaries),
                            request.grade.lut)
        stream = self._generate(prepared, request, plan, canvas, keyframes, guides, lock_polys, references,
                                progress, cancel)
        # 7. The label lock, then the grade: the same post-passes, in the same order, as the composite engine
        if artwork is not None:
            from ray32.label_lock import apply_label_lock

            track = prepared.label_track
            if canvas.x0 or canvas.y0:
                off = np.array([canvas.x0, canvas.y0], np.float64)
                track = dataclasses.replace(track, corners=track.corners + off,
                                            ref_corners=np.asarray(track.ref_corners) + off)
            stream = apply_label_lock(stream, track, artwork, transfer=shot.info.color_transfer,
                                      primaries=shot.info.color_primaries, fps=shot.fps,
                                      visibility=self.label_visibility(prepared, request))
        try:
            i = 0
            for chunk in stream:
                if grader is not None:
                    for k in range(len(chunk)):
                        grader.apply(i + k, chunk[k])
                i += len(chunk)
                yield chunk
        finally:
            if grader is not None:
                grader.close()

    def _generate(self, prepared, request, plan, canvas, keyframes, guides, lock_polys, references, progress,
                  cancel) -> Iterator[np.ndarray]:
        """The model's part of ``render``: windows denoised, decoded, joined; locks and keyframes composited."""
        shot = prepared.shot
        windows = self._windows(prepared)
        total_steps = len(windows) * _steps_run(plan)
        done_steps = 0
        generator_seed = int(request.seed)

        # 2. Encode prompts (cached across variants)
        negative = self.encode_prompt(plan.negative_prompt) if plan.guidance > 1 else None
        ref_latents = [self._encode_reference(img, canvas) for img in references]

        joiner = WindowJoiner(shot.frame_count)
        post = _PostPass(self, prepared, canvas, guides if plan.post_pass else {},
                         lock_polys if plan.post_pass else [], plan)
        tail: tuple[int, np.ndarray] | None = None  # (start, frames) of the previous window's output

        def on_step(_i, _n):
            nonlocal done_steps
            done_steps += 1
            if progress:
                progress(done_steps, total_steps)

        # The CPU post-pass of one window runs in a thread while the next window denoises.
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wan-post")
        pending = None
        try:
            with self._draft_cache(plan):
                for w, (start, stop) in enumerate(windows):
                    cond = self.encode_prompt(_window_prompt(request.prompt, keyframes, start, stop))
                    lat = self._window(prepared, plan, canvas, w, start, stop, keyframes, guides, lock_polys, tail,
                                       ref_latents, cond, negative, generator_seed, on_step, cancel)
                    if lat is None:  # cancelled: what is finished still comes out
                        if pending is not None:
                            yield from pending.result()
                        return
                    if pending is not None:
                        yield from pending.result()
                        pending = None
                    # 6. Decode; drop the padding frames; join with the previous window
                    frames = self.decode(lat)[: stop - start]
                    next_start = windows[w + 1][0] if w + 1 < len(windows) else None
                    if next_start is not None:
                        tail = (next_start, frames[next_start - start:].copy())
                    final = joiner.add(start, frames, next_start)
                    if len(final):
                        pending = pool.submit(lambda f=final, at=joiner.emitted - len(final): list(post.apply(at, f)))
                if pending is not None:
                    yield from pending.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _window(self, prepared, plan, canvas, w, start, stop, keyframes, guides, lock_polys, tail, ref_latents,
                cond, negative, seed, on_step, cancel):
        """Conditioning and denoising of one window: latents (1, 16, t, h, w), or None when cancelled."""
        inputs = self._window_inputs(prepared, canvas, plan, w, start, stop, keyframes, guides, lock_polys, tail,
                                     ref_latents)
        return self._denoise(inputs, plan, cond, negative, seed=seed + 7919 * w, on_step=on_step, cancel=cancel)

    # ---------------------------------------------------------------------------------------------- pieces

    def _lock_polygons(self, prepared: Prepared, request) -> list[np.ndarray]:
        """Per lock, per frame, a polygon in source pixels ((n, k, 2) with NaN where the lock is absent)."""
        n = prepared.frame_count
        out = []
        for i, lock in enumerate(request.locks, 1):
            if lock.polygon is not None:
                out.append(np.repeat(np.asarray(lock.polygon, np.float64)[None], n, axis=0))
            elif lock.kind == "face":
                if prepared.face_boxes is None:
                    raise EngineError(f"lock {i} (face) needs face tracks; prepare the shot with "
                                      "engine.prepare_settings(request, shot)")
                polys = [box_polygon(b, grow=1.15) for b in prepared.face_boxes]
                out.append(np.stack([p if p is not None else np.full((4, 2), np.nan) for p in polys]))
            elif lock.kind in ("label", "product"):
                if prepared.label_track is None:
                    raise EngineError(f"lock {i} ({lock.kind}) without a polygon follows the tracked label; give "
                                      "the request a label_swap (its corners start the track) or a polygon")
                grow = 1.1 if lock.kind == "label" else 1.8
                corners = np.stack([grow_quad(q, grow) for q in prepared.label_track.corners])
                corners[~prepared.label_track.valid] = np.nan
                out.append(corners)
        return out

    def _keep_pixels(self, canvas: Canvas, lock_polys: list[np.ndarray], frames: range, feather: int = 0
                     ) -> np.ndarray:
        """(n, H, W) float mask at the OUTPUT canvas size: 1 where a lock keeps the source."""
        import cv2

        h, w = canvas.out_height, canvas.out_width
        out = np.zeros((len(frames), h, w), np.float32)
        for k, i in enumerate(frames):
            for polys in lock_polys:
                p = polys[i]
                if np.all(np.isfinite(p)):
                    out[k] = np.maximum(out[k], polygon_mask(h, w, p + [canvas.x0, canvas.y0]))
            if feather and out[k].any():
                grown = cv2.dilate(out[k], np.ones((2 * feather + 1,) * 2, np.uint8))
                soft = cv2.GaussianBlur(grown, (0, 0), feather / 2)
                out[k] = np.maximum(out[k], soft)
        return out

    def _keep_working(self, canvas: Canvas, lock_polys: list[np.ndarray], frames: range) -> np.ndarray:
        """Lock masks (n, h, w) at the working size, drawn there directly (never a window at output size)."""
        geo = canvas.geometry
        out = np.zeros((len(frames), geo.height, geo.width), np.float32)
        off = np.array([canvas.x0, canvas.y0], np.float64)
        for k, i in enumerate(frames):
            for polys in lock_polys:
                p = polys[i]
                if np.all(np.isfinite(p)):
                    # pixel-centre coordinates: map the pixel edges (half a pixel off) and back
                    q = geo.to_working(p + off + 0.5) - 0.5
                    out[k] = np.maximum(out[k], polygon_mask(geo.height, geo.width, q))
        return out

    def _encode_static(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A still image -> (first-frame latent, latent of a 4-frame group showing it), each (16, h, w)."""
        lat = self.encode(np.repeat(image[None].astype(np.float32), 5, axis=0))
        return lat[:, 0], lat[:, 1]

    def _encode_reference(self, image: np.ndarray, canvas: Canvas) -> np.ndarray:
        """A reference image as diffusers' ``preprocess_conditions`` makes it (its image processor, then a bilinear
        fit centred on white)."""
        import torch
        from PIL import Image

        geo = canvas.geometry
        x = self.pipe.video_processor.preprocess(Image.fromarray(image), None, None)   # (1, 3, h, w) in -1..1
        h, w = x.shape[-2:]
        s = min(geo.height / h, geo.width / w)
        nh, nw = max(1, int(h * s)), max(1, int(w * s))
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)[0]
        frame = torch.ones(3, geo.height, geo.width)
        y0, x0 = (geo.height - nh) // 2, (geo.width - nw) // 2
        frame[:, y0:y0 + nh, x0:x0 + nw] = x
        return self._encode_normalised(frame[None, :, None])[:, 0]

    def _window_inputs(self, prepared, canvas, plan: Plan, w, start, stop, keyframes, guides, lock_polys, tail,
                       ref_latents) -> dict:
        """Everything the denoising loop needs for one window, as latent-space arrays."""
        import cv2

        n = valid_length(stop - start)
        src = self._latent(prepared, canvas, "source", w)
        ctrl = self._latent(prepared, canvas, plan.control, w)
        empty = self._latent(prepared, canvas, "empty", w)
        geo = canvas.geometry
        t, lh, lw = src.shape[1:]
        # Pixel "keep" mask (1 = keep); the model's mask is 1 - keep.
        keep = np.zeros((n, geo.height, geo.width), np.float32)
        keep[: stop - start] = self._keep_working(canvas, lock_polys, range(start, stop))
        keep_content = src.copy()                             # latents of what is kept (source by default)
        frame_keep = np.zeros(n, bool)                        # whole frames kept (keyframes, previous tail)
        frame_pixels: dict[int, np.ndarray] = {}              # their pixels (working size) for VACE's context
        content_override: dict[int, np.ndarray] = {}
        for k in keyframes:
            if k.guide is not None and start <= k.frame < stop:
                i = k.frame - start
                frame_keep[i] = True
                pixels = _to_working(guides[k.frame], geo).astype(np.float32)
                frame_pixels[i] = pixels
                first, group = self._encode_static(pixels)
                content_override[0 if i == 0 else (i + 3) // 4] = first if i == 0 else group
        if tail is not None and tail[0] == start:
            c = len(tail[1])
            c_enc = 1 + 4 * ((c - 1) // 4)   # whole latent frames only; the rest is cross-faded by the joiner
            frame_keep[:c_enc] = True
            for i in range(c_enc):
                frame_pixels[i] = tail[1][i]
            tail_lat = self.encode(tail[1][:c_enc])
            for j in range(tail_lat.shape[1]):
                content_override[j] = tail_lat[:, j]
        keep[frame_keep] = 1.0
        for j, lat in content_override.items():
            keep_content[:, j] = lat
        # Latent-frame masks: time = max over each 4-frame group (a kept frame's whole latent frame is the guide
        # or the tail); space = area average for blending, VACE's space-to-depth for the model.
        keep_t = temporal_pool(keep)
        for j in content_override:
            keep_t[j] = 1.0
        keep_lat = np.stack([cv2.resize(m, (lw, lh), interpolation=cv2.INTER_AREA) for m in keep_t])
        keep_lat = keep_lat[None].astype(np.float32)                       # (1, t, lh, lw)
        if keep.any():
            inactive, reactive = self._masked_context(prepared, canvas, plan, start, stop, keep, frame_pixels)
        else:  # nothing kept: VACE's context is the empty clip and the control video, both made in prepare
            inactive, reactive = empty, ctrl
        mask = vace_mask(1.0 - keep_t, self.pipe.vae_scale_factor_spatial)   # (64, t, lh, lw)
        inside = None
        if canvas.aspect is not None:  # the padding starts from the empty clip, the source area from the source
            x0, y0, x1, y1 = self._source_rect(canvas)
            box = np.zeros((geo.height, geo.width), np.float32)
            box[y0:y1, x0:x1] = 1
            inside = cv2.resize(box, (lw, lh), interpolation=cv2.INTER_AREA)[None, None]
        return {"control": np.concatenate([inactive, reactive, mask], 0)[None], "source": src[None],
                "empty": empty[None], "keep": keep_lat[None], "keep_content": keep_content[None], "inside": inside,
                "references": ref_latents, "frames": n}

    def _masked_context(self, prepared, canvas, plan: Plan, start: int, stop: int, keep: np.ndarray,
                        frame_pixels: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """VACE's inactive and reactive latents as diffusers' ``prepare_video_latents`` makes them: the pixel
        video (the source, with kept whole frames replaced by their guide or the previous window's tail) masked by
        the binary keep mask, grey elsewhere, and the control video masked by its complement, each VAE-encoded."""
        n = len(keep)
        src = _pad_frames(self._source_frames(prepared.shot, start, stop, canvas), n)
        for i, frame in frame_pixels.items():
            src[i] = frame
        ctrl = _pad_frames(self._control_frames(prepared.shot, start, stop, canvas, plan.control), n)
        kept = (keep > 0.5)[..., None]
        grey = np.float32(127.5)                       # 0 in -1..1: what diffusers' video * (1 - mask) leaves
        return self.encode(np.where(kept, src, grey)), self.encode(np.where(kept, grey, ctrl))

    def _cache_context(self, name: str):
        """``transformer.cache_context(name)`` while a cache hook is on (the draft preset), else nothing."""
        import contextlib

        transformer = self.pipe.transformer
        if getattr(transformer, "is_cache_enabled", False):
            return transformer.cache_context(name)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _draft_cache(self, plan: Plan):
        """The draft preset's diffusers cache hook (FirstBlockCache: when the first block's residual barely changes
        from the previous step, the other blocks' cached residual is reused) on for one render, then off again."""
        transformer = self.pipe.transformer
        on = plan.draft and plan.cache_threshold > 0 and hasattr(transformer, "enable_cache") \
            and not transformer.is_cache_enabled
        if on:
            from diffusers import FirstBlockCacheConfig

            transformer.enable_cache(FirstBlockCacheConfig(threshold=plan.cache_threshold))
        try:
            yield
        finally:
            if on:
                transformer.disable_cache()

    def _denoise(self, inputs: dict, plan: Plan, cond, negative, *, seed: int, on_step, cancel):
        """The denoising loop of one window; returns latents (1, 16, t, h, w) or None when cancelled."""
        import torch

        pipe = self.pipe
        device = self._device
        tdtype = pipe.transformer.dtype
        refs = inputs["references"]
        r = len(refs)
        control = torch.from_numpy(inputs["control"]).to(device)
        if r:
            ref = torch.from_numpy(np.stack(refs, 1)[None]).to(device)            # (1, 16, r, h, w)
            ref_ctrl = torch.cat([ref, torch.zeros_like(ref), torch.zeros(1, 64, r, *ref.shape[3:],
                                                                           device=device)], 1)
            control = torch.cat([ref_ctrl, control], 2)
        control = control.to(tdtype)
        source = torch.from_numpy(inputs["source"]).to(device)
        keep = torch.from_numpy(inputs["keep"]).to(device)
        keep_content = torch.from_numpy(inputs["keep_content"]).to(device)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        shape = (1, 16, r + source.shape[2], *source.shape[3:])
        noise = torch.randn(shape, generator=gen, dtype=torch.float32).to(device)

        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        scheduler.set_timesteps(plan.steps, device=device)
        sigmas = scheduler.sigmas.float()
        t_start = min(int(round(plan.steps * (1.0 - plan.strength))), plan.steps - 1)
        timesteps = scheduler.timesteps[t_start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(t_start)
        sigma0 = float(sigmas[t_start])
        lat = noise.clone()
        body = lat[:, :, r:]
        start_from = source
        if inputs["inside"] is not None:  # outpainting: the padding is the empty clip, noised like the rest
            inside = torch.from_numpy(inputs["inside"]).to(device)
            start_from = inside * source + (1 - inside) * torch.from_numpy(inputs["empty"]).to(device)
        start_from = (1 - sigma0) * start_from + sigma0 * noise[:, :, r:]
        body.copy_(start_from)
        scale = torch.full((len(pipe.transformer.config.vace_layers),), plan.conditioning_scale, device=device,
                           dtype=tdtype)
        n_steps = len(timesteps)
        cfg_steps = int(np.ceil(n_steps * plan.guidance_steps)) if plan.guidance > 1 else 0
        blend_steps = int(np.ceil(n_steps * plan.lock_blend)) if bool(keep.any()) else 0  # nothing kept: no blend
        if cfg_steps:  # conditional and unconditional branches as one batch of two
            text2, control2 = torch.cat([cond, negative]), torch.cat([control, control])
        if getattr(pipe.transformer, "is_cache_enabled", False):
            pipe.transformer._reset_stateful_cache()  # noqa: SLF001 (each window starts its own cache)
        for i, t in enumerate(timesteps):
            if cancel is not None and cancel():
                return None
            x = lat.to(tdtype)
            with torch.no_grad():
                if i < cfg_steps:
                    with self._cache_context("cfg"):
                        pred = pipe.transformer(hidden_states=torch.cat([x, x]), timestep=t.expand(2),
                                                encoder_hidden_states=text2, control_hidden_states=control2,
                                                control_hidden_states_scale=scale, return_dict=False)[0]
                    pc, pu = pred.float().chunk(2)
                    pred = pu + plan.guidance * (pc - pu)
                else:
                    with self._cache_context("cond"):
                        pred = pipe.transformer(hidden_states=x, timestep=t.expand(1), encoder_hidden_states=cond,
                                                control_hidden_states=control, control_hidden_states_scale=scale,
                                                return_dict=False)[0].float()
            lat = scheduler.step(pred, t, lat, return_dict=False)[0]
            if i < blend_steps:  # kept regions follow the kept content along the noise schedule
                s_next = float(sigmas[t_start + i + 1])
                target = (1 - s_next) * keep_content + s_next * noise[:, :, r:]
                lat[:, :, r:] = keep * target + (1 - keep) * lat[:, :, r:]
            on_step(i, n_steps)
        return lat[:, :, r:]


class _PostPass:
    """After the model: back to the output size, the source composited into locks, guides placed exactly at
    their keyframes (neighbours cross-faded), and the label lock."""

    def __init__(self, engine: WanVaceEngine, prepared: Prepared, canvas: Canvas, guides: dict[int, np.ndarray],
                 lock_polys: list[np.ndarray], plan: Plan):
        self.engine = engine
        self.prepared = prepared
        self.canvas = canvas
        self.guides = guides
        self.lock_polys = lock_polys
        self.plan = plan

    def apply(self, first: int, frames: np.ndarray, chunk: int = 16) -> Iterator[np.ndarray]:
        """Working-size float frames ``first..`` -> output-size uint8 chunks of at most ``chunk`` frames."""
        for k in range(0, len(frames), chunk):
            yield self._apply(first + k, frames[k:k + chunk])

    def _apply(self, first: int, frames: np.ndarray) -> np.ndarray:
        c = self.canvas
        out = c.geometry.restore(np.clip(frames, 0, 255)).astype(np.float32)
        idx = range(first, first + len(out))
        if self.lock_polys:
            keep = self.engine._keep_pixels(c, self.lock_polys, idx, feather=2)[..., None]
            src = self._source(first, len(out))
            out = out * (1 - keep) + src * keep
        fade = self.plan.keyframe_fade
        for k, guide in self.guides.items():
            for i in idx:
                d = abs(i - k)
                if d <= fade:
                    a = 1.0 - d / (fade + 1)
                    out[i - first] = out[i - first] * (1 - a) + guide * a
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def _source(self, first: int, n: int) -> np.ndarray:
        shot = self.prepared.shot
        sub = dataclasses.replace(shot, first=shot.first + first, stop=shot.first + first + n)
        frames = np.concatenate([ch.frames for ch in read_chunks(sub, chunk_frames=32)]).astype(np.float32)
        c = self.canvas
        if c.aspect is None:
            return frames
        out = np.zeros((n, c.out_height, c.out_width, 3), np.float32)
        out[:, c.y0:c.y0 + shot.height, c.x0:c.x0 + shot.width] = frames
        return out


def _steps_run(plan: Plan) -> int:
    return len(range(min(int(round(plan.steps * (1.0 - plan.strength))), plan.steps - 1), plan.steps))


def _window_prompt(prompt: str, keyframes, start: int, stop: int) -> str:
    """The base prompt, or the latest keyframe prompt at or before the window's middle."""
    middle = (start + stop - 1) / 2
    chosen = prompt
    for k in keyframes:
        if k.prompt and k.frame <= middle:
            chosen = k.prompt
    return chosen


def _pad_frames(frames: np.ndarray, n: int) -> np.ndarray:
    """Frames padded to ``n`` by repeating the last one (the model takes 1 + 4k frames), as float32."""
    frames = np.asarray(frames, np.float32)
    if len(frames) < n:
        frames = np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), axis=0)])
    return frames


def _read_image(path, width: int | None = None, height: int | None = None) -> np.ndarray:
    """An RGB image file as uint8 (resized to width x height when given)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if width is not None and im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.LANCZOS)
            return np.asarray(im, np.uint8).copy()
    except FileNotFoundError as ex:
        raise EngineError(f"image {path} does not exist; check the path") from ex
    except (UnidentifiedImageError, OSError) as ex:
        raise EngineError(f"image {path} cannot be read as a picture ({ex}); use PNG or JPEG") from ex


def _to_working(image: np.ndarray, geo: Geometry) -> np.ndarray:
    """An output-size image -> working size (scaled and padded like the source)."""
    import cv2

    img = cv2.resize(image, (geo.scaled_width, geo.scaled_height), interpolation=cv2.INTER_AREA)
    return geo.pad(img)
