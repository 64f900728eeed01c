"""Loudness: integrated loudness and true peak of the delivered audio against the target (BS.1770-4)."""

from __future__ import annotations

import math

from qa.checks import CheckResult, frame_table

NAME = "loudness"
EXPLAIN = ("Integrated loudness (LUFS) and true peak (dBTP) of the delivered audio, measured with ffmpeg's "
           "ebur128 filter (ITU-R BS.1770-4), against the target's level, tolerance and ceiling. A silent "
           "source stays silent and passes; the figures before normalisation are shown beside them.")
PEAK_SLACK = 0.1
"""dB a measured true peak may exceed the ceiling by (the meter's 4x oversampling against the limiter's)."""


def measure(facts) -> CheckResult:
    loud = facts.loudness or {}
    after, before = loud.get("after") or {}, loud.get("before") or {}

    def num(d, k):
        v = d.get(k)
        return float("nan") if v is None else float(v)

    return CheckResult(NAME, frame_table([], []), {
        "integrated_lufs": num(after, "integrated"), "true_peak_dbtp": num(after, "true_peak"),
        "source_integrated_lufs": num(before, "integrated"), "source_true_peak_dbtp": num(before, "true_peak"),
        "has_audio": int(bool(facts.probe.get("audio")))})


def judge(result: CheckResult, target, facts) -> list[str]:
    t = target.loudness
    s = result.summary
    if t is None or not s["has_audio"]:
        return []
    i, tp = s["integrated_lufs"], s["true_peak_dbtp"]
    src = s["source_integrated_lufs"]
    if not math.isfinite(i) or i <= -70:
        if math.isfinite(src) and src > -70:
            return [f"the audio is silent ({i} LUFS) but the source was not ({src:.1f} LUFS)"]
        return []  # silence stays silence
    reasons = []
    if abs(i - t.integrated) > t.tolerance:
        reasons.append(f"integrated loudness {i:.1f} LUFS; {target.name} needs {t.integrated:g} +-{t.tolerance:g} "
                       f"LU ({t.standard})")
    if math.isfinite(tp) and tp > t.true_peak + PEAK_SLACK:
        reasons.append(f"true peak {tp:.1f} dBTP is over {target.name}'s ceiling {t.true_peak:g} dBTP")
    return reasons
