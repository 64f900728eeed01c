"""``draft``: H.264 8-bit 4:2:0 MP4, BT.709, a size option and a quality preset; made to be quick to review."""

from __future__ import annotations

import re

from ray32 import color
from ray32.export._common import ExportError
from ray32.export._video import VideoWriter, even

FORMAT = "draft"
OPTIONS = {"size": "source", "quality": "standard", "crf": None, "preset": None, "bitrate": None, "cbr": False}
"""``bitrate`` (kbps) switches from constant quality (crf) to a bitrate (peaks capped at 1.5x, or constant with
``cbr=True``: HRD-conformant CBR with filler, as broadcast/CTV deliveries ask)."""
QUALITY = {"fast": ("ultrafast", 26), "standard": ("veryfast", 23), "high": ("medium", 18)}


def available() -> bool:
    import av

    return "libx264" in av.codecs_available


def output_size(size, width: int, height: int) -> tuple[int, int]:
    """``size``: "source", "<H>p" (e.g. "540p": that height, aspect kept, never upscaled, even sizes) or "WxH"."""
    if size in (None, "source"):
        return width, height
    text = str(size).strip().lower()
    m = re.fullmatch(r"(\d+)p", text)
    if m:
        h = min(int(m.group(1)), height)
        w = round(width * h / height)
        return max(2, w + (w % 2)), max(2, h - (h % 2))
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if m:
        return int(m.group(1)), int(m.group(2))
    raise ExportError(f"draft: size {size!r} is not understood; use 'source', a height like '540p' or 'WIDTHxHEIGHT'")


class DraftWriter(VideoWriter):
    fmt = FORMAT

    def __init__(self, out_dir, *, stem, fps, frame_count, width, height, source=None, size="source",
                 quality="standard", crf=None, preset=None, bitrate=None, cbr=False):
        if quality not in QUALITY:
            raise ExportError(f"draft: quality {quality!r} is not one of {sorted(QUALITY)}")
        out_w, out_h = output_size(size, width, height)
        even(FORMAT, out_w, out_h, chroma="420", option_hint=", or pick a size option such as size='540p'")
        default_preset, default_crf = QUALITY[quality]
        rate = {"crf": str(crf or default_crf)}
        params = "log-level=error"
        if bitrate is not None:
            if not isinstance(bitrate, (int, float)) or isinstance(bitrate, bool) or bitrate <= 0:
                raise ExportError(f"draft: bitrate must be a positive number of kbps, got {bitrate!r}")
            kbps = int(bitrate)
            peak = kbps if cbr else int(kbps * 1.5)
            rate = {"b": f"{kbps}k", "maxrate": f"{peak}k", "bufsize": f"{2 * kbps}k"}
            if cbr:
                params += ":nal-hrd=cbr:force-cfr=1"
        super().__init__(out_dir, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height,
                         source=source, suffix="_draft.mp4", container_format="mp4", codec="libx264",
                         pix_fmt="yuv420p", bits=8, output_space=color.SDR_SPACE, out_size=(out_w, out_h),
                         codec_options={"preset": preset or default_preset, **rate,
                                        "profile": "high", "x264-params": params},
                         audio_codec="aac")


Writer = DraftWriter
