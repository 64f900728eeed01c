"""Stream format: size, codec, bitrate and audio format against the target."""

from __future__ import annotations

import math

from qa.checks.base import Check, CheckResult, Metric, frame_table
from qa.checks.delivery import same

BITRATE_SLACK = 0.05
"""Share of the target's bitrate limits a measured bitrate may miss them by (container overhead, rounding)."""
CODECS = {"h264": 1, "hevc": 2, "prores": 3}


def finish(frames, clip) -> CheckResult:
    p = clip.facts.probe
    a = p.get("audio") or {}
    t = clip.facts.target
    return CheckResult("delivery format", frame_table([], []), {
        "width": p["width"], "height": p["height"], "kbps": p.get("kbps") or math.nan,
        "video_kbps": p.get("video_kbps") or math.nan,
        "codec_ok": math.nan if t.codec is None else int(p.get("codec") == t.codec),
        "audio_tracks": int(bool(a)), "audio_rate": a.get("rate") or math.nan,
        "audio_channels": a.get("channels") or math.nan})


def metrics(t) -> tuple[Metric, ...]:
    """The metrics judged for target ``t``."""
    out = []
    if t.size is not None:
        out += [Metric("width", "equal", same(t.size[0]), explain=f"width {{value:.0f}} px; {t.name} needs {t.size[0]}"),
                Metric("height", "equal", same(t.size[1]),
                       explain=f"height {{value:.0f}} px; {t.name} needs {t.size[1]}")]
    if t.codec is not None:
        out.append(Metric("codec_ok", "equal", same(1), explain=f"video codec is not {t.codec}, which {t.name} needs"))
    if t.min_kbps is not None:
        out.append(Metric("kbps", "min", same(t.min_kbps * (1 - BITRATE_SLACK)), key=True, unit="kbps",
                          explain=f"bitrate {{value:.0f}} kbps is under {t.name}'s minimum {t.min_kbps} kbps"))
    if t.max_kbps is not None:
        out.append(Metric("kbps", "max", same(t.max_kbps * (1 + BITRATE_SLACK)), key=True, unit="kbps",
                          explain=f"bitrate {{value:.0f}} kbps is over {t.name}'s maximum {t.max_kbps} kbps"))
    if t.audio_required:
        out.append(Metric("audio_tracks", "min", same(1), explain=f"no audio track; {t.name} needs {t.audio_rate} Hz audio"))
    if t.codec is not None:
        out += [Metric("audio_rate", "equal", same(t.audio_rate), unit="Hz",
                       explain=f"audio at {{value:.0f}} Hz; {t.name} needs {t.audio_rate} Hz"),
                Metric("audio_channels", "equal", same(t.audio_channels),
                       explain=f"{{value:.0f}} audio channel(s); {t.name} needs {t.audio_channels}")]
    return tuple(out)


CHECK = Check(name="delivery format", needs=frozenset({"clip"}), finish=finish, metrics=(),
              about="the delivered file's size, codec, bitrate (ffprobe) and audio format against the target's spec: "
                    "platforms reject files outside these")
