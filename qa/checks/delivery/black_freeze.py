"""Black and frozen frames: stretches longer than the target allows, beyond what the source has."""

from __future__ import annotations

from qa.checks import CheckResult, frame_table

NAME = "black and frozen frames"
EXPLAIN = ("The longest black stretch (ffmpeg blackdetect) and frozen stretch (freezedetect) of the delivery, "
           "less the source's own: a delivery may not add black or frozen picture beyond the target's limits.")


def measure(facts) -> CheckResult:
    b, f = facts.black, facts.freeze
    return CheckResult(NAME, frame_table([], []), {
        "black_s": float(b.get("output", 0.0)), "black_source_s": float(b.get("source", 0.0)),
        "freeze_s": float(f.get("output", 0.0)), "freeze_source_s": float(f.get("source", 0.0))})


def judge(result: CheckResult, target, facts) -> list[str]:
    s = result.summary
    reasons = []
    if s["black_s"] - s["black_source_s"] > target.max_black_s:
        reasons.append(f"{s['black_s']:.2f} s of black picture (the source has {s['black_source_s']:.2f} s; "
                       f"{target.name} allows {target.max_black_s:g} s more)")
    if s["freeze_s"] - s["freeze_source_s"] > target.max_freeze_s:
        reasons.append(f"{s['freeze_s']:.2f} s of frozen picture (the source has {s['freeze_source_s']:.2f} s; "
                       f"{target.name} allows {target.max_freeze_s:g} s more)")
    return reasons
