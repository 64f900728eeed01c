"""Duration: within the target's limits, or one of its spot lengths."""

from __future__ import annotations

from qa.checks import CheckResult, frame_table

NAME = "duration"
EXPLAIN = ("The delivered video's duration (frames / frame rate) against the target's minimum and maximum, or "
           "its accepted spot lengths (CTV: 15 or 30 s).")


def measure(facts) -> CheckResult:
    return CheckResult(NAME, frame_table([], []), {"duration_s": float(facts.probe["duration_s"])})


def judge(result: CheckResult, target, facts) -> list[str]:
    d, t = result.summary["duration_s"], target
    if t.lengths and not any(abs(d - n) <= t.length_tolerance for n in t.lengths):
        return [f"duration {d:.2f} s; {t.name} takes spots of {' or '.join(f'{n:g}' for n in t.lengths)} s"]
    if t.min_seconds is not None and d < t.min_seconds:
        return [f"duration {d:.2f} s is shorter than {t.name}'s minimum {t.min_seconds:g} s"]
    if t.max_seconds is not None and d > t.max_seconds:
        return [f"duration {d:.2f} s is longer than {t.name}'s maximum {t.max_seconds:g} s"]
    return []
