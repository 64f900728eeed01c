"""Time on a shot's frame grid: seconds, timecode or frame numbers -> exact frame indices.

Frame rates are ``Fraction``; seconds are parsed as ``Fraction`` from their decimal text, so
``"2.5"`` at 24000/1001 fps lands on the same frame every time, on every machine.

Accepted forms (``parse_time``):

* ``"60f"`` or ``"#60"``      frame number 60 (0-based)
* ``"00:00:02:12"``          timecode HH:MM:SS:FF (non-drop-frame; FF counts frames at the rounded rate)
* ``"01:02.5"`` / ``"0:01:02.5"``  clock time MM:SS(.s) or HH:MM:SS(.s)
* ``"2.5"`` / ``"2.5s"`` / ``2.5``  seconds
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from ray32.errors import Ray32Error

_FRAME = re.compile(r"^\s*(?:#\s*(\d+)|(\d+)\s*f)\s*$", re.IGNORECASE)
_TIMECODE = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[:;](\d{1,3})\s*$")
_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d+)?)\s*$")
_SECONDS = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*s?\s*$", re.IGNORECASE)


class TimeFormatError(Ray32Error, ValueError):
    """A time string that is none of the accepted forms."""


def seconds_to_frame(seconds: Fraction, fps: Fraction) -> int:
    """Index of the frame nearest to ``seconds`` (halves round up, so 0.5 frame -> next frame)."""
    return math.floor(seconds * fps + Fraction(1, 2))


def frame_to_seconds(frame: int, fps: Fraction) -> Fraction:
    return Fraction(frame) / fps


def parse_time(value: str | int | float | Fraction, fps: Fraction) -> int:
    """Resolve a time given as frame number, timecode, clock time or seconds to a frame index.

    Args:
        value: ``"60f"``, ``"#60"``, ``"00:00:02:12"``, ``"01:02.5"``, ``"2.5s"``, ``"2.5"``, or a number of seconds.
            A Python ``int`` is seconds too; write ``"60f"`` for a frame number.
        fps: the shot's frame rate.

    Returns:
        The 0-based frame index (not range-checked: the caller knows the frame count).

    Raises:
        TimeFormatError: the text is none of the forms above; the message lists them.

    Example:
        >>> parse_time("00:00:01:12", Fraction(24))
        36
    """
    fps = Fraction(fps)
    if isinstance(value, Fraction):
        return seconds_to_frame(value, fps)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return seconds_to_frame(Fraction(str(value)), fps)
    text = str(value)
    if m := _FRAME.match(text):
        return int(m.group(1) or m.group(2))
    if m := _TIMECODE.match(text):
        hh, mm, ss, ff = (int(g) for g in m.groups())
        nominal = max(1, round(fps))
        if ff >= nominal:
            raise TimeFormatError(
                f"timecode {text!r}: frame field {ff} is not below the rate's {nominal} frames per second"
            )
        return seconds_to_frame(Fraction(hh * 3600 + mm * 60 + ss), fps) + ff
    if m := _CLOCK.match(text):
        hh = int(m.group(1) or 0)
        mm = int(m.group(2))
        ss = Fraction(m.group(3))
        return seconds_to_frame(hh * 3600 + mm * 60 + ss, fps)
    if m := _SECONDS.match(text):
        return seconds_to_frame(Fraction(m.group(1)), fps)
    raise TimeFormatError(
        f"cannot read {text!r} as a time; use seconds ('2.5' or '2.5s'), a clock time ('00:02.5'), "
        "a timecode HH:MM:SS:FF ('00:00:02:12') or a frame number ('60f')"
    )


def format_timecode(frame: int, fps: Fraction) -> str:
    """``HH:MM:SS:FF`` for a frame index (non-drop-frame, FF at the rounded rate)."""
    nominal = max(1, round(Fraction(fps)))
    seconds = math.floor(Fraction(frame) / Fraction(fps))
    ff = frame - seconds_to_frame(Fraction(seconds), Fraction(fps))
    ff = min(max(ff, 0), nominal - 1)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


def format_seconds(seconds: Fraction | float) -> str:
    """``MM:SS.ss`` for display (reports and messages)."""
    s = float(seconds)
    return f"{int(s // 60):02d}:{s % 60:05.2f}"
