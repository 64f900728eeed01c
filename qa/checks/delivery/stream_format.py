"""Stream format: size, codec, bitrate and audio format against the target."""

from __future__ import annotations

from qa.checks import CheckResult, frame_table

NAME = "format"
EXPLAIN = ("The delivered video's size and codec, its overall bitrate (ffprobe) and its audio's codec, sample "
           "rate and channels, against the target's spec: platforms reject files outside these.")
BITRATE_SLACK = 0.05
"""Share of the target's bitrate limits a measured bitrate may miss them by (container overhead, rounding)."""


def measure(facts) -> CheckResult:
    p = facts.probe
    a = p.get("audio") or {}
    return CheckResult(NAME, frame_table([], []), {
        "width": p["width"], "height": p["height"], "kbps": p.get("kbps"), "video_kbps": p.get("video_kbps"),
        "audio_rate": a.get("rate"), "audio_channels": a.get("channels")})


def judge(result: CheckResult, target, facts) -> list[str]:
    s, p, t = result.summary, facts.probe, target
    reasons = []
    if t.size is not None and (s["width"], s["height"]) != tuple(t.size):
        reasons.append(f"size {s['width']}x{s['height']}, {t.name} needs {t.size[0]}x{t.size[1]}")
    if t.codec is not None and p.get("codec") != t.codec:
        reasons.append(f"video codec {p.get('codec')}, {t.name} needs {t.codec}")
    kbps = s.get("kbps")
    if kbps is not None and t.min_kbps is not None and kbps < t.min_kbps * (1 - BITRATE_SLACK):
        reasons.append(f"bitrate {kbps:.0f} kbps is under {t.name}'s minimum {t.min_kbps} kbps")
    if kbps is not None and t.max_kbps is not None and kbps > t.max_kbps * (1 + BITRATE_SLACK):
        reasons.append(f"bitrate {kbps:.0f} kbps is over {t.name}'s maximum {t.max_kbps} kbps")
    if t.audio_required and not p.get("audio"):
        reasons.append(f"no audio track; {t.name} needs {t.audio_rate} Hz audio")
    elif p.get("audio") and t.codec is not None:
        if s["audio_rate"] != t.audio_rate or s["audio_channels"] != t.audio_channels:
            reasons.append(f"audio {s['audio_rate']} Hz x {s['audio_channels']} ch, {t.name} needs "
                           f"{t.audio_rate} Hz x {t.audio_channels} ch")
    return reasons
