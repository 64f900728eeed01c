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


# ------------------------------------------------------------------------------------------- output encodings
#
# Light levels. In the config's display spaces linear 1.0 is 100 nits ('Rec.2100-PQ - Display' encodes 1.0 as the
# PQ code of 100 cd/m2; tests/test_export.py checks this against published PQ/HLG values). The working space has
# no absolute scale: for an SDR source 1.0 is SDR (diffuse) white; for an HDR source it is 100 nits. An SDR source
# going to HDR is therefore scaled by 203/100 so that its white sits at 203 nits (ITU-R BT.2408 reference white,
# 75 % HLG, 58 % PQ); an HDR source keeps its levels; an HDR source going to SDR is scaled by 100/203 and clipped.

SDR_WHITE_NITS = 203
"""HDR reference white (ITU-R BT.2408): where SDR white lands in an HDR output."""

DISPLAY_NITS_PER_UNIT = 100
"""Nits of linear 1.0 in the config's PQ/HLG display spaces."""

PQ_SPACE = "Rec.2100-PQ - Display"
HLG_SPACE = "Rec.2100-HLG - Display"
SDR_SPACE = SOURCE_SPACES[("bt709", "bt709")]
HDR_SPACES = frozenset({PQ_SPACE, HLG_SPACE, "ST2084-P3-D65 - Display"})

# Colour space -> (primaries, transfer, matrix) tags written into a video stream (ffprobe's names).
VIDEO_TAGS = {
    SDR_SPACE: ("bt709", "bt709", "bt709"),
    "sRGB Encoded Rec.709 (sRGB)": ("bt709", "iec61966-2-1", "bt709"),
    PQ_SPACE: ("bt2020", "smpte2084", "bt2020nc"),
    HLG_SPACE: ("bt2020", "arib-std-b67", "bt2020nc"),
    "ST2084-P3-D65 - Display": ("smpte432", "smpte2084", "bt2020nc"),
}


def is_hdr(space: str) -> bool:
    """Whether code values in ``space`` are HDR (PQ or HLG)."""
    return space in HDR_SPACES


def white_scale(source_space: str, output_space: str) -> float:
    """Linear gain between a source's encoding and an output's: SDR->HDR 203/100, HDR->SDR 100/203, else 1."""
    src_hdr = is_hdr(source_space)
    dst_hdr = is_hdr(output_space)
    if dst_hdr and not src_hdr:
        return SDR_WHITE_NITS / DISPLAY_NITS_PER_UNIT
    if src_hdr and not dst_hdr:
        return DISPLAY_NITS_PER_UNIT / SDR_WHITE_NITS
    return 1.0


def transform(src: str, dst: str, *, scale: float = 1.0):
    """An OCIO transform ``src`` -> working space -> gain ``scale`` -> ``dst`` (the gain is OCIO's own
    ``MatrixTransform.Scale``, applied in linear light)."""
    import PyOpenColorIO as OCIO

    names = {cs.getName() for cs in config().getColorSpaces()}
    for n in (src, dst):
        if n not in names:
            raise ColorError(f"colour space {n!r} is not in OCIO's {CONFIG}; available: {sorted(names)}")
    group = OCIO.GroupTransform()
    if src != WORKING_SPACE:
        group.appendTransform(OCIO.ColorSpaceTransform(src, WORKING_SPACE))
    if scale != 1.0:
        group.appendTransform(OCIO.MatrixTransform.Scale([scale, scale, scale, 1.0]))
    if dst != WORKING_SPACE:
        group.appendTransform(OCIO.ColorSpaceTransform(WORKING_SPACE, dst))
    return group


TABLE_MIN_PIXELS = 1 << 26
"""Writers tabulate an 8-bit conversion (``Converter.use_table``) when a stream has at least this many pixels
(about 32 frames of 1080p): below that, converting frame by frame is quicker than building the table."""

_BIT_DEPTHS = {"uint8": "BIT_DEPTH_UINT8", "uint16": "BIT_DEPTH_UINT16", "float16": "BIT_DEPTH_F16",
               "float32": "BIT_DEPTH_F32"}


class Converter:
    """Converts frames (n, h, w, 3) between two colour spaces of the config with OCIO, from/to integer code
    values (full range: uint8 0..255, uint16 0..65535) or float (float32 in, float16/float32 out).

    Args:
        src, dst: colour space names of the config (``WORKING_SPACE`` for linear float frames).
        scale: linear gain applied in the working space (see ``white_scale``).
        out_dtype: numpy dtype of the result: uint8, uint16, float16 or float32.
    """

    def __init__(self, src: str, dst: str, *, scale: float = 1.0, out_dtype="uint16"):
        self.src, self.dst, self.scale = src, dst, float(scale)
        self.out_dtype = np.dtype(out_dtype)
        if self.out_dtype.name not in _BIT_DEPTHS:
            raise ColorError(f"output type must be one of {sorted(_BIT_DEPTHS)}, got {self.out_dtype.name}")
        self.identity = src == dst and self.scale == 1.0
        self._group = None if self.identity else transform(src, dst, scale=self.scale)
        self._cpu = {}
        self._table = None

    def use_table(self) -> None:
        """For long 8-bit streams: tabulate OCIO's result for every 8-bit RGB code (2^24 entries, built once in
        about the time of converting eight 1080p frames; 6 bytes an entry for uint16 output) and look codes up
        instead; the results are identical to converting each frame."""
        if self.identity or self._table is not None or self.out_dtype.itemsize > 2:
            return
        codes = np.arange(1 << 24, dtype=np.uint32)
        rgb = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8)
        out = self(rgb.reshape(1, 4096, 4096, 3)).reshape(-1, 3)
        del rgb, codes
        # One machine word an entry (RGB + one pad channel): a single gather per pixel.
        packed = np.zeros((1 << 24, 4), self.out_dtype)
        packed[:, :3] = out
        self._table = packed.view(np.uint64 if self.out_dtype.itemsize == 2 else np.uint32).ravel()

    def _processor(self, in_dtype: np.dtype):
        import PyOpenColorIO as OCIO

        if in_dtype.name not in self._cpu:
            proc = config().getProcessor(self._group)
            self._cpu[in_dtype.name] = proc.getOptimizedCPUProcessor(
                getattr(OCIO, _BIT_DEPTHS[in_dtype.name]), getattr(OCIO, _BIT_DEPTHS[self.out_dtype.name]),
                OCIO.OPTIMIZATION_DEFAULT)
        return self._cpu[in_dtype.name]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Convert ``frames`` (..., h, w, 3) of dtype uint8, uint16 or float32; returns ``out_dtype``."""
        import PyOpenColorIO as OCIO

        frames = np.ascontiguousarray(frames)
        if frames.dtype.name not in ("uint8", "uint16", "float32"):
            raise ColorError(f"frames must be uint8, uint16 or float32, got {frames.dtype}")
        if self.identity:
            return _requantise(frames, self.out_dtype)
        if self._table is not None and frames.dtype == np.uint8:
            idx = (frames[..., 0].astype(np.uint32) << 16) | (frames[..., 1].astype(np.uint32) << 8) | frames[..., 2]
            got = np.take(self._table, idx).view(self.out_dtype).reshape(idx.shape + (4,))
            return np.ascontiguousarray(got[..., :3])
        h, w = frames.shape[-3], frames.shape[-2]
        src = frames.reshape(-1, w, 3)
        rows = src.shape[0]
        out = np.empty(src.shape, self.out_dtype)
        cpu = self._processor(frames.dtype)
        ib, ob = frames.dtype.itemsize, self.out_dtype.itemsize
        cpu.apply(OCIO.PackedImageDesc(src, w, rows, OCIO.CHANNEL_ORDERING_RGB,
                                       getattr(OCIO, _BIT_DEPTHS[frames.dtype.name]), ib, 3 * ib, 3 * ib * w),
                  OCIO.PackedImageDesc(out, w, rows, OCIO.CHANNEL_ORDERING_RGB,
                                       getattr(OCIO, _BIT_DEPTHS[self.out_dtype.name]), ob, 3 * ob, 3 * ob * w))
        return out.reshape(frames.shape[:-3] + (h, w, 3))


def _requantise(frames: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Same encoding, another container: full-range integer rescale (255 <-> 65535 is exact: x * 257)."""
    if frames.dtype == dtype:
        return frames
    if frames.dtype == np.uint8 and dtype == np.uint16:
        return frames.astype(np.uint16) * np.uint16(257)
    if frames.dtype.kind == "u":
        x = frames.astype(np.float32) / np.iinfo(frames.dtype).max
    else:
        x = frames
    if dtype.kind == "u":
        top = np.iinfo(dtype).max
        return np.clip(np.rint(x * top), 0, top).astype(dtype)
    return x.astype(dtype)


def pq_nits_lut(levels: int = 1024) -> np.ndarray:
    """PQ code value (0..levels-1, full range) -> nits, through OCIO (for content light levels)."""
    return decode_lut("smpte2084", "bt2020", levels) * DISPLAY_NITS_PER_UNIT
