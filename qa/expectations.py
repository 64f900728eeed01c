"""Thresholds and verdicts: the metrics table validated by a Great Expectations suite per mode.

Adhere is the strictest mode, Reimagine the loosest (labels are locked in every mode, so the label limits do
not loosen). A campaign overrides any bound per metric (``Facts.overrides``: ``{"metric": {"min": .., "max":
..}}``). A variant whose colours are meant to change (``Facts.grade``) is not held to the colour-shift limit.
Each failed expectation becomes a reason a reviewer can act on, with the timecode of the worst frame, e.g.
``label read as 'AQUA FRESH 500m' at 00:02.13, expected 'AQUA FRESH 500ml'``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ray32.timecode import format_seconds

log = logging.getLogger(__name__)

# metric -> (min, max) per mode; None = unbounded on that side.
THRESHOLDS: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "adhere": {
        "label_text_match_rate": (0.8, None),
        "label_artwork_similarity_min": (0.9, None),
        "label_drift_max_px": (None, 3.0),
        "identity_distance_max": (None, 0.4),
        "face_lost_frames": (None, 0),
        "flicker_max": (None, 1.0),
        "luma_jump_max": (None, 1.0),
        "motion_flow_error_max_px": (None, 0.5),
        "motion_step_ratio_min": (0.5, None),
        "motion_step_ratio_max": (None, 1.6),
        "structure_edge_min": (0.85, None),
        "colour_shift_max": (None, 2.0),
        "clipped_excess_max": (None, 0.01),
        "crushed_excess_max": (None, 0.01),
        "frame_count_delta": (0, 0),
        "fps_equal": (1, 1),
        "keyframe_ssim_min": (0.7, None),
        "max_cll_nits": (None, 1000.0),
    },
}
THRESHOLDS["flex"] = {**THRESHOLDS["adhere"], "label_drift_max_px": (None, 4.0), "identity_distance_max": (None, 0.45),
                      "face_lost_frames": (None, 1), "flicker_max": (None, 1.5), "luma_jump_max": (None, 1.5),
                      "motion_flow_error_max_px": (None, 0.8), "motion_step_ratio_min": (0.4, None),
                      "motion_step_ratio_max": (None, 1.8), "structure_edge_min": (0.7, None),
                      "colour_shift_max": (None, 3.0), "keyframe_ssim_min": (0.6, None)}
THRESHOLDS["reimagine"] = {**THRESHOLDS["flex"], "label_drift_max_px": (None, 6.0), "identity_distance_max": (None, 0.5),
                           "face_lost_frames": (None, 2), "flicker_max": (None, 2.5), "luma_jump_max": (None, 2.5),
                           "motion_flow_error_max_px": (None, 1.5), "motion_step_ratio_min": (0.3, None),
                           "motion_step_ratio_max": (None, 2.2), "structure_edge_min": (0.4, None),
                           "colour_shift_max": (None, 8.0), "clipped_excess_max": (None, 0.03),
                           "crushed_excess_max": (None, 0.03), "keyframe_ssim_min": (0.5, None)}
COLOUR_METRICS = ("colour_shift_max",)


@dataclass
class Verdict:
    """The outcome for one variant: ``passed``, the reasons when not, and each failed metric's bounds."""

    variant: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    failed: dict[str, dict] = field(default_factory=dict)
    frames: list[int | None] = field(default_factory=list)  # the worst frame of each reason (None: whole clip)

    @property
    def state(self) -> str:
        return "pass" if self.passed else "fail"


def thresholds_for(mode: str, overrides: dict | None = None, grade: bool = False) -> dict[str, tuple]:
    """The (min, max) bounds for a mode, with a campaign's overrides applied and colour metrics dropped for a
    graded variant.

    Raises:
        ValueError: an unknown mode or an override for an unknown metric (the message lists the known ones).
    """
    if mode not in THRESHOLDS:
        raise ValueError(f"unknown mode {mode!r}; use one of {sorted(THRESHOLDS)}")
    bounds = dict(THRESHOLDS[mode])
    for metric, spec in (overrides or {}).items():
        if metric not in bounds:
            raise ValueError(f"override for unknown metric {metric!r}; known metrics: {sorted(bounds)}")
        lo, hi = bounds[metric]
        bounds[metric] = (spec.get("min", lo), spec.get("max", hi))
    if grade:
        for m in COLOUR_METRICS:
            bounds.pop(m, None)
    return bounds


def build_suite(name: str, bounds: dict[str, tuple], columns: Iterable[str]):
    """A Great Expectations suite: one ``ExpectColumnValuesToBeBetween`` per bounded metric present."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for metric, (lo, hi) in bounds.items():
        if metric in columns:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
                column=metric, min_value=lo, max_value=hi, meta={"metric": metric}))
    return suite


def validate(table: pd.DataFrame, overrides: dict[str, dict] | None = None) -> dict[str, dict[str, dict]]:
    """Validate the metrics table (``qa.metrics.metrics_table``) with the suite of each row's mode.

    Args:
        table: one row per variant with ``variant``, ``mode``, ``grade`` and metric columns.
        overrides: variant -> its campaign overrides (``{"metric": {"min":.., "max":..}}``).

    Returns:
        variant -> {failed metric -> {"value", "min", "max"}} (an empty dict for a variant that passed).
    """
    import great_expectations as gx

    overrides = overrides or {}
    failed: dict[str, dict[str, dict]] = {v: {} for v in table["variant"]}
    if table.empty:
        return failed
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)  # it announces its temporary folders at INFO
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars from a library
    source = ctx.data_sources.add_pandas(name="qa")
    asset = source.add_dataframe_asset(name="metrics")
    batch_def = asset.add_batch_definition_whole_dataframe("run")
    keys = [(r.mode, bool(r.grade), json.dumps(overrides.get(r.variant, {}), sort_keys=True))
            for r in table.itertuples()]
    numeric = table.drop(columns=["variant", "mode", "grade"]).apply(pd.to_numeric, errors="coerce")
    for key in sorted(set(keys)):
        mode, grade, ov = key
        rows = [k == key for k in keys]
        part = pd.concat([table.loc[rows, ["variant"]], numeric.loc[rows]], axis=1).reset_index(drop=True)
        bounds = thresholds_for(mode, json.loads(ov), grade)
        suite = build_suite(f"qa-{mode}{'-graded' if grade else ''}", bounds, part.columns)
        batch = batch_def.get_batch(batch_parameters={"dataframe": part})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        for r in result.results:
            if r.success:
                continue
            metric = r.expectation_config.kwargs["column"]
            lo, hi = bounds[metric]
            for idx in r.result.get("unexpected_index_list") or []:
                i = idx["index"] if isinstance(idx, dict) else idx
                variant = part.loc[i, "variant"]
                failed[variant][metric] = {"value": float(part.loc[i, metric]), "min": lo, "max": hi}
    return failed


def _t(frame, fps) -> str:
    return format_seconds(int(frame) / fps)


def _at(frame, fps) -> str:
    return "" if frame is None else f" at {_t(frame, fps)}"


def _limit(lo, hi) -> str:
    if lo is not None and hi is not None and lo == hi:
        return f"must be {lo:g}"
    if hi is not None:
        return f"limit {hi:g}"
    return f"needs at least {lo:g}"


def _worst(frames: pd.DataFrame, column: str, largest: bool):
    if column not in frames:
        return None
    col = pd.to_numeric(frames[column], errors="coerce").dropna()
    if col.empty:
        return None
    return col.idxmax() if largest else col.idxmin()


def reasons_for(qa, failed: dict[str, dict]) -> list[tuple[str, int | None]]:
    """Human reasons for the failed metrics of one variant (``qa.metrics.VariantQA``): (text, worst frame)."""
    fr, fps, out = qa.frames, qa.fps, []
    for metric, f in failed.items():
        i = None
        v, lo, hi = f["value"], f["min"], f["max"]
        lim = _limit(lo, hi)
        if metric == "label_text_match_rate":
            bad = fr[fr.get("text_match").eq(False)] if "text_match" in fr else fr.iloc[0:0]
            want = qa.facts.label.text if qa.facts.label else ""
            if len(bad):
                i = bad["cer"].astype(float).idxmax()
                times = ", ".join(_t(k, fps) for k in bad.index[:6])
                out.append(f"label read as '{bad.loc[i, 'ocr_text']}'{_at(i, fps)}, expected '{want}' "
                           f"(wrong on {len(bad)} of {int(fr['text_match'].notna().sum())} checked frames: {times})")
            else:
                out.append(f"label text matched on only {v:.0%} of checked frames ({lim})")
        elif metric == "label_artwork_similarity_min":
            i = _worst(fr, "artwork_similarity", False)
            out.append(f"label does not look like the market artwork{_at(i, fps)} (similarity {v:.2f}, {lim})")
        elif metric == "label_drift_max_px":
            i = _worst(fr, "drift_px", True)
            out.append(f"label drifted {v:.1f} px from its place on the product{_at(i, fps)} ({lim} px)")
        elif metric == "identity_distance_max":
            i = _worst(fr, "identity_distance", True)
            out.append(f"face is not the source's person{_at(i, fps)} (identity distance {v:.2f}, {lim})")
        elif metric == "face_lost_frames":
            lost = fr.index[fr.get("face_lost", pd.Series(dtype=bool)).eq(True)] if "face_lost" in fr else []
            i = lost[0] if len(lost) else None
            out.append(f"face lost in {int(v)} checked frame(s): " + ", ".join(_t(k, fps) for k in lost[:6]))
        elif metric == "flicker_max":
            i = _worst(fr, "flicker", True)
            out.append(f"flicker{_at(i, fps)}: {v:.1f} grey levels of frame-to-frame change the source's "
                       f"motion does not explain ({lim})")
        elif metric == "luma_jump_max":
            i = _worst(fr, "luma_jump", True)
            out.append(f"brightness jumps {v:.1f} grey levels{_at(i, fps)} where the source's does not ({lim})")
        elif metric == "motion_flow_error_max_px":
            i = _worst(fr, "flow_error_px", True)
            out.append(f"motion differs from the source{_at(i, fps)} (flow error {v:.2f} px, {lim} px)")
        elif metric == "motion_step_ratio_min":
            i = _worst(fr[fr["src_motion_px"] > 0.25] if "src_motion_px" in fr else fr, "step_ratio", False)
            out.append(f"frozen or duplicated frame{_at(i, fps)}: the picture changes {v:.0%} as much as the "
                       f"source's ({lim})")
        elif metric == "motion_step_ratio_max":
            i = _worst(fr[fr["src_motion_px"] > 0.25] if "src_motion_px" in fr else fr, "step_ratio", True)
            out.append(f"skipped frame{_at(i, fps)}: the picture jumps {v:.1f}x as far as the source's ({lim})")
        elif metric == "structure_edge_min":
            i = _worst(fr, "edge_similarity", False)
            out.append(f"layout departs from the source{_at(i, fps)} (edge similarity {v:.2f}, {lim})")
        elif metric == "colour_shift_max":
            i = _worst(fr, "colour_shift", True)
            out.append(f"colours shifted by delta E {v:.1f} against the source{_at(i, fps)} ({lim}); "
                       "set grade if the change is intended")
        elif metric in ("clipped_excess_max", "crushed_excess_max"):
            what = "clipped highlights" if metric.startswith("clipped") else "crushed blacks"
            out.append(f"{what}: {v:.1%} more of the picture than the source ({lim:s})")
        elif metric == "frame_count_delta":
            n = qa.frame_count
            out.append(f"output has {n + int(v)} frames, the source {n}: frames were "
                       f"{'dropped' if v < 0 else 'added'} ({abs(int(v))})")
        elif metric == "fps_equal":
            out.append("output frame rate differs from the source's")
        elif metric == "keyframe_ssim_min":
            i = _worst(fr, "keyframe_ssim", False)
            out.append(f"keyframe{_at(i, fps)} does not match its guide (SSIM {v:.2f}, {lim})")
        elif metric == "max_cll_nits":
            out.append(f"MaxCLL {v:.0f} cd/m² exceeds the mastering display ({lim})")
        else:
            out.append(f"{metric} = {v:g} ({lim})")
        out[-1] = (out[-1], None if i is None else int(i))
    return out


def verdicts(results: list, table: pd.DataFrame | None = None) -> dict[str, Verdict]:
    """Validate every variant of a run and explain the failures.

    Args:
        results: ``qa.metrics.VariantQA`` of the run (variant names unique).
        table: their metrics table (built when not given).

    Returns:
        variant -> ``Verdict``.
    """
    from qa.metrics import metrics_table

    table = metrics_table(results) if table is None else table
    failed = validate(table, {r.variant: r.facts.overrides for r in results})
    out = {}
    for r in results:
        f = failed.get(r.variant, {})
        why = reasons_for(r, f)
        out[r.variant] = Verdict(r.variant, not f, [w for w, _ in why], f, [k for _, k in why])
    return out
