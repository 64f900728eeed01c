"""``exr``: an OpenEXR image sequence in half float RGB, ACEScg (default) or ACES2065-1, in a folder
``<stem>_exr/`` with files ``<stem>.NNNNNN.exr`` where NNNNNN is the source frame index (0-based; a trimmed
``Shot`` starts at its first frame; option ``first_frame`` overrides). The header carries the chromaticities of the
space (from OpenEXR's colour-interop table, keyed by OCIO's alias for the space), the frame rate and the
compression: DWAB (default), ZIP, PIZ or none.

Values are scene-linear: an SDR source's white is 1.0; an HDR source keeps its levels (1.0 = 100 nits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ray32 import color
from ray32.export._common import (ExportError, Writer, check_request, prepare_dir, remove, replace_dir,
                                  source_facts, source_space, temp_name)

FORMAT = "exr"
OPTIONS = {"space": "ACEScg", "compression": "dwab", "first_frame": None}
SPACES = ("ACEScg", "ACES2065-1")
COMPRESSIONS = {"dwab": "DWAB_COMPRESSION", "zip": "ZIP_COMPRESSION", "piz": "PIZ_COMPRESSION",
                "none": "NO_COMPRESSION"}


def available() -> bool:
    import OpenEXR  # noqa: F401

    return True


def chromaticities(space: str) -> tuple:
    """(rx, ry, gx, gy, bx, by, wx, wy) of a scene-linear space: OCIO's interop alias -> OpenEXR's table."""
    import OpenEXR

    for alias in color.config().getColorSpace(space).getAliases():
        chroma = OpenEXR.colorInteropIDToChromaticities(alias)
        if chroma is not None:
            return tuple(chroma)
    raise ExportError(f"exr: no chromaticities known for {space!r}")


class EXRWriter(Writer):
    fmt = FORMAT

    def __init__(self, out_dir, *, stem, fps, frame_count, width, height, source=None, space="ACEScg",
                 compression="dwab", first_frame=None):
        fps = check_request(FORMAT, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height)
        super().__init__(fps=fps, frame_count=frame_count, width=width, height=height)
        import OpenEXR

        if space not in SPACES:
            raise ExportError(f"exr: space {space!r} is not one of {list(SPACES)}")
        if str(compression).lower() not in COMPRESSIONS:
            raise ExportError(f"exr: compression {compression!r} is not one of {list(COMPRESSIONS)}")
        info, first = source_facts(source)
        self.first_frame = first if first_frame is None else int(first_frame)
        if self.first_frame < 0:
            raise ExportError(f"exr: first_frame must be >= 0, got {first_frame}")
        self.stem, self.space = stem, space
        out = prepare_dir(out_dir)
        self.path = out / f"{stem}_exr"
        self.tmp = temp_name(self.path)
        self.tmp.mkdir()
        src = source_space(info)
        # Code values -> the output space; float frames are already linear working space.
        self._from_codes = color.Converter(src, space, out_dtype="float16")
        self._from_linear = color.Converter(color.WORKING_SPACE, space, out_dtype="float16")
        self._table_pending = frame_count * width * height >= color.TABLE_MIN_PIXELS
        self.header = {
            "compression": getattr(OpenEXR, COMPRESSIONS[str(compression).lower()]),
            "type": OpenEXR.scanlineimage,
            "chromaticities": chromaticities(space),
            "framesPerSecond": fps,  # a Fraction is written as an exact Rational
            "comments": f"ray32 export: {space}, scene-linear",
        }

    def frame_name(self, index: int) -> str:
        """File name of output frame ``index`` (0-based position in the export)."""
        return f"{self.stem}.{self.first_frame + index:06d}.exr"

    def _write(self, frames: np.ndarray) -> None:
        import OpenEXR

        if frames.dtype == np.uint8 and self._table_pending:
            self._from_codes.use_table()
            self._table_pending = False
        conv = self._from_linear if frames.dtype == np.float32 else self._from_codes
        half = conv(frames)
        for k in range(len(half)):
            target = self.tmp / self.frame_name(self.written + k)
            OpenEXR.File(self.header, {"RGB": np.ascontiguousarray(half[k])}).write(str(target))

    def _finish(self, progress) -> Path:
        replace_dir(self.tmp, self.path)
        return self.path

    def _cleanup(self) -> None:
        remove(getattr(self, "tmp", None))


Writer = EXRWriter
