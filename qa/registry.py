"""The one list of QA checks, and lookups over their declarations.

How to add a check (one file plus one list entry):

1. Write ``qa/checks/my_check.py`` with a measure function and its declaration::

       from qa.checks.base import Check, CheckResult, Metric, frame_table, per_mode

       def measure(batch):                      # needs "frames": called on every chunk of frames
           rows = [{"mean_diff": float(abs(o.astype(float) - r).mean())} for o, r in zip(batch.out, batch.ref)]
           return frame_table(rows, list(batch.index))

       def finish(frames, clip):                # called once: the concatenated per-frame table -> metrics
           return CheckResult("my_check", frames, {"mean_diff_max": float(frames["mean_diff"].max())})

       CHECK = Check(
           name="my_check", needs=frozenset({"frames"}), measure=measure, finish=finish,
           about="what is compared with what, in one line for the report",
           metrics=(Metric("mean_diff_max", "max", per_mode(4.0, 6.0, 10.0), worst="mean_diff", key=True,
                           explain="the picture differs by {value:.1f} grey levels{at} ({limit})"),))

2. Add ``my_check.CHECK`` to ``CHECKS`` below.

A check that keeps measurements of the source alone in ``clip.cache`` (once per shot) sets ``source_side=True``,
so the shot's source-side pass at preparation (``qa.metrics.measure_source``) makes them; there
``clip.source_only`` is True and the output's side can be skipped.

That is all: ``ray32 qa`` and the campaign run measure it (``qa.metrics.measure``), verdicts and reasons come
from its declaration (``qa.expectations``), the report shows its key metrics, and ``mean_diff_max`` becomes a
valid key of campaign.yaml's ``qa:`` section and of a facts file's ``overrides``.
"""

from __future__ import annotations

from qa.checks import exposure, identity, label, label_lost, motion, structure, sync, temporal, timing
from qa.checks.base import MODES, Check, Metric

CHECKS: tuple[Check, ...] = (
    label.CHECK,
    label_lost.CHECK,
    identity.CHECK,
    temporal.CHECK,
    motion.CHECK,
    sync.CHECK,
    structure.CHECK,
    exposure.CHECK,
    timing.CHECK,
    timing.KEYFRAMES_CHECK,
    exposure.HDR_CHECK,
)
"""Every check ``qa.metrics.measure`` runs, in report order."""


def _index() -> dict[str, tuple[Check, Metric]]:
    out: dict[str, tuple[Check, Metric]] = {}
    for c in CHECKS:
        for m in c.metrics:
            if m.name in out:
                raise RuntimeError(f"metric {m.name} is declared by both {out[m.name][0].name} and {c.name}")
            out[m.name] = (c, m)
    return out


METRICS: dict[str, tuple[Check, Metric]] = _index()
"""metric name -> (its check, its declaration)."""


def metric(name: str) -> Metric:
    """The declaration of a judged metric.

    Raises:
        KeyError: no check declares it (the message lists the valid names).
    """
    try:
        return METRICS[name][1]
    except KeyError:
        raise KeyError(f"unknown QA metric {name!r}; valid metrics: {', '.join(metric_names())}") from None


def metric_names() -> list[str]:
    """Every judged metric's name, sorted."""
    return sorted(METRICS)


def check(name: str) -> Check:
    for c in CHECKS:
        if c.name == name:
            return c
    raise KeyError(f"unknown QA check {name!r}; checks: {', '.join(c.name for c in CHECKS)}")


def bounds(mode: str, summary: dict | None = None, overrides: dict | None = None) -> dict[str, tuple]:
    """(min, max) of every judged metric for ``mode``, widened by the source's noise floors in ``summary`` and
    with a campaign's ``overrides`` (``{metric: {"min"|"max": v}}``) applied. A metric whose declaration's
    ``when`` is false for the variant is left out by ``qa.expectations``, not here.

    Raises:
        ValueError: an unknown mode or an override naming no metric (the message lists the valid names).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {list(MODES)}")
    overrides = overrides or {}
    bad = sorted(set(overrides) - set(METRICS))
    if bad:
        raise ValueError(f"override for unknown metric(s) {', '.join(map(repr, bad))}; valid metrics: "
                         f"{', '.join(metric_names())}")
    return {name: m.bound_for(mode, summary, overrides.get(name)) for name, (_, m) in METRICS.items()}


ALIASES = {"label_corner_px": "label_drift_max_px"}
"""campaign.yaml ``qa:`` keys that name a QA metric differently."""


def overrides_from_config(raw: dict | None) -> dict[str, dict[str, float]]:
    """campaign.yaml's ``qa:`` section as overrides (``{metric: {"min"|"max": v}}``).

    A plain number replaces the bound on the side the metric's declaration judges (``label_corner_px: 2`` ->
    ``label_drift_max_px <= 2``; ``structure_edge_min: 0.6`` -> at least 0.6); a mapping gives ``min`` and/or
    ``max``.

    Raises:
        ValueError: every key that names no QA metric and every value that is not a number, at once, with the
            list of valid metric names.
    """
    out, bad = {}, []
    for key, value in (raw or {}).items():
        name = ALIASES.get(key, key)
        if name not in METRICS:
            bad.append(f"'{key}' names no QA metric")
            continue
        m = METRICS[name][1]

        def number(x):
            return isinstance(x, (int, float)) and not isinstance(x, bool)

        if isinstance(value, dict) and value and set(value) <= {"min", "max"} and all(map(number, value.values())):
            out[name] = {k: float(v) for k, v in value.items()}
        elif number(value):
            out[name] = ({"min": float(value), "max": float(value)} if m.side == "equal"
                         else {m.side: float(value)})
        else:
            bad.append(f"'{key}': give a number or {{min: .., max: ..}}, got {value!r}")
    if bad:
        raise ValueError("; ".join(bad) + f". Valid metrics: {', '.join(metric_names())} (alias: "
                         + ", ".join(f"{a} = {b}" for a, b in ALIASES.items()) + ")")
    return out
