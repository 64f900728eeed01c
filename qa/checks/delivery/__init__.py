"""Delivery checks: does a delivered file meet its target (``ray32.targets``)? Checks of the QA design.

One file per check, each with one declaration ``CHECK = Check(...)`` (``qa.checks.base``; needs ``"clip"``:
its ``finish(frames, clip)`` reads the ``DeliveryFacts`` in ``clip.facts`` and returns the measured numbers)
and ``metrics(target) -> tuple[Metric, ...]``: the same ``Metric`` declarations as every QA check (side, worst
frame column, the reviewer's explanation), bounded by the target's spec rather than by the mode (the bound is
the same in every mode). ``qa.delivery`` gathers the facts (ffprobe, ebur128, black/freeze detection, the tracks
mapped into the delivered frame), runs the checks in ``CHECKS`` and judges them by their declarations. Adding a
delivery check is one file plus one entry in ``CHECKS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass
class DeliveryFacts:
    """What the delivery checks look at for one delivered file.

    Attributes:
        target: the ``DeliveryTarget``. file: the delivered file's name.
        probe: ``{"width", "height", "codec", "fps" (Fraction), "frame_count", "duration_s", "kbps",
            "video_kbps", "constant_frame_rate" (bool), "audio": {"codec", "rate", "channels"} or None}``.
        source_fps, source_frames: the variant's timing.
        loudness: ``{"before", "after", "gain_db", "note"}`` (figures as dicts); ``after`` measured on the file.
        black, freeze: the longest black / frozen stretch (seconds): ``{"output": s, "source": s}``.
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


def same(value) -> dict:
    """A target's bound, the same in every mode."""
    from qa.checks.base import per_mode

    return per_mode(value)


from qa.checks.delivery import black_freeze, duration, frame_rate, loudness, safe_zone, stream_format  # noqa: E402

CHECKS = (stream_format, frame_rate, duration, loudness, black_freeze, safe_zone)
"""Every delivery check module (``CHECK`` + ``metrics(target)``), in report order."""

__all__ = ["CHECKS", "DeliveryFacts", "same"]
