"""Delivery checks: does a delivered file meet its target (``ray32.targets``)?

One file per check. Each declares ``NAME``, ``EXPLAIN`` (what it measures and why it matters, for the report)
and two pure functions: ``measure(facts) -> CheckResult`` (numbers from the facts ``qa.delivery`` gathered:
ffprobe's fields, loudness figures, black/freeze stretches, the tracks mapped into the delivered frame) and
``judge(result, target, facts) -> list[str]`` (the reasons it fails; the bounds are the target's, its tolerances
are the check's). Adding a check is one file plus one entry in ``CHECKS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from qa.checks.delivery import black_freeze, duration, frame_rate, loudness, safe_zone, stream_format

CHECKS = (stream_format, frame_rate, duration, loudness, black_freeze, safe_zone)
"""Every delivery check, in report order."""


@dataclass
class DeliveryFacts:
    """What the checks look at for one delivered file.

    Attributes:
        target: the ``DeliveryTarget``. file: the delivered file's name.
        probe: ``{"width", "height", "codec", "fps" (Fraction), "frame_count", "duration_s", "kbps",
            "video_kbps", "constant_frame_rate" (bool), "audio": {"codec", "rate", "channels"} or None}``.
        source_fps, source_frames: the variant's timing.
        loudness: ``{"before", "after", "gain_db", "note"}`` from the export (figures as dicts) -- ``after`` is
            measured on the delivered file.
        black, freeze: the longest black / frozen stretch (seconds) in the delivery and in the source.
        label_quads: (n, 4, 2) the label's corners per frame in the delivered frame's pixels (NaN: not tracked).
        face_boxes: (n, 4) face boxes per frame in the delivered frame's pixels (NaN: none).
    """

    target: object
    file: str
    probe: dict
    source_fps: Fraction
    source_frames: int
    loudness: dict | None = None
    black: dict = field(default_factory=dict)
    freeze: dict = field(default_factory=dict)
    label_quads: np.ndarray | None = None
    face_boxes: np.ndarray | None = None


__all__ = ["CHECKS", "DeliveryFacts"]
