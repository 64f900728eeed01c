"""Frame rate: constant, one the target accepts, and the variant's own (no frames dropped or added)."""

from __future__ import annotations

from fractions import Fraction

from qa.checks.base import Check, CheckResult, Metric, frame_table
from qa.checks.delivery import same


def finish(frames, clip) -> CheckResult:
    f = clip.facts
    fps = Fraction(f.probe["fps"])
    rates = f.target.frame_rates
    return CheckResult("delivery frame rate", frame_table([], []), {
        "fps": float(fps), "constant_frame_rate": int(bool(f.probe["constant_frame_rate"])),
        "fps_accepted": int(not rates or fps in rates), "fps_kept": int(fps == Fraction(f.source_fps)),
        "delivered_frame_delta": int(f.probe["frame_count"]) - int(f.source_frames)})


def metrics(t) -> tuple[Metric, ...]:
    rates = ", ".join(f"{float(r):.3f}" for r in t.frame_rates)
    return (
        Metric("constant_frame_rate", "equal", same(1), key=True,
               explain=f"variable frame rate; {t.name} needs a constant frame rate"),
        Metric("fps_accepted", "equal", same(1), explain=f"a frame rate {t.name} does not accept ({rates})"),
        Metric("fps_kept", "equal", same(1), explain="the frame rate differs from the variant's"),
        Metric("delivered_frame_delta", "equal", same(0),
               explain="{value:+.0f} frames against the variant: frames were dropped or added"),
    )


CHECK = Check(name="delivery frame rate", needs=frozenset({"clip"}), finish=finish, metrics=(),
              about="constant frame rate (every packet lasts the same), a rate the target accepts, the variant's "
                    "frames exactly")
