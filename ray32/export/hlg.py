"""``hlg``: HEVC Main10 (libx265) 4:2:0 MP4, BT.2020 primaries, ARIB STD-B67 (HLG) transfer, bt2020nc matrix.

An SDR source's white lands at 75 % HLG (203 nits on a 1000-nit display, ITU-R BT.2408); an HDR source keeps its
levels (``ray32.color.white_scale``)."""

from __future__ import annotations

from ray32 import color
from ray32.export._video import VideoWriter, even

FORMAT = "hlg"
OPTIONS = {"crf": 18, "preset": "fast"}


def available() -> bool:
    import av

    return "libx265" in av.codecs_available


def x265_params(extra: str = "") -> str:
    """x265's own VUI tags for the stream (FFmpeg's colour fields alone do not always reach the bitstream)."""
    return "log-level=error:range=limited" + (":" + extra if extra else "")


class HLGWriter(VideoWriter):
    fmt = FORMAT

    def __init__(self, out_dir, *, stem, fps, frame_count, width, height, source=None, crf=18, preset="fast"):
        even(FORMAT, width, height, chroma="420")
        super().__init__(out_dir, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height,
                         source=source, suffix="_hlg.mp4", container_format="mp4", codec="libx265",
                         pix_fmt="yuv420p10le", bits=16, output_space=color.HLG_SPACE,
                         codec_options={"crf": str(crf), "preset": preset, "tag": "hvc1",
                                        "x265-params": x265_params(
                                            "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc")},
                         audio_codec="aac")
        self.stream.codec_tag = "hvc1"


Writer = HLGWriter
