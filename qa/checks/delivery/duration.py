"""Duration: within the target's limits, or one of its spot lengths."""

from __future__ import annotations

import math

from qa.checks.base import Check, CheckResult, Metric, frame_table
from qa.checks.delivery import same


def finish(frames, clip) -> CheckResult:
    d = float(clip.facts.probe["duration_s"])
    lengths = clip.facts.target.lengths
    return CheckResult("delivery duration", frame_table([], []), {
        "duration_s": d,
        "spot_length_error_s": min(abs(d - n) for n in lengths) if lengths else math.nan})


def metrics(t) -> tuple[Metric, ...]:
    out = []
    if t.lengths:
        spots = " or ".join(f"{n:g}" for n in t.lengths)
        out.append(Metric("spot_length_error_s", "max", same(t.length_tolerance), key=True, unit="s",
                          explain=lambda f, spots=spots, name=t.name: (
                              f"duration {f.qa.summary['duration_s']:.2f} s; {name} takes spots of {spots} s")))
    if t.min_seconds is not None:
        out.append(Metric("duration_s", "min", same(t.min_seconds), key=True, unit="s",
                          explain=f"duration {{value:.2f}} s is shorter than {t.name}'s minimum {t.min_seconds:g} s"))
    if t.max_seconds is not None:
        out.append(Metric("duration_s", "max", same(t.max_seconds), key=True, unit="s",
                          explain=f"duration {{value:.2f}} s is longer than {t.name}'s maximum {t.max_seconds:g} s"))
    return tuple(out)


CHECK = Check(name="delivery duration", needs=frozenset({"clip"}), finish=finish, metrics=(),
              about="the delivered duration (frames / frame rate) against the target's limits or spot lengths "
                    "(CTV: 15 or 30 s)")
