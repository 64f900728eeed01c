"""Colour management: the one place that decides colour spaces. Every conversion goes through OpenColorIO's
built-in ACES config; this module holds no hand-written matrices or transfer formulas.

``SOURCE_SPACES`` maps a video's (transfer, primaries) tags to the config's colour space for its code values;
``LINEAR_SPACES`` maps primaries to the scene-linear space frames are decoded into when linear light is asked for.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ray32.errors import Ray32Error

CONFIG = "studio-config-latest"
"""OpenColorIO built-in config (ACES studio config); also has the HLG/PQ display spaces."""

WORKING_SPACE = "ACEScg"
"""Scene-linear working space of the engines and of EXR output."""

# (transfer tag, primaries tag) -> colour space of the code values. Unknown tags are treated as BT.709 video.
SOURCE_SPACES = {
    ("bt709", "bt709"): "Gamma 2.4 Encoded Rec.709",      # BT.1886 display of BT.709 video
    ("smpte170m", "bt709"): "Gamma 2.4 Encoded Rec.709",
    ("iec61966-2-1", "bt709"): "sRGB Encoded Rec.709 (sRGB)",
    ("smpte2084", "bt2020"): "Rec.2100-PQ - Display",
    ("arib-std-b67", "bt2020"): "Rec.2100-HLG - Display",
    ("smpte2084", "smpte432"): "ST2084-P3-D65 - Display",
}
LINEAR_SPACES = {"bt709": "Linear Rec.709 (sRGB)", "bt2020": "Linear Rec.2020", "smpte432": "Linear P3-D65"}


class ColorError(Ray32Error, ValueError):
    """A colour space request this config cannot serve."""


@lru_cache(maxsize=4)
def config():
    import PyOpenColorIO as OCIO

    return OCIO.Config.CreateFromBuiltinConfig(CONFIG)


def source_space(transfer: str, primaries: str) -> str:
    """The config's colour space for a video's tags (untagged video counts as BT.709)."""
    transfer = transfer if transfer not in ("unknown", "") else "bt709"
    primaries = primaries if primaries not in ("unknown", "") else ("bt2020" if transfer in ("smpte2084", "arib-std-b67") else "bt709")
    key = (transfer, primaries)
    if key in SOURCE_SPACES:
        return SOURCE_SPACES[key]
    if primaries == "bt709" or transfer in ("bt709", "smpte170m", "bt2020-10", "bt2020-12", "gamma22"):
        return SOURCE_SPACES[("bt709", "bt709")]
    raise ColorError(f"no colour space for transfer {transfer!r} with primaries {primaries!r}; "
                     f"known: {sorted(SOURCE_SPACES)}")


def processor(src: str, dst: str):
    """A CPU processor converting ``src`` -> ``dst`` (names from the config)."""
    cfg = config()
    names = {cs.getName() for cs in cfg.getColorSpaces()}
    for n in (src, dst):
        if n not in names:
            raise ColorError(f"colour space {n!r} is not in OCIO's {CONFIG}; available: {sorted(names)}")
    return cfg.getProcessor(src, dst).getDefaultCPUProcessor()


def apply(cpu, rgb: np.ndarray) -> np.ndarray:
    """Run a CPU processor over float32 RGB (any leading shape); returns a new array."""
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    flat = out.reshape(-1, 3)
    cpu.applyRGB(flat)
    return out


@lru_cache(maxsize=16)
def decode_lut(transfer: str, primaries: str, levels: int = 256) -> np.ndarray:
    """Code value (0..levels-1, full range) -> linear light float32, through OCIO: ``lut[img]`` linearises an
    RGB image of integer code values (a per-channel transfer, so one 1-D table serves all three channels)."""
    src = source_space(transfer, primaries)
    prim = primaries if primaries in LINEAR_SPACES else ("bt2020" if "2100" in src else "bt709")
    dst = LINEAR_SPACES[prim]
    ramp = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    rgb = np.repeat(ramp[:, None], 3, axis=1)
    lin = apply(processor(src, dst), rgb)[:, 0]  # neutral ramp: the three channels agree
    return lin.astype(np.float32)
