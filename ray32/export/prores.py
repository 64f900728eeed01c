"""``prores``: Apple ProRes 422 HQ (default) or 4444 (FFmpeg's prores_ks), 10-bit, in a MOV, with the source's
colour encoding kept (BT.709 stays BT.709, PQ/HLG stay PQ/HLG) and the source's audio as 24-bit PCM."""

from __future__ import annotations

from ray32.export._common import ExportError, source_facts, source_space
from ray32.export._video import VideoWriter, even
from ray32 import color

FORMAT = "prores"
OPTIONS = {"profile": "422hq"}
PROFILES = {"422hq": ("hq", "yuv422p10le"), "4444": ("4444", "yuv444p10le")}


def available() -> bool:
    import av

    return "prores_ks" in av.codecs_available


class ProResWriter(VideoWriter):
    fmt = FORMAT

    def __init__(self, out_dir, *, stem, fps, frame_count, width, height, source=None, profile="422hq"):
        if profile not in PROFILES:
            raise ExportError(f"prores: profile {profile!r} is not one of {sorted(PROFILES)}")
        name, pix_fmt = PROFILES[profile]
        if profile == "422hq":
            even(FORMAT, width, height, chroma="422", option_hint=", or use profile='4444'")
        space = source_space(source_facts(source)[0])
        if space not in color.VIDEO_TAGS:
            space = color.SDR_SPACE
        super().__init__(out_dir, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height,
                         source=source, suffix="_prores.mov", container_format="mov", codec="prores_ks",
                         pix_fmt=pix_fmt, bits=16, output_space=space,
                         codec_options={"profile": name, "vendor": "apl0"}, audio_codec="pcm_s24le")


Writer = ProResWriter
