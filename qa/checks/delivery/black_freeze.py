"""Black and frozen frames: stretches longer than the target allows, beyond what the source has."""

from __future__ import annotations

from qa.checks.base import Check, CheckResult, Metric, frame_table
from qa.checks.delivery import same


def finish(frames, clip) -> CheckResult:
    b, f = clip.facts.black, clip.facts.freeze
    black, black_src = float(b.get("output", 0.0)), float(b.get("source", 0.0))
    freeze, freeze_src = float(f.get("output", 0.0)), float(f.get("source", 0.0))
    return CheckResult("delivery black and frozen frames", frame_table([], []), {
        "black_s": black, "black_source_s": black_src, "black_added_s": max(0.0, black - black_src),
        "freeze_s": freeze, "freeze_source_s": freeze_src, "freeze_added_s": max(0.0, freeze - freeze_src)})


def metrics(t) -> tuple[Metric, ...]:
    return (
        Metric("black_added_s", "max", same(t.max_black_s), unit="s",
               explain=f"{{value:.2f}} s more black picture than the source has ({t.name} allows "
                       f"{t.max_black_s:g} s)"),
        Metric("freeze_added_s", "max", same(t.max_freeze_s), unit="s",
               explain=f"{{value:.2f}} s more frozen picture than the source has ({t.name} allows "
                       f"{t.max_freeze_s:g} s)"),
    )


CHECK = Check(name="delivery black and frozen frames", needs=frozenset({"clip"}), finish=finish, metrics=(),
              about="the longest black (ffmpeg blackdetect) and frozen (freezedetect) stretch of the delivery, less "
                    "the source's own")
