"""Frame rate: constant, one the target accepts, and the variant's own (no frames dropped or added)."""

from __future__ import annotations

from fractions import Fraction

from qa.checks import CheckResult, frame_table

NAME = "frame rate"
EXPLAIN = ("Whether the delivered video has a constant frame rate (every frame lasts the same, from the "
           "packets' timestamps), a rate the target accepts, and exactly the variant's frames.")


def measure(facts) -> CheckResult:
    p = facts.probe
    return CheckResult(NAME, frame_table([], []), {
        "fps": float(p["fps"]), "constant_frame_rate": int(bool(p["constant_frame_rate"])),
        "frame_count_delta": int(p["frame_count"]) - int(facts.source_frames)})


def judge(result: CheckResult, target, facts) -> list[str]:
    s, fps = result.summary, Fraction(facts.probe["fps"])
    reasons = []
    if not s["constant_frame_rate"]:
        reasons.append(f"variable frame rate; {target.name} needs a constant frame rate")
    if target.frame_rates and fps not in target.frame_rates:
        reasons.append(f"{float(fps):.3f} fps is not one {target.name} accepts "
                       f"({', '.join(f'{float(r):.3f}' for r in target.frame_rates)})")
    if fps != Fraction(facts.source_fps):
        reasons.append(f"{float(fps):.3f} fps differs from the variant's {float(facts.source_fps):.3f}")
    if s["frame_count_delta"]:
        reasons.append(f"{facts.probe['frame_count']} frames, the variant has {facts.source_frames}")
    return reasons
