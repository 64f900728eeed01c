"""Loudness: integrated loudness and true peak of the delivered audio against the target (BS.1770-4)."""

from __future__ import annotations

import math

from qa.checks.base import Check, CheckResult, Metric, frame_table
from qa.checks.delivery import same

PEAK_SLACK = 0.1
"""dB a measured true peak may exceed the ceiling by (the meter's oversampling against the limiter's)."""
SILENCE_LUFS = -70.0


def finish(frames, clip) -> CheckResult:
    f = clip.facts
    loud = f.loudness or {}
    after, before = loud.get("after") or {}, loud.get("before") or {}

    def num(d, k):
        v = d.get(k)
        return math.nan if v is None else float(v)

    i, src = num(after, "integrated"), num(before, "integrated")
    target = f.target.loudness
    silent = not math.isfinite(i) or i <= SILENCE_LUFS
    src_silent = not math.isfinite(src) or src <= SILENCE_LUFS
    return CheckResult("delivery loudness", frame_table([], []), {
        "integrated_lufs": i, "true_peak_dbtp": num(after, "true_peak"),
        "source_integrated_lufs": src, "source_true_peak_dbtp": num(before, "true_peak"),
        # NaN (not judged) for silence that was silent in the source: silence stays silence.
        "loudness_error_lu": (math.nan if target is None or (silent and src_silent) or not f.probe.get("audio")
                              else (abs(i - target.integrated) if not silent else math.inf)),
        "true_peak_over_db": (math.nan if target is None or silent or not math.isfinite(num(after, "true_peak"))
                              else num(after, "true_peak") - target.true_peak)})


def metrics(t) -> tuple[Metric, ...]:
    if t.loudness is None:
        return ()
    L = t.loudness
    return (
        Metric("loudness_error_lu", "max", same(L.tolerance), key=True, unit="LU",
               explain=lambda f, L=L, name=t.name: (
                   f"integrated loudness {f.qa.summary['integrated_lufs']:.1f} LUFS; {name} needs "
                   f"{L.integrated:g} +-{L.tolerance:g} LU ({L.standard})")),
        Metric("true_peak_over_db", "max", same(PEAK_SLACK), key=True, unit="dB",
               explain=lambda f, L=L, name=t.name: (
                   f"true peak {f.qa.summary['true_peak_dbtp']:.1f} dBTP is over {name}'s ceiling "
                   f"{L.true_peak:g} dBTP")),
    )


CHECK = Check(name="delivery loudness", needs=frozenset({"clip"}), finish=finish, metrics=(),
              about="integrated loudness (LUFS) and true peak (dBTP) of the delivered audio (ffmpeg ebur128, "
                    "ITU-R BS.1770-4) against the target; silence that was silent in the source is not judged")
