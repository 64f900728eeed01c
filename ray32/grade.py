"""Relight by grade, in linear light, through OpenColorIO.

A grade (``ray32.request.Grade``) becomes one OCIO transform chain per set of values:

    source code values -> ACEScg (scene-linear, OCIO's ColorSpaceTransform)
      -> white balance + exposure + contrast + saturation (OCIO's GradingPrimaryTransform, linear style;
      contrast pivots on mid grey 0.18: out = 0.18 * (in / 0.18) ** contrast)
      -> back to the source's code values -> the .cube LUT, if any (OCIO's FileTransform)

White balance: the light's colour temperature ``T`` (kelvin, on the Planckian locus; CIE 1960 uv from Krystek's
rational approximation) shifted off the locus by ``tint`` (Duv = -0.02 x tint: + is magenta), as XYZ with Y = 1,
converted to ACEScg by OCIO's built-in ``ACES-AP1_to_CIE-XYZ-D65_BFD`` (inverse). The per-channel gain is that
white divided by the white of 6500 K on the locus, so 6500 K with tint 0 changes nothing, lower ``T`` is warmer.
The gains go into the grading transform's exposure (log2 stops per channel); no colour matrix is written here.

Keyframed grades are interpolated per frame: temperature in mired (1e6/T, perceptually even), the others
linearly; before the first key the first key holds, after the last the last.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from ray32.color import WORKING_SPACE, config
from ray32.errors import Ray32Error

NEUTRAL_K = 6500.0
TINT_DUV = 0.02
_XYZ_BUILTIN = "UTILITY - ACES-AP1_to_CIE-XYZ-D65_BFD"


class GradeError(Ray32Error):
    """A grade that cannot be applied (a LUT file that is missing or unreadable)."""


def planckian_uv(kelvin: float) -> tuple[float, float]:
    """CIE 1960 (u, v) of a black body at ``kelvin`` (Krystek 1985, 1000..15000 K)."""
    t = float(kelvin)
    u = (0.860117757 + 1.54118254e-4 * t + 1.28641212e-7 * t * t) / (1 + 8.42420235e-4 * t + 7.08145163e-7 * t * t)
    v = (0.317398726 + 4.22806245e-5 * t + 4.20481691e-8 * t * t) / (1 - 2.89741816e-5 * t + 1.61456053e-7 * t * t)
    return u, v


def white_xyz(kelvin: float, tint: float = 0.0) -> np.ndarray:
    """XYZ (Y = 1) of the light at ``kelvin`` moved off the locus by ``tint`` (Duv = -TINT_DUV * tint)."""
    u, v = planckian_uv(kelvin)
    u2, v2 = planckian_uv(kelvin + 1.0)
    du, dv = u2 - u, v2 - v
    norm = math.hypot(du, dv)
    # Normal to the locus pointing to the green side (positive Duv): the tangent turned counter-clockwise.
    nu, nv = -dv / norm, du / norm
    if nv < 0:
        nu, nv = -nu, -nv
    duv = -TINT_DUV * float(tint)
    u, v = u + duv * nu, v + duv * nv
    d = 2 * u - 8 * v + 4
    x, y = 3 * u / d, 2 * v / d
    return np.array([x / y, 1.0, (1 - x - y) / y], dtype=np.float64)


@lru_cache(maxsize=1)
def _xyz_to_working():
    import PyOpenColorIO as OCIO

    return config().getProcessor(OCIO.BuiltinTransform(_XYZ_BUILTIN), OCIO.TRANSFORM_DIR_INVERSE
                                 ).getDefaultCPUProcessor()


def white_balance_gains(kelvin: float, tint: float = 0.0) -> np.ndarray:
    """Per-channel ACEScg gains that make a neutral surface take the colour of the light (kelvin, tint)."""
    cpu = _xyz_to_working()
    target = np.asarray(cpu.applyRGB(white_xyz(kelvin, tint).astype(np.float32).tolist()), dtype=np.float64)
    neutral = np.asarray(cpu.applyRGB(white_xyz(NEUTRAL_K, 0.0).astype(np.float32).tolist()), dtype=np.float64)
    return target / neutral


def interpolate(keys: Sequence[tuple[int, dict[str, float]]], frame: int) -> dict[str, float]:
    """The grade values at ``frame`` from ``(frame, values)`` keys in frame order (see the module docstring)."""
    if not keys:
        raise ValueError("no grade keys")
    if frame <= keys[0][0]:
        return dict(keys[0][1])
    if frame >= keys[-1][0]:
        return dict(keys[-1][1])
    for (f0, a), (f1, b) in zip(keys[:-1], keys[1:]):
        if f0 <= frame <= f1:
            t = (frame - f0) / (f1 - f0)
            out = {k: a[k] + (b[k] - a[k]) * t for k in a}
            mired = 1e6 / a["temperature"] + (1e6 / b["temperature"] - 1e6 / a["temperature"]) * t
            out["temperature"] = 1e6 / mired
            return out
    raise AssertionError("unreachable")


def grade_transform(values: dict[str, float], space: str, lut: str | os.PathLike | None = None):
    """The OCIO transform of one grade: ``space`` code values in and out, grading in ACEScg."""
    import PyOpenColorIO as OCIO

    gains = white_balance_gains(values["temperature"], values["tint"])
    stops = np.log2(gains)
    gp = OCIO.GradingPrimary(OCIO.GRADING_LIN)
    gp.exposure = OCIO.GradingRGBM(float(stops[0]), float(stops[1]), float(stops[2]), float(values["exposure"]))
    gp.contrast = OCIO.GradingRGBM(1.0, 1.0, 1.0, float(values["contrast"]))
    gp.saturation = float(values["saturation"])
    gp.pivot = 0.0  # linear style: the pivot is in stops from 0.18, so 0 puts it at mid grey
    group = OCIO.GroupTransform()
    group.appendTransform(OCIO.ColorSpaceTransform(space, WORKING_SPACE))
    group.appendTransform(OCIO.GradingPrimaryTransform(gp, OCIO.GRADING_LIN, False))
    group.appendTransform(OCIO.ColorSpaceTransform(WORKING_SPACE, space))
    if lut is not None:
        ft = OCIO.FileTransform()
        ft.setSrc(str(lut))
        ft.setInterpolation(OCIO.INTERP_TETRAHEDRAL)
        group.appendTransform(ft)
    return group


POOL_PIXELS = 160_000
"""Frames smaller than this (QA's analysis-size frames and label crops) are graded in the calling thread; larger
ones in bands on the grader's pool. OpenColorIO's CPU processor gives the same pixels either way and may be
called from several threads at once."""


class Grader:
    """Applies a request's grade to uint8 frames in the source's encoding, frame by frame.

    Args:
        keys: ``(frame, values)`` in frame order (``RenderRequest.resolve_grade_keys``), or one key for a
            constant grade.
        space: the OCIO colour space of the frames' code values (``ray32.color.source_space``).
        lut: a .cube file or None.

    Raises:
        GradeError: the LUT is missing or OCIO cannot read it.
    """

    def __init__(self, keys: Sequence[tuple[int, dict[str, float]]], space: str, lut: str | os.PathLike | None = None):
        if lut is not None and not Path(lut).is_file():
            raise GradeError(f"LUT {str(lut)!r} does not exist; give the path of a .cube file")
        self.keys = list(keys)
        self.space = space
        self.lut = lut
        self._cache: dict[tuple, object] = {}
        self._pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
        self._cpu_for(self.keys[0][1])  # fail early on a bad LUT

    def _cpu_for(self, values: dict[str, float]):
        import PyOpenColorIO as OCIO

        key = tuple(round(values[k], 4) for k in sorted(values))
        cpu = self._cache.get(key)
        if cpu is None:
            try:
                proc = config().getProcessor(grade_transform(values, self.space, self.lut))
            except OCIO.Exception as ex:
                raise GradeError(f"LUT {str(self.lut)!r} cannot be read by OpenColorIO: {ex}") from ex
            cpu = proc.getOptimizedCPUProcessor(OCIO.BIT_DEPTH_UINT8, OCIO.BIT_DEPTH_UINT8, OCIO.OPTIMIZATION_DEFAULT)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = cpu
        return cpu

    def values_at(self, frame: int) -> dict[str, float]:
        return interpolate(self.keys, frame)

    def apply(self, frame_index: int, image: np.ndarray) -> np.ndarray:
        """Grade one (h, w, 3) uint8 frame in place and return it."""
        cpu = self._cpu_for(self.values_at(frame_index))
        img = np.ascontiguousarray(image)
        if img.shape[0] * img.shape[1] < POOL_PIXELS:  # handing bands to the pool costs more than it saves
            cpu.applyRGB(img)
            return img
        bands = np.array_split(img, max(1, min(8, img.shape[0] // 64)))
        list(self._pool.map(cpu.applyRGB, bands))
        return img

    def close(self) -> None:
        self._pool.shutdown(wait=False)
