"""Wan2.1-VACE pipelines built from configs in code: a tiny random-weight one for tests and CPU smoke runs, and the
real 1.3B architecture with random weights for GPU benchmarks (speed does not depend on the weight values).

No machine here can download weights, so the generative engine is proven the way diffusers tests its pipelines:
a transformer, a VAE and a UMT5 text encoder from small configs under a fixed seed, and a tokenizer built with the
``tokenizers`` library. ``save_tiny_pipeline(folder)`` writes the same folder layout as a Hugging Face checkpoint
(``model_index.json`` + one sub-folder per component), which is what ``--model-dir`` reads.

Example:
    >>> from ray32.engines.tiny_models import save_tiny_pipeline
    >>> save_tiny_pipeline("build/tiny-wan-vace")          # doctest: +SKIP
    >>> # ray32 render shot.mp4 --engine wan-vace --model-dir build/tiny-wan-vace --prompt "..."
"""

from __future__ import annotations

import os
import string
from pathlib import Path

# The real Wan2.1-VACE-1.3B architecture (Wan-AI/Wan2.1-VACE-1.3B-diffusers, transformer/config.json).
WAN_VACE_1_3B_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=1024, vace_layers=list(range(0, 30, 2)), vace_in_channels=96,
)
# Its VAE is diffusers' AutoencoderKLWan default (base_dim 96, z_dim 16, dim_mult [1, 2, 4, 4], 2 res blocks).
WAN_VACE_1_3B_VAE: dict = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                               temperal_downsample=[False, True, True])
# google/umt5-xxl encoder (the text encoder every Wan2.1 checkpoint ships).
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                dense_act_fn="gelu_new", is_gated_act=True, tie_word_embeddings=False)

TINY_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
    text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    rope_max_seq_len=1024, vace_layers=[0, 2], vace_in_channels=96,
)
"""The tiny transformer keeps the real model's positional range (``rope_max_seq_len`` 1024 patches per axis), so a
tiny model saved for ``--model-dir`` takes any clip the real one takes (640x480 at the default working size)."""
TINY_VAE = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
TINY_UMT5 = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                 relative_attention_max_distance=16, feed_forward_proj="gated-gelu", dense_act_fn="gelu_new",
                 is_gated_act=True, tie_word_embeddings=False)

FLOW_SHIFT_480P = 3.0
"""Wan's recommended flow shift for 480p (5.0 for 720p)."""


def build_tokenizer():
    """A small UMT5-style (Unigram, SentencePiece-like) tokenizer built with the ``tokenizers`` library.

    Every printable ASCII character is a piece (with and without the word-start marker), so any prompt tokenizes
    without unknown tokens; anything else becomes ``<unk>``.

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if not c.isspace()]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + c, -3.0) for c in chars] + [(c, -4.0) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)


def build_components(size: str = "tiny", *, seed: int = 0, device=None, dtype=None) -> dict:
    """Transformer, VAE, text encoder, tokenizer and scheduler of a Wan2.1-VACE pipeline with random weights.

    Args:
        size: ``"tiny"`` (a few thousand parameters; CPU tests) or ``"1.3b"`` (the real Wan2.1-VACE-1.3B
            architecture and UMT5-XXL; for GPU benchmarks).
        seed: torch seed for the random weights.
        device: where to build the weights (``"cuda"`` builds the large models on the GPU directly).
        dtype: parameter dtype of the transformer and text encoder (the VAE stays float32).

    Returns:
        ``dict`` with the ``WanVACEPipeline`` constructor's keyword arguments.

    Raises:
        ValueError: an unknown ``size``.
    """
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACETransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    if size not in ("tiny", "1.3b"):
        raise ValueError(f"size must be 'tiny' or '1.3b', got {size!r}")
    tiny = size == "tiny"
    tokenizer = build_tokenizer()
    umt5 = dict(TINY_UMT5, vocab_size=max(len(tokenizer), 64)) if tiny else dict(UMT5_XXL)
    device = torch.device(device or "cpu")
    with torch.device(device):
        torch.manual_seed(seed)
        vae = AutoencoderKLWan(**(TINY_VAE if tiny else WAN_VACE_1_3B_VAE))
        torch.manual_seed(seed)
        text_encoder = UMT5EncoderModel(UMT5Config(**umt5, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
        torch.manual_seed(seed)
        transformer = WanVACETransformer3DModel(**(TINY_TRANSFORMER if tiny else WAN_VACE_1_3B_TRANSFORMER))
    if tiny:
        _responsive_vae(vae, seed=seed)
    else:
        # Random weights at the real scale: keep activations bounded so timings never meet inf/NaN slow paths.
        with torch.no_grad():
            for p in transformer.parameters():
                if p.ndim >= 2:
                    p.normal_(0.0, 0.02)
    if dtype is not None:
        _cast(transformer, dtype)
        _cast(text_encoder, dtype)
    for model in (vae, text_encoder, transformer):  # inference: no dropout (UMT5 has it), as from_pretrained gives
        model.eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=FLOW_SHIFT_480P)
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": scheduler}


def _cast(model, dtype) -> None:
    """Cast a model's weights to ``dtype`` except the modules it keeps in float32 (as ``from_pretrained`` does)."""
    import torch

    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point():
            t.data = t.data.to(torch.float32 if keep & set(name.split(".")) else dtype)


def _responsive_vae(vae, *, seed: int, gain: float = 0.7) -> None:
    """Re-initialise the tiny VAE's convolutions (Kaiming normal x ``gain``) so that it passes differences through.

    With PyTorch's default init every decoded frame of a tiny random VAE is the same grey within about one code
    value whatever the latents are, which would hide whether a control acts; this keeps outputs unsaturated
    (std about 0.25 in -1..1) while different latents give clearly different pictures.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in vae.modules():
            if isinstance(m, (torch.nn.Conv3d, torch.nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (gain * (2.0 / fan_in) ** 0.5))


def build_pipeline(size: str = "tiny", *, seed: int = 0, device=None, dtype=None):
    """A ``diffusers.WanVACEPipeline`` from ``build_components`` (same arguments)."""
    from diffusers import WanVACEPipeline

    return WanVACEPipeline(**build_components(size, seed=seed, device=device, dtype=dtype))


def save_tiny_pipeline(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Wan2.1-VACE pipeline in the Hugging Face folder layout (for ``--model-dir``).

    Args:
        folder: the destination; created if needed, written through a temporary sibling and renamed.
        seed: torch seed for the random weights.

    Returns:
        The folder.
    """
    import shutil
    import tempfile

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        build_pipeline("tiny", seed=seed).save_pretrained(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
