"""The render request: everything a director asks of one variant, as one frozen, validated record.

A ``RenderRequest`` carries the Ray-3.2-style controls (target-state prompt, keyframes, motion and structure
adherence, locks, mode, reframe, grade, label swap, seed, outputs). It is plain data: engines read it, the
campaign planner writes it (the field names are the contract), and unknown fields are rejected so a typo in a
spreadsheet column never passes silently.

Times (keyframes, grade keys, the label's reference frame) are given as seconds, timecode or frame numbers
(see ``ray32.timecode.parse_time``) and resolve to exact frame indices of a shot with ``resolve_keyframes``,
``resolve_grade_keys`` and ``resolve_label_frame``; a time outside the shot or two keys on one frame is a
``RequestError``.

Example:
    >>> req = RenderRequest(prompt="the same shot at golden hour", mode="flex",
    ...                     keyframes=[{"time": "2.5", "prompt": "sun low behind the bottle"}])
    >>> [k.frame for k in req.resolve_keyframes(Fraction(24), 72)]
    [60]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ray32.errors import Ray32Error
from ray32.timecode import TimeFormatError, format_seconds, parse_time

Aspect = Literal["9:16", "1:1", "4:5", "16:9", "21:9"]
Mode = Literal["adhere", "flex", "reimagine"]
TimeValue = str | int | float


class RequestError(Ray32Error, ValueError):
    """A request that does not fit the shot it is applied to (a time outside the clip, duplicate keys)."""


@dataclass(frozen=True)
class Controls:
    """The adherences and generation strength an engine uses, after the mode's preset is applied."""

    motion_adherence: float
    structure_adherence: float
    strength: float


PRESETS: dict[str, Controls] = {
    # How far a generative engine may move away from the source: adherences close to 1 keep timing and layout;
    # ``strength`` is the share of the denoising schedule that is re-generated (0 = the source itself).
    "adhere": Controls(motion_adherence=0.9, structure_adherence=0.9, strength=0.45),
    "flex": Controls(motion_adherence=0.7, structure_adherence=0.6, strength=0.65),
    "reimagine": Controls(motion_adherence=0.45, structure_adherence=0.25, strength=0.9),
}
"""Mode presets. Explicit ``motion_adherence`` / ``structure_adherence`` (and ``engine_options['strength']``)
win over the preset's values."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_time(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a time must be seconds (2.5), a timecode ('00:00:02:12') or a frame number ('60f'), "
                         f"not {value!r}")
    return value


class Keyframe(_Model):
    """A time on the shot and what the output must show there: a guide image and/or a prompt override."""

    time: TimeValue = Field(description="seconds (2.5), clock time ('00:02.5'), timecode ('00:00:02:12') or "
                                        "frame number ('60f')")
    guide: Path | None = Field(default=None, description="image the output must match at that frame")
    prompt: str | None = Field(default=None, description="target-state prompt from this keyframe on")

    _time = field_validator("time", mode="before")(_check_time)

    @model_validator(mode="after")
    def _guide_or_prompt(self) -> Keyframe:
        if self.guide is None and not (self.prompt or "").strip():
            raise ValueError(f"keyframe at {self.time!r} has neither a guide image nor a prompt; give at least one")
        return self


class Lock(_Model):
    """A region or identity that must not change."""

    kind: Literal["face", "product", "label", "region"]
    polygon: list[list[float]] | None = Field(default=None, description="[[x, y], ...] in source pixels")
    reference: Path | None = Field(default=None, description="reference image (the face, the product, the artwork)")

    @field_validator("polygon")
    @classmethod
    def _polygon_points(cls, v):
        if v is None:
            return v
        if len(v) < 3 or any(len(p) != 2 for p in v):
            raise ValueError(f"a polygon needs at least 3 points of [x, y], got {v!r}")
        return v

    @model_validator(mode="after")
    def _region_needs_polygon(self) -> Lock:
        if self.kind == "region" and self.polygon is None:
            raise ValueError("a 'region' lock needs a polygon: [[x, y], [x, y], [x, y], ...] in source pixels")
        return self


class Reframe(_Model):
    """Target aspect ratio and how to reach it: a subject-tracked crop, or outpainting (generative engines)."""

    aspect: Aspect
    method: Literal["crop", "outpaint"] = "crop"

    @property
    def ratio(self) -> Fraction:
        """Width / height of the target, exactly."""
        w, h = self.aspect.split(":")
        return Fraction(int(w), int(h))


class GradeKey(_Model):
    """The grade at one time; a field left out takes the base grade's value."""

    time: TimeValue
    temperature: float | None = Field(default=None, ge=1000, le=15000)
    tint: float | None = Field(default=None, ge=-1, le=1)
    exposure: float | None = Field(default=None, ge=-10, le=10)
    contrast: float | None = Field(default=None, gt=0, le=4)
    saturation: float | None = Field(default=None, ge=0, le=4)

    _time = field_validator("time", mode="before")(_check_time)


GRADE_FIELDS = ("temperature", "tint", "exposure", "contrast", "saturation")


class Grade(_Model):
    """Relight by grade, applied in linear light.

    ``temperature`` is the colour temperature of the light the shot should look lit by, in kelvin: 6500 (D65)
    leaves the colour as it is, lower is warmer (3200 = tungsten, 2700 = candle-like), higher is cooler
    (1000..15000 K, the range of the Planckian-locus approximation used).
    ``tint`` moves along green (-) / magenta (+). ``exposure`` is in stops; ``contrast`` scales around mid
    grey in log space (1 = unchanged); ``saturation`` 1 = unchanged, 0 = grey. ``lut`` is a .cube file applied
    last, to the source's encoded values. ``keyframes`` interpolate these values over time (for example light
    warming during the shot).
    """

    temperature: float = Field(default=6500, ge=1000, le=15000)
    tint: float = Field(default=0, ge=-1, le=1)
    exposure: float = Field(default=0, ge=-10, le=10)
    contrast: float = Field(default=1, gt=0, le=4)
    saturation: float = Field(default=1, ge=0, le=4)
    lut: Path | None = None
    keyframes: list[GradeKey] = Field(default_factory=list)

    @field_validator("lut")
    @classmethod
    def _cube(cls, v):
        if v is not None and Path(v).suffix.lower() != ".cube":
            raise ValueError(f"lut must be a .cube file, got {str(v)!r}; export the LUT as .cube (Resolve / Adobe "
                             "format)")
        return v

    def values(self) -> dict[str, float]:
        """The base values (no keyframes) as a dict."""
        return {k: float(getattr(self, k)) for k in GRADE_FIELDS}


class LabelSwap(_Model):
    """Replace the label seen in the shot with a market's artwork, tracked through the shot.

    ``corners`` are the label's four corners (top-left, top-right, bottom-right, bottom-left) in source pixels on
    frame ``frame``: an ``int`` or a string of digits is a frame number; other strings are times
    (``"2.5s"``, ``"00:00:01:12"``, ``"60f"``).
    """

    artwork: Path
    text: str = Field(description="the text the artwork carries, as OCR should read it back")
    corners: list[list[float]]
    frame: int | str = 0

    @field_validator("corners")
    @classmethod
    def _four_corners(cls, v):
        if len(v) != 4 or any(len(p) != 2 for p in v):
            raise ValueError(f"corners must be 4 points [[x, y], ...] (top-left, top-right, bottom-right, "
                             f"bottom-left), got {v!r}")
        return v

    @field_validator("frame", mode="before")
    @classmethod
    def _frame(cls, v):
        if isinstance(v, bool) or isinstance(v, float):
            raise ValueError(f"frame must be a frame number (12) or a time string ('0.5s', '12f'), got {v!r}")
        if isinstance(v, int) and v < 0:
            raise ValueError(f"frame must be >= 0, got {v}")
        return v


@dataclass(frozen=True)
class ResolvedKeyframe:
    """A keyframe on the shot's frame grid."""

    frame: int
    guide: Path | None
    prompt: str | None


class RenderRequest(_Model):
    """One variant's render request (see the module docstring). Field names are shared with the campaign plan.

    Args:
        prompt: the target-state prompt: the finished shot described as if it exists.
        keyframes: times with a guide image and/or a prompt override.
        motion_adherence, structure_adherence: 0..1; None takes the mode's preset.
        locks: regions or identities that must not change.
        mode: ``"adhere"``, ``"flex"`` or ``"reimagine"`` (presets; explicit values win).
        reframe: target aspect and method, or None to keep the source's frame.
        grade: relight by grade, or None.
        label_swap: the market's label artwork, or None.
        seed: random seed of generative engines.
        outputs: export formats (``ray32.export.available_formats()``).
        engine_options: engine-specific settings (for example ``strength``, ``steps``).
    """

    prompt: str = ""
    keyframes: list[Keyframe] = Field(default_factory=list)
    motion_adherence: float | None = Field(default=None, ge=0, le=1)
    structure_adherence: float | None = Field(default=None, ge=0, le=1)
    locks: list[Lock] = Field(default_factory=list)
    mode: Mode = "adhere"
    reframe: Reframe | None = None
    grade: Grade | None = None
    label_swap: LabelSwap | None = None
    seed: int = 0
    outputs: list[str] = Field(default_factory=lambda: ["draft"])
    engine_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v):
        if not v:
            raise ValueError("outputs must name at least one format, e.g. ['draft']")
        if len(set(v)) != len(v):
            raise ValueError(f"outputs lists a format twice: {v!r}")
        return v

    # ------------------------------------------------------------------------------------------ resolution

    def controls(self) -> Controls:
        """The mode's preset with the explicit values applied over it."""
        preset = PRESETS[self.mode]
        strength = self.engine_options.get("strength", preset.strength)
        if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 <= strength <= 1:
            raise RequestError(f"engine_options['strength'] must be a number in 0..1, got {strength!r}")
        return Controls(
            motion_adherence=preset.motion_adherence if self.motion_adherence is None else self.motion_adherence,
            structure_adherence=(preset.structure_adherence if self.structure_adherence is None
                                 else self.structure_adherence),
            strength=float(strength),
        )

    def resolve_keyframes(self, fps: Fraction, frame_count: int) -> list[ResolvedKeyframe]:
        """Keyframes on the frame grid of a shot, sorted by frame.

        Args:
            fps: the shot's frame rate.
            frame_count: frames in the (trimmed) shot; frame indices are 0-based within it.

        Returns:
            One ``ResolvedKeyframe`` per keyframe, in frame order.

        Raises:
            RequestError: a time that cannot be read, lies outside the shot, or lands on the same frame as
                another keyframe.
        """
        frames = _resolve_times([k.time for k in self.keyframes], "keyframe", fps, frame_count)
        out = [ResolvedKeyframe(f, k.guide, k.prompt) for f, k in zip(frames, self.keyframes)]
        return sorted(out, key=lambda k: k.frame)

    def resolve_grade_keys(self, fps: Fraction, frame_count: int) -> list[tuple[int, dict[str, float]]]:
        """The grade's keys as ``(frame, values)`` in frame order, values filled from the base grade.

        Raises:
            RequestError: as ``resolve_keyframes``, for grade keys.
        """
        if self.grade is None:
            return []
        base = self.grade.values()
        frames = _resolve_times([k.time for k in self.grade.keyframes], "grade key", fps, frame_count)
        keys = []
        for f, k in zip(frames, self.grade.keyframes):
            vals = {name: (base[name] if getattr(k, name) is None else float(getattr(k, name)))
                    for name in GRADE_FIELDS}
            keys.append((f, vals))
        return sorted(keys, key=lambda kv: kv[0])

    def resolve_label_frame(self, fps: Fraction, frame_count: int) -> int:
        """The label swap's reference frame as a frame index (0-based in the shot).

        Raises:
            RequestError: no label swap, an unreadable time, or a frame outside the shot.
        """
        if self.label_swap is None:
            raise RequestError("the request has no label_swap")
        return resolve_frame(self.label_swap.frame, fps, frame_count, what="label_swap.frame")

    def check_times(self, fps: Fraction, frame_count: int) -> None:
        """Resolve every time in the request against a shot (keyframes, grade keys, the label's frame), so a
        bad time fails before any work.

        Raises:
            RequestError: the first time that is unreadable, outside the shot or duplicated.
        """
        self.resolve_keyframes(fps, frame_count)
        self.resolve_grade_keys(fps, frame_count)
        if self.label_swap is not None:
            self.resolve_label_frame(fps, frame_count)

    def resolve_paths(self, base: str | Path) -> RenderRequest:
        """A copy with relative paths (guides, references, LUT, artwork) made absolute against ``base``."""
        base = Path(base)
        d = self.model_dump()

        def fix(p):
            return p if p is None or Path(p).is_absolute() else base / p

        for k in d["keyframes"]:
            k["guide"] = fix(k["guide"])
        for lock in d["locks"]:
            lock["reference"] = fix(lock["reference"])
        if d["grade"]:
            d["grade"]["lut"] = fix(d["grade"]["lut"])
        if d["label_swap"]:
            d["label_swap"]["artwork"] = fix(d["label_swap"]["artwork"])
        return RenderRequest.model_validate(d)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the same request gives the same text, for hashing into variant ids."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def resolve_frame(value: TimeValue, fps: Fraction, frame_count: int, *, what: str = "frame") -> int:
    """A frame given as an int / digit string (frame number) or a time string -> a checked frame index.

    Raises:
        RequestError: unreadable, or outside ``0..frame_count-1``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        frame = value
    elif isinstance(value, str) and value.strip().isdigit():
        frame = int(value.strip())
    else:
        try:
            frame = parse_time(value, fps)
        except TimeFormatError as ex:
            raise RequestError(f"{what}: {ex}") from ex
    if not 0 <= frame < frame_count:
        given = f"{what} {frame} is" if str(value).strip().isdigit() else f"{what} {value!r} is frame {frame},"
        raise RequestError(f"{given} outside the shot's frames 0..{frame_count - 1} "
                           f"({format_seconds(Fraction(frame_count) / fps)} at {fps} fps)")
    return frame


def _resolve_times(times: list[TimeValue], what: str, fps: Fraction, frame_count: int) -> list[int]:
    fps = Fraction(fps)
    frames: list[int] = []
    seen: dict[int, int] = {}
    for n, value in enumerate(times, 1):
        try:
            frame = parse_time(value, fps)
        except TimeFormatError as ex:
            raise RequestError(f"{what} {n}: {ex}") from ex
        if not 0 <= frame < frame_count:
            last = Fraction(frame_count - 1) / fps
            raise RequestError(
                f"{what} {n} at {value!r} is frame {frame}, outside the shot (frames 0..{frame_count - 1}, "
                f"0 to {format_seconds(last)} at {fps} fps); move it inside the shot or remove it")
        if frame in seen:
            raise RequestError(
                f"{what} {n} at {value!r} lands on frame {frame}, the same frame as {what} {seen[frame]} "
                f"({times[seen[frame] - 1]!r}); merge them or move one")
        seen[frame] = n
        frames.append(frame)
    return frames
