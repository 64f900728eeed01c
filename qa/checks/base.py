"""The check declaration: what every check in ``qa/checks/`` says about itself.

A check is one module with one ``CHECK = Check(...)``, listed once in ``qa.registry.CHECKS``. The declaration
is the single home of everything about the check's metrics: their names, the bound per mode and which side of
it is bad, the per-frame column that locates the worst frame, how a failure is explained to a reviewer, whether
the metric is a key figure in the report, and which figure measured on the source widens its bound (the noise
floor). Verdicts (``qa.expectations``), the report (``qa.report``), campaign ``qa:`` overrides and the facts
file read these declarations; nothing else holds a metric table.

What a check needs decides how the one measuring path (``qa.metrics.measure``) calls it:

* ``"frames"``  ``measure(batch)`` on every chunk of frames: source, output and the *intended reference* (the
  source through the variant's own grade and label swap) at the analysis size, full-size frames, and the mask
  of the regions whose change is intended (``Batch``);
* ``"pairs"``   the same, plus the consecutive-frame flows and steps (``Batch.src_flows`` ...);
* ``"samples"`` ``finish`` gets the full-size frames at the sampled indices (``Clip.samples``);
* ``"clip"``    ``finish`` gets the clip's counts and rates only.

``finish(frames, clip)`` is called once at the end with the check's concatenated per-frame table (empty when
the check is not streamed) and returns the ``CheckResult`` whose ``summary`` holds the declared metrics.
A check may keep state across batches in ``batch.state`` / ``clip.state`` (one dict per check).
A check takes frames and facts and returns numbers: it never opens files, logs to Prefect or decides bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import pandas as pd

MODES = ("adhere", "flex", "reimagine")
"""The request modes, strictest first. A bound is given per mode."""
NEEDS = ("frames", "pairs", "samples", "clip")
"""What a check can ask for (see the module docstring)."""
REGIONS = (None, "label", "face")
"""Where a check looks: the whole frame (intended-change regions left out), the label/product, a face."""


@dataclass
class CheckResult:
    """What one check measured.

    Attributes:
        name: the check ("label", "identity", ...).
        frames: per-frame numbers (and texts), indexed by frame index; may be empty.
        summary: one number per metric for the whole clip (NaN when it could not be measured: not judged).
    """

    name: str
    frames: pd.DataFrame
    summary: dict[str, float] = field(default_factory=dict)


def frame_table(rows: list[dict], index: list[int]) -> pd.DataFrame:
    """A per-frame table from row dicts and their frame indices."""
    return pd.DataFrame(rows, index=pd.Index(index, name="frame"))


@dataclass(frozen=True)
class Failure:
    """A failed metric, as ``Metric.explain`` sees it.

    Attributes:
        metric: the declaration. value: the measured number. bound: the bound it broke (floor included).
        limit: the bound in words ("limit 3", "needs at least 0.8", "must be 0").
        frame: the worst frame (from ``Metric.worst``) or None. at: " at 00:02.13" or "".
        qa: the variant's ``qa.metrics.VariantQA`` (facts, per-frame table, fps) for richer explanations.
    """

    metric: "Metric"
    value: float
    bound: float
    limit: str
    frame: int | None
    at: str
    qa: Any


Explain = str | Callable[[Failure], "str | tuple[str, int | None]"]


@dataclass(frozen=True)
class Metric:
    """One number a check measures and how it is judged.

    Attributes:
        name: the metric's name (a column of the metrics table, a key of ``qa:`` overrides).
        side: "max": the value must be at most the bound; "min": at least; "equal": exactly.
        bound: mode -> bound (None: not judged in that mode). ``per_mode`` fills it.
        worst: the per-frame column that locates the worst frame (its largest value for "max", smallest for
            "min"), or None for a whole-clip figure.
        explain: a format string over ``value``, ``limit``, ``at``, ``bound``, ``unit`` and ``frame``, or a
            function of a ``Failure`` returning the text (or (text, worst frame)). Written for a reviewer.
        key: shown in the report's metric table.
        floor: the summary figure measured on the source (its own noise: flicker, motion, edge instability)
            that widens the bound: ``bound + floor_scale * floor`` for "max", ``- ...`` for "min".
        floor_scale: see ``floor``.
        unit: for the report ("px", "grey levels", "ΔE").
        when: None, or a predicate of the variant's facts: the metric is judged only when it returns True.
    """

    name: str
    side: Literal["max", "min", "equal"]
    bound: Mapping[str, float | None]
    worst: str | None = None
    explain: Explain = "{name} = {value:.3g} ({limit}){at}"
    key: bool = False
    floor: str | None = None
    floor_scale: float = 1.0
    unit: str = ""
    when: Callable[[Any], bool] | None = None

    def bound_for(self, mode: str, summary: Mapping[str, float] | None = None,
                  override: Mapping[str, float] | None = None) -> tuple[float | None, float | None]:
        """(min, max) for ``mode``: the declared bound widened by the source's noise floor (from ``summary``),
        then a campaign's override (``{"min": .., "max": ..}``, taken as is)."""
        if mode not in self.bound:
            raise ValueError(f"unknown mode {mode!r}; use one of {list(MODES)}")
        b = self.bound[mode]
        lo = hi = None
        if b is not None:
            extra = 0.0
            if self.floor and summary is not None:
                f = summary.get(self.floor)
                if f is not None and not (isinstance(f, float) and math.isnan(f)):
                    extra = self.floor_scale * max(0.0, float(f))
            if self.side == "max":
                hi = b + extra
            elif self.side == "min":
                lo = b - extra
            else:
                lo = hi = b
        if override:
            lo, hi = override.get("min", lo), override.get("max", hi)
        return lo, hi


def per_mode(adhere: float | None, flex: float | None = ..., reimagine: float | None = ...) -> dict:
    """A bound per mode; a mode left out takes the stricter mode's bound (flex <- adhere, reimagine <- flex)."""
    flex = adhere if flex is ... else flex
    reimagine = flex if reimagine is ... else reimagine
    return {"adhere": adhere, "flex": flex, "reimagine": reimagine}


@dataclass
class Batch:
    """One chunk of frames, as a streamed check sees it (all arrays in frame order, RGB uint8).

    Attributes:
        first: the frame index of the first frame. index: the frame indices.
        src, out, ref: (n, h, w, 3) at the analysis size: source, output and the intended reference (the
            source through the variant's grade and label swap; the source itself when nothing is intended).
        keep: (n, h, w) bool at the analysis size: True where whole-frame checks judge (the label/locked regions
            whose change is intended are False).
        src_full, out_full: the full-size frames (n, H, W, 3) (the output resized to the source's size): an array
            or a ``qa.metrics.FrameSeq`` of (H, W, 3) views of the decoded chunks; index them per frame.
        prev: (src, out, ref, keep) at the analysis size of the frame before ``first`` or None (first batch).
        src_flows, out_flows: (m, h, w, 2) flows between consecutive frames (pairs (prev, first) ...), m = n or
            n - 1 on the first batch; ``pair_first`` is the frame index i of the first pair (i - 1, i).
        src_steps, out_steps, ref_steps: (m,) mean absolute grey change between those frames.
        clip: the ``Clip`` (facts, fps, label track, artwork ...). state: this check's dict, kept between batches.
        ref_is_src: nothing is intended (no grade, no swap): ``ref`` is the source itself.
        seqs: "src", "out", "ref", "keep" with the previous frame first (what ``seq`` returns), when the measuring
            path made them (``src`` ... are then views of them); None: ``seq`` joins them.
        grays: "src", "out", "ref": the grey frames of ``seq`` (``gray_seq``), when the measuring path made them.
    """

    first: int
    index: np.ndarray
    src: np.ndarray
    out: np.ndarray
    ref: np.ndarray
    keep: np.ndarray
    src_full: "np.ndarray | Sequence[np.ndarray]"
    out_full: "np.ndarray | Sequence[np.ndarray]"
    prev: tuple | None
    clip: "Clip"
    state: dict
    src_flows: np.ndarray | None = None
    out_flows: np.ndarray | None = None
    src_steps: np.ndarray | None = None
    out_steps: np.ndarray | None = None
    ref_steps: np.ndarray | None = None
    pair_first: int = 1
    ref_is_src: bool = False
    seqs: dict | None = None
    grays: dict | None = None

    def seq(self, which: str) -> np.ndarray:
        """The analysis-size frames of ``which`` ("src", "out", "ref", "keep") with the previous frame first
        (the frames the pairs run over)."""
        if self.seqs is not None and which in self.seqs:
            return self.seqs[which]
        k = ("src", "out", "ref", "keep").index(which)
        cur = getattr(self, which)
        return cur if self.prev is None else np.concatenate([self.prev[k][None], cur])

    def gray_seq(self, which: str) -> np.ndarray:
        """``seq(which)`` ("src", "out", "ref") as grey frames (n, h, w) uint8, made once per batch."""
        if self.grays is not None and which in self.grays:
            return self.grays[which]
        import cv2

        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in self.seq(which)])

    def gray(self, which: str) -> np.ndarray:
        """The batch's own grey frames of ``which`` (without the previous frame)."""
        g = self.gray_seq(which)
        return g if self.prev is None else g[1:]


@dataclass
class Clip:
    """What every check may read about the variant as a whole (built once by ``qa.metrics.measure``).

    Attributes:
        facts: the variant's ``qa.facts.Facts``. fps / output_fps: frame rates. source_count / output_count:
        frame counts. analysis_size: (w, h) of ``Batch.src``. full_size: (W, H) of the source.
        label_track: frame -> the source's label quad (4, 2) in source pixels (NaN: not judged there) or None.
        label_score: frame -> the tracker's confidence 0..1 (None when unknown).
        artwork: the market artwork (RGB) or None. identity_reference: a lock's face embedding or None.
        guides: keyframe frame -> guide image. samples: frame -> (source, output, reference) at the sampled indices
        (source and output full size, the reference at the analysis size; filled before ``finish``). reference_kind: what the output is judged against, in
        words. cache: per-source cache (shared by the variants of a shot). state: check name -> its dict.
        hdr: (MaxCLL, MaxFALL) of an HDR output or None. notes: things not judged, in words (checks append).
        make_reference: ``make_reference(frame, image, corners[, place])``: the intended reference of a full-size
            source image or crop of frame ``frame`` (label swapped at ``corners``, in the image's pixels, and
            graded); ``place`` (x0, y0) of a crop lets the swapped crop be kept for other variants of the market
            (``qa.metrics.Swaps``).
        sample_index: the evenly spread sampled frames (OCR, report pairs).
        grade_invariant: the variant is judged on grade-invariant measures against the source (a generative
            engine's: ``qa.facts.judging``); whole-frame checks then measure their grade-invariant metrics, and
            ``Batch`` flows and steps are made on normalised luminance.
        label_visibility: where the label lock intends the artwork (``ray32.label_lock.LabelVisibility`` of the
            source's track: ``alpha`` per frame, ``withheld`` ranges where the track is lost), or None.
        source_face_boxes: (n, 4) ``[x0, y0, x1, y1]`` of the source's face per frame (NaN: none), as the shot's
            preparation found them, or None: where to look for the source's face first.
        source_only: the source-side pass at the shot's preparation (``qa.metrics.measure_source``): the output
            is the source itself and only the source's measurements matter (a check may skip the output's side).
        parallel: QA runs in more than one thread (``qa.metrics.measure_frames``' ``parallel``): a check may start
            work it will need in ``finish`` in a background thread while the frames are measured (the label's OCR).
    """

    facts: Any
    fps: Fraction
    output_fps: Fraction
    source_count: int
    output_count: int
    analysis_size: tuple[int, int] | None = None
    full_size: tuple[int, int] | None = None
    label_track: dict[int, np.ndarray] | None = None
    label_score: dict[int, float] | None = None
    artwork: np.ndarray | None = None
    identity_reference: np.ndarray | None = None
    guides: dict[int, np.ndarray] = field(default_factory=dict)
    samples: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    reference_kind: str = "the source"
    grade: Any = None
    cache: dict = field(default_factory=dict)
    state: dict[str, dict] = field(default_factory=dict)
    hdr: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    make_reference: Callable[..., np.ndarray] | None = None
    sample_index: tuple[int, ...] = ()
    grade_invariant: bool = False
    label_visibility: Any = None
    source_face_boxes: np.ndarray | None = None
    source_only: bool = False
    parallel: bool = False


@dataclass(frozen=True)
class Check:
    """A check's declaration (see the module docstring).

    Attributes:
        name: the check's name ("label", "temporal" ...).
        needs: subset of ``NEEDS``.
        metrics: the metrics it judges (``Metric``); figures it reports without judging need no declaration.
        finish: ``finish(frames, clip) -> CheckResult`` (called once).
        measure: ``measure(batch) -> pd.DataFrame`` of per-frame rows (index: frame), for "frames"/"pairs".
        region: where it looks (``REGIONS``).
        about: one line for the report: what is compared with what.
        sample_frames: ``sample_frames(clip) -> set of frame indices`` this check wants full-size (beyond the
            evenly spread samples), e.g. keyframes.
        about_invariant: ``about`` for a variant judged on grade-invariant measures (empty: the same ``about``).
        applies: None, or a predicate of the variant's facts: the check's metrics are judged (and listed as not
            judged when unmeasured) only when it returns True -- no label, no label metrics; no keyframe guides,
            no keyframe metric. A metric's own ``when`` narrows it further.
        source_side: its measure keeps measurements of the source in ``Clip.cache`` (made once per shot):
            ``qa.metrics.measure_source`` runs it at the shot's preparation, so no variant's QA makes them.
        source_per_variant: some of those measurements depend on the variant's grade or artwork (the graded
            source's faces, the swapped label): ``measure_source`` runs it again for each grade and artwork.
    """

    name: str
    needs: frozenset[str]
    metrics: tuple[Metric, ...]
    finish: Callable[[pd.DataFrame, Clip], CheckResult]
    measure: Callable[[Batch], pd.DataFrame] | None = None
    region: str | None = None
    about: str = ""
    sample_frames: Callable[[Clip], set[int]] | None = None
    about_invariant: str = ""
    applies: Callable[[Any], bool] | None = None
    source_side: bool = False
    source_per_variant: bool = False

    def describe(self, clip: Clip) -> str:
        """What this check compares with what for ``clip`` (the report's "judged against" list)."""
        return self.about_invariant if clip.grade_invariant and self.about_invariant else self.about

    def __post_init__(self):
        bad = set(self.needs) - set(NEEDS)
        if bad:
            raise ValueError(f"check {self.name}: unknown needs {sorted(bad)}; use {list(NEEDS)}")
        if self.region not in REGIONS:
            raise ValueError(f"check {self.name}: unknown region {self.region!r}; use {list(REGIONS)}")
        if ({"frames", "pairs"} & set(self.needs)) and self.measure is None:
            raise ValueError(f"check {self.name}: a streamed check ('frames'/'pairs') needs a measure function")
        for m in self.metrics:
            if set(m.bound) != set(MODES):
                raise ValueError(f"check {self.name}: metric {m.name} needs a bound for each of {list(MODES)}")

    @property
    def streamed(self) -> bool:
        return bool({"frames", "pairs"} & set(self.needs))
