"""Verdicts: the metrics table validated by a Great Expectations suite built from the checks' declarations.

The bounds, their side, the worst-frame column and the reviewer's explanation of every metric live in its
check's declaration (``qa/checks/*.py``, listed in ``qa.registry``); this module only applies them. A variant's
bounds are its mode's, widened by the noise floors measured on its source (``Metric.floor``) and with its
campaign's overrides (``Facts.overrides``). A metric that could not be measured (NaN) is *not judged*: it
neither fails nor passes, and the report says so. Each failed expectation becomes a reason a reviewer can act
on, with the timecode of the worst frame, e.g. ``label read as 'AQUA FRESH 500m' at 00:02.13 ...``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from qa.checks.base import Failure, Metric
from qa.registry import METRICS, bounds
from ray32.timecode import format_seconds

log = logging.getLogger(__name__)


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


def thresholds_for(mode: str, overrides: dict | None = None, summary: dict | None = None) -> dict[str, tuple]:
    """The (min, max) bounds of every metric for a mode (``qa.registry.bounds``)."""
    return bounds(mode, summary, overrides)


def variant_bounds(qa) -> dict[str, tuple]:
    """The bounds one variant (``qa.metrics.VariantQA``) is judged by: its mode, its source's noise floors, its
    overrides, and only the metrics whose ``when`` holds for its facts."""
    b = bounds(qa.facts.mode, qa.summary, qa.facts.overrides)
    return {k: v for k, v in b.items() if judged_for(k, qa.facts)}


def judged_for(metric: str, facts) -> bool:
    """Whether ``metric`` applies to a variant with ``facts``: its check's ``applies`` and its own ``when``."""
    check, m = METRICS[metric]
    return (check.applies is None or check.applies(facts)) and (m.when is None or m.when(facts))


def build_suite(name: str, bounds_: dict[str, tuple], columns: Iterable[str]):
    """A Great Expectations suite: one ``ExpectColumnValuesToBeBetween`` per bounded metric present."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for metric, (lo, hi) in bounds_.items():
        if metric in columns and (lo is not None or hi is not None):
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
                column=metric, min_value=lo, max_value=hi, meta={"metric": metric}))
    return suite


def validate(table: pd.DataFrame, variant_bounds_: dict[str, dict[str, tuple]]) -> dict[str, dict[str, dict]]:
    """Validate the metrics table (``qa.metrics.metrics_table``): variants with the same bounds in one suite.

    Args:
        table: one row per variant with ``variant`` and metric columns.
        variant_bounds_: variant -> its bounds (``variant_bounds``).

    Returns:
        variant -> {failed metric -> {"value", "min", "max"}} (an empty dict for a variant that passed).
    """
    import great_expectations as gx

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
    keys = [json.dumps(variant_bounds_[v], sort_keys=True) for v in table["variant"]]
    numeric = table.drop(columns=[c for c in ("variant", "mode", "grade") if c in table]).apply(
        pd.to_numeric, errors="coerce")
    for n, key in enumerate(sorted(set(keys))):
        rows = [k == key for k in keys]
        part = pd.concat([table.loc[rows, ["variant"]], numeric.loc[rows]], axis=1).reset_index(drop=True)
        b = {m: tuple(v) for m, v in json.loads(key).items()}
        suite = build_suite(f"qa-{n}", b, part.columns)
        batch = batch_def.get_batch(batch_parameters={"dataframe": part})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        for r in result.results:
            if r.success:
                continue
            metric = r.expectation_config.kwargs["column"]
            lo, hi = b[metric]
            for idx in r.result.get("unexpected_index_list") or []:
                i = idx["index"] if isinstance(idx, dict) else idx
                variant = part.loc[i, "variant"]
                failed[variant][metric] = {"value": float(part.loc[i, metric]), "min": lo, "max": hi}
    return failed


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def limit_text(lo, hi) -> str:
    """A bound in words: "limit 3", "needs at least 0.8", "must be 0"."""
    if lo is not None and hi is not None and lo == hi:
        return f"must be {_num(lo)}"
    if hi is not None and lo is not None:
        return f"between {_num(lo)} and {_num(hi)}"
    if hi is not None:
        return f"limit {_num(hi)}"
    return f"needs at least {_num(lo)}"


def worst_frame(frames: pd.DataFrame, m: Metric) -> int | None:
    """The frame the metric's ``worst`` column locates (largest for "max", smallest for "min")."""
    if m.worst is None or m.worst not in frames:
        return None
    col = pd.to_numeric(frames[m.worst], errors="coerce").dropna()
    if col.empty:
        return None
    return int(col.idxmin() if m.side == "min" else col.idxmax())


def explain(qa, name: str, f: dict) -> tuple[str, int | None]:
    """A reviewer's reason for one failed metric (its declaration's ``explain``) and the worst frame."""
    m = METRICS[name][1]
    v, lo, hi = f["value"], f["min"], f["max"]
    i = worst_frame(qa.frames, m)
    at = "" if i is None else f" at {format_seconds(i / qa.fps)}"
    lim = limit_text(lo, hi)
    failure = Failure(metric=m, value=v, bound=hi if m.side == "max" else lo, limit=lim, frame=i, at=at, qa=qa)
    if callable(m.explain):
        got = m.explain(failure)
        return got if isinstance(got, tuple) else (got, i)
    return m.explain.format(name=name, value=v, limit=lim, at=at, bound=failure.bound, unit=m.unit,
                            frame=i), i


def reasons_for(qa, failed: dict[str, dict]) -> list[tuple[str, int | None]]:
    """Human reasons for the failed metrics of one variant (``qa.metrics.VariantQA``): (text, worst frame)."""
    return [explain(qa, name, f) for name, f in failed.items()]


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
    failed = validate(table, {r.variant: variant_bounds(r) for r in results})
    out = {}
    for r in results:
        f = failed.get(r.variant, {})
        why = reasons_for(r, f)
        out[r.variant] = Verdict(r.variant, not f, [w for w, _ in why], f, [k for _, k in why])
    return out


def not_judged(qa) -> list[str]:
    """The judged metrics this variant could not measure (NaN), e.g. no face in the source. An SDR output has no
    MaxCLL at all (the hdr check leaves it out of the summary), so it is not listed."""
    return [k for k in variant_bounds(qa) if k in qa.summary and isinstance(qa.summary[k], float)
            and math.isnan(qa.summary[k])]
