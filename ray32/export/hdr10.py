"""``hdr10``: HEVC Main10 (libx265) 4:2:0 MP4, BT.2020 primaries, SMPTE ST 2084 (PQ) transfer, bt2020nc matrix,
with HDR10 static metadata: the mastering display (P3-D65 primaries, 1000 nits by default) and the content light
levels MaxCLL / MaxFALL (CTA-861.3) of the frames actually written.

x265 needs the light levels when the encoder opens, so frames are converted as they arrive, measured, and spooled
(10-bit Y'CbCr, 3 bytes a pixel) to a hidden file beside the output; ``close`` encodes the spool. Memory stays
bounded; disk use is about 6 MB per 1080p frame until ``close``.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ray32 import color
from ray32.export._common import ExportError, remove, temp_name
from ray32.export._video import VideoWriter, even
from ray32.export.hlg import x265_params

FORMAT = "hdr10"
OPTIONS = {"mastering": "p3-d65", "max_luminance": 1000, "min_luminance": 0.0001, "crf": 18, "preset": "fast"}

# SMPTE ST 2086 mastering-display primaries and white point in x265's units (0.00002): G, B, R, white.
MASTERING = {
    "p3-d65": "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)",
    "bt2020": "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)",
}


def available() -> bool:
    import av

    return "libx265" in av.codecs_available


class LightLevels:
    """MaxCLL and MaxFALL (CTA-861.3) over PQ RGB code values: per pixel max(R, G, B) in nits; MaxCLL is the
    largest, MaxFALL the largest frame average."""

    def __init__(self):
        ten_bit = (np.arange(65536, dtype=np.uint32) * 1023 + 32767) // 65535  # the 10 bits that are encoded
        self._nits = color.pq_nits_lut(1024)[ten_bit]  # 16-bit code -> nits of its 10-bit code, through OCIO
        self.max_cll = 0.0
        self.max_fall = 0.0

    def add(self, rgb16: np.ndarray) -> None:
        """One frame (h, w, 3) of uint16 full-range PQ codes."""
        m = np.maximum(np.maximum(rgb16[..., 0], rgb16[..., 1]), rgb16[..., 2])  # PQ is monotonic: max code = max nits
        nits = self._nits[m]
        self.max_cll = max(self.max_cll, float(nits.max()))
        self.max_fall = max(self.max_fall, float(nits.mean()))

    @property
    def values(self) -> tuple[int, int]:
        """(MaxCLL, MaxFALL) in whole nits, as the SEI carries them."""
        return min(65535, math.ceil(self.max_cll - 1e-6)), min(65535, math.ceil(self.max_fall - 1e-6))


class HDR10Writer(VideoWriter):
    fmt = FORMAT
    deferred = True

    def __init__(self, out_dir, *, stem, fps, frame_count, width, height, source=None, mastering="p3-d65",
                 max_luminance=1000, min_luminance=0.0001, crf=18, preset="fast"):
        even(FORMAT, width, height, chroma="420")
        if mastering not in MASTERING:
            raise ExportError(f"hdr10: mastering {mastering!r} is not one of {sorted(MASTERING)}")
        if not 0 <= min_luminance < max_luminance <= 10000:
            raise ExportError(f"hdr10: need 0 <= min_luminance < max_luminance <= 10000 nits, got "
                              f"{min_luminance} and {max_luminance}")
        self.master_display = (f"{MASTERING[mastering]}L({round(max_luminance * 10000)},"
                               f"{round(min_luminance * 10000)})")
        super().__init__(out_dir, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height,
                         source=source, suffix="_hdr10.mp4", container_format="mp4", codec="libx265",
                         pix_fmt="yuv420p10le", bits=16, output_space=color.PQ_SPACE,
                         codec_options={"crf": str(crf), "preset": preset, "tag": "hvc1"},
                         audio_codec="aac")
        self.stream.codec_tag = "hvc1"
        self.light = LightLevels()
        self.spool_path = temp_name(self.path.with_name(self.path.name + ".spool"))
        self._spool = open(self.spool_path, "wb")
        self._shape = None

    def emit(self, frame, rgb: np.ndarray) -> None:
        self.light.add(rgb)
        planes = frame.to_ndarray()  # yuv420p10le: (h * 3 / 2, w) uint16
        self._shape = planes.shape
        planes.tofile(self._spool)

    def _finish(self, progress) -> Path:
        import av

        self._spool.close()
        cll, fall = self.light.values
        self.stream.options = dict(self.stream.options, **{"x265-params": x265_params(
            "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1:hdr10-opt=1:repeat-headers=1:"
            f"master-display={self.master_display}:max-cll={cll},{fall}")})
        self.max_cll, self.max_fall = cll, fall
        count = self.written
        frame_items = int(np.prod(self._shape))
        with open(self.spool_path, "rb") as fh:
            for i in range(count):
                planes = np.fromfile(fh, dtype=np.uint16, count=frame_items).reshape(self._shape)
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p10le")
                self.tag(frame)
                frame.pts = i
                self.encode(frame)
                if self.audio is not None:
                    self.audio.feed(Fraction(i + 1) / self.fps)
                if progress and (i % 8 == 7 or i == count - 1):
                    progress(i + 1, count)
        remove(self.spool_path)
        return super()._finish(progress)

    def _cleanup(self) -> None:
        spool = getattr(self, "_spool", None)
        if spool is not None and not spool.closed:
            spool.close()
        remove(getattr(self, "spool_path", None))
        super()._cleanup()


Writer = HDR10Writer
