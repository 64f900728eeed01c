"""Delivering a variant to platform targets (``ray32.targets``): reframe, scale, encode, normalise loudness.

A target that changes the aspect gets a crop planned on the shot's tracks (``ray32.reframe.plan_crop`` with the
target's safe area: the label, and the faces when they fit with it, are centred in the part of the frame the
platform's interface leaves free and kept there where the crop can move far enough; frames where it cannot are
reported). The crop is scaled to the target's size and encoded with the target's codec and bitrate while the
variant is rendered (one pass: ``DeliveryWriter.write`` takes the same frames the export writers take); at close
the audio is normalised to the target's loudness in two passes (``ray32.loudness``). ``master`` is the campaign's
formats as exported, copied with their audio normalised.

Example:
    >>> plan = plan_delivery(get_target("meta-reels"), 960, 540, Fraction(24), 72,
    ...                      label_boxes=boxes)                                          # doctest: +SKIP
    >>> with DeliveryWriter(plan, "out", stem="de-aqua500", source=shot) as w:          # doctest: +SKIP
    ...     for chunk in frames: w.write(chunk)
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ray32.targets import DeliveryTarget, TargetError, get_target
from ray32.timecode import format_timecode

__all__ = ["DeliveryPlan", "DeliveryWriter", "check_target", "plan_delivery", "open_targets", "tee", "close_targets",
           "deliver_master", "subject_boxes", "get_target"]

log = logging.getLogger(__name__)


@dataclass
class DeliveryPlan:
    """What a target does to the variant's frames.

    Attributes:
        target: the ``DeliveryTarget``. fps, frame_count: the variant's timing (kept).
        source_size: (w, h) of the frames handed to the writer. crop: the crop plan, or None (whole frame).
        out_size: (w, h) of the delivered video. notes: what could not be done as asked, in words.
    """

    target: DeliveryTarget
    fps: Fraction
    frame_count: int
    source_size: tuple[int, int]
    crop: object | None = None
    out_size: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)

    def geometry(self) -> dict:
        """The frame mapping, as data (the safe-zone check maps the tracks through it)."""
        w, h = self.source_size
        if self.crop is None:
            return {"crop_size": [w, h], "offsets": None, "out_size": list(self.out_size)}
        return {"crop_size": [self.crop.width, self.crop.height], "offsets": self.crop.offsets.tolist(),
                "out_size": list(self.out_size)}


def subject_boxes(label_quads: np.ndarray | None, face_boxes: np.ndarray | None, n: int,
                  max_size: tuple[float, float] | None = None) -> np.ndarray:
    """The box a delivery crop follows on each frame: the label's, grown to hold the faces where both fit in
    ``max_size`` (w, h; the safe area in source pixels), else the label's alone; the faces' when there is no
    label. NaN where nothing is known."""
    out = np.full((n, 4), np.nan)
    label = None
    if label_quads is not None:
        q = np.asarray(label_quads, float)
        label = np.concatenate([q.min(axis=1), q.max(axis=1)], axis=1)
    faces = None if face_boxes is None else np.asarray(face_boxes, float)
    for i in range(n):
        lb = label[i] if label is not None and np.isfinite(label[i]).all() else None
        fb = faces[i] if faces is not None and np.isfinite(faces[i]).all() else None
        if lb is not None and fb is not None:
            both = np.array([min(lb[0], fb[0]), min(lb[1], fb[1]), max(lb[2], fb[2]), max(lb[3], fb[3])])
            fits = max_size is None or (both[2] - both[0] <= max_size[0] and both[3] - both[1] <= max_size[1])
            out[i] = both if fits else lb
        elif lb is not None:
            out[i] = lb
        elif fb is not None:
            out[i] = fb
    return out


def _same_aspect(width: int, height: int, aspect: Fraction) -> bool:
    return abs(Fraction(width, height) / aspect - 1) < Fraction(1, 100)


def check_target(target: DeliveryTarget | str, width: int, height: int, fps, *,
                 reframed: str | None = None) -> DeliveryTarget:
    """The target, after checking that frames of ``width`` x ``height`` at ``fps`` can be delivered to it.

    Raises:
        TargetError: unknown target; a frame rate it does not take; an aspect that cannot be cut from a variant
            already reframed to ``reframed``.
    """
    t = get_target(target) if isinstance(target, str) else target
    fps = Fraction(fps)
    if t.frame_rates and fps not in t.frame_rates:
        raise TargetError(f"{t.name}: the source runs at {fps} fps; {t.name} takes constant "
                          f"{', '.join(str(float(r))[:6] for r in t.frame_rates)} fps; conform the source first")
    if t.aspect is not None and not _same_aspect(width, height, t.aspect) and reframed is not None:
        raise TargetError(f"{t.name} needs {t.aspect.numerator}:{t.aspect.denominator} but the variant is already "
                          f"reframed to {reframed}; deliver it from a variant without 'reframe'")
    return t


def plan_delivery(target: DeliveryTarget | str, width: int, height: int, fps: Fraction, frame_count: int, *,
                  label_quads: np.ndarray | None = None, face_boxes: np.ndarray | None = None,
                  reframed: str | None = None, smooth_seconds: float = 0.5) -> DeliveryPlan:
    """Plan one target for a variant of ``width`` x ``height`` at ``fps``.

    Args:
        target: a ``DeliveryTarget`` or its name.
        width, height, fps, frame_count: the variant's frames and timing.
        label_quads: (n, 4, 2) the label's corners per frame in the variant's pixels (NaN where unknown).
        face_boxes: (n, 4) face boxes per frame (NaN where none).
        reframed: the variant's own reframe aspect ("9:16"), when it was already cropped; a target of another
            aspect cannot be cut from it.
        smooth_seconds: the crop's temporal smoothing.

    Returns:
        The ``DeliveryPlan``; ``notes`` say where the label or faces cannot be kept clear of the interface.

    Raises:
        TargetError: a frame rate the target does not take, or an aspect that cannot be cut from a reframed
            variant.
    """
    from ray32.reframe import crop_size, plan_crop

    t = check_target(target, width, height, fps, reframed=reframed)
    fps = Fraction(fps)
    plan = DeliveryPlan(t, fps, frame_count, (width, height))
    if t.aspect is None or _same_aspect(width, height, t.aspect):
        plan.out_size = t.size or (width - width % 2, height - height % 2)
    else:
        cw, ch = crop_size(width, height, t.aspect)
        sx0, sy0, sx1, sy1 = t.safe_box()
        boxes = subject_boxes(label_quads, face_boxes, frame_count, ((sx1 - sx0) * cw, (sy1 - sy0) * ch))
        plan.crop = plan_crop(boxes, width, height, t.aspect, fps, smooth_seconds=smooth_seconds, margin=0.02,
                              safe=(sx0, sy0, sx1, sy1))
        plan.out_size = t.size or (cw, ch)
        known = np.isfinite(boxes).all(axis=1)
        blocked = np.flatnonzero(known & ~plan.crop.clear)
        if not known.any():
            plan.notes.append(f"{t.name}: no label or face tracked; the crop stays centred")
        if len(blocked):
            first = int(blocked[0])
            plan.notes.append(
                f"{t.name}: the {cw}x{ch} crop cannot keep the label/faces clear of the interface zones on "
                f"{len(blocked)} of {frame_count} frames (first at {format_timecode(first, fps)}, frame {first}): "
                "the subject is larger than the safe area or too close to the frame's edge")
    _say_once(plan.notes)
    return plan


_SAID: set[str] = set()
_SAID_LOCK = threading.Lock()


def _say_once(notes: list[str]) -> None:
    """Log each note once per process: every variant of a shot gets the same crop and would repeat it (the
    notes still go into every delivery record, the manifest and the report)."""
    with _SAID_LOCK:
        new = [n for n in notes if n not in _SAID]
        _SAID.update(new)
    for note in new:
        log.warning("%s", note)


class DeliveryWriter:
    """Writes one non-master target while the variant streams (crop, scale, encode), then normalises loudness.

    Args:
        plan: the target's ``DeliveryPlan``.
        out_dir: the folder for the target's file (created).
        stem: the variant's name; the file is ``<stem>_<target>.mp4``.
        source: the source ``Shot`` (its audio is cut to the span and carried).
        preset: the x264 speed preset (the target fixes bitrate and size, not the encoder's effort).
    """

    def __init__(self, plan: DeliveryPlan, out_dir: str | os.PathLike, *, stem: str, source=None,
                 preset: str = "veryfast"):
        from ray32.export import open_writer

        t = plan.target
        if t.codec != "h264":
            raise TargetError(f"{t.name}: the delivery writer encodes H.264; {t.name} asks for {t.codec}")
        self.plan = plan
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / f"{stem}_{t.name}.mp4"
        options = {"size": f"{plan.out_size[0]}x{plan.out_size[1]}", "preset": preset}
        if t.bitrate_kbps:
            options["bitrate"] = t.bitrate_kbps
            options["cbr"] = t.min_kbps is not None and t.min_kbps >= 0.6 * t.bitrate_kbps
        else:
            options["crf"] = t.crf
        cw, ch = (plan.crop.width, plan.crop.height) if plan.crop is not None else plan.source_size
        self._tmp = self.out_dir / f".{stem}_{t.name}.partial"  # the video before its audio is normalised
        self.writer = open_writer("draft", self._tmp, stem=f"{stem}_{t.name}", fps=plan.fps,
                                  frame_count=plan.frame_count, width=cw, height=ch, source=source, **options)
        self.written = 0

    def write(self, frames) -> None:
        """Append frames of the variant (the full frame; the target's crop is cut here)."""
        frames = np.asarray(getattr(frames, "frames", frames))
        crop = self.plan.crop
        if crop is not None:
            frames = np.ascontiguousarray(np.stack([crop.crop(self.written + k, f) for k, f in enumerate(frames)]))
        self.writer.write(frames)
        self.written += len(frames)

    def close(self, measure_after: bool = True) -> dict:
        """Finish the video, normalise the audio to the target (two passes) and return the delivery record:
        ``{"target", "file", "loudness", "geometry", "notes"}`` (``measure_after=False``: the loudness after is
        left to the delivery check, which measures the file anyway)."""
        from ray32.loudness import normalise_file

        t = self.plan.target
        video = self.writer.close()
        try:
            loud = normalise_file(video, self.path, t.loudness, rate=t.audio_rate, channels=t.audio_channels,
                                  add_silence=t.audio_required, measure_after=measure_after)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return {"target": t.name, "file": self.path.name, "files": [self.path.name], "loudness": loud,
                "geometry": self.plan.geometry(), "notes": list(self.plan.notes)}

    def abort(self) -> None:
        self.writer.abort()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def deliver_master(paths: dict[str, Path], out_dir: str | os.PathLike, plan: DeliveryPlan, *,
                   measure_after: bool = True) -> dict:
    """The ``master`` target: the exported formats copied into ``out_dir`` with their audio normalised to the
    master's loudness (video streams copied; an image sequence is copied as it is)."""
    from ray32.loudness import normalise_file

    t = plan.target
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, loud, main = [], None, None
    for fmt, p in sorted(paths.items()):
        p = Path(p)
        dst = out / p.name
        if p.is_dir():
            shutil.copytree(p, dst, dirs_exist_ok=True)
        else:
            figures = normalise_file(p, dst, t.loudness, rate=t.audio_rate, channels=t.audio_channels,
                                     add_silence=t.audio_required, measure_after=measure_after)
            if main is None or fmt == "draft":
                main, loud = dst.name, figures
        files.append(dst.name)
    return {"target": t.name, "file": main, "files": files, "loudness": loud, "geometry": plan.geometry(),
            "notes": list(plan.notes)}


def open_targets(names, out_dir: str | os.PathLike, *, stem: str, source, width: int, height: int,
                 label_quads=None, face_boxes=None, reframed: str | None = None, preset: str = "veryfast"):
    """Plan every target and open the writers of the non-master ones (``<out_dir>/<target>/``).

    Args:
        names: target names. source: the source ``Shot`` (timing, audio).
        width, height: the size of the frames that will be handed to ``write``.
        label_quads, face_boxes, reframed: as ``plan_delivery``. preset: the x264 speed preset.

    Returns:
        ``({name: DeliveryPlan}, {name: DeliveryWriter})``; call ``close_targets`` after the last frame.

    Raises:
        TargetError: an unknown target, or one the variant cannot be delivered to.
    """
    plans, writers = {}, {}
    try:
        for name in names:
            plans[name] = plan = plan_delivery(name, width, height, source.fps, source.frame_count,
                                               label_quads=label_quads, face_boxes=face_boxes, reframed=reframed)
            if name != "master":
                writers[name] = DeliveryWriter(plan, Path(out_dir) / name, stem=stem, source=source, preset=preset)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return plans, writers


def tee(chunks, writers):
    """Hand each chunk (or ``Chunk``) to the delivery writers on its way on (to the export writers)."""
    for chunk in chunks:
        for w in writers:
            w.write(chunk)
        yield chunk


def close_targets(plans: dict, writers: dict, paths: dict, out_dir: str | os.PathLike, *,
                  measure_after: bool = True) -> dict:
    """Finish every target (loudness normalised; ``master`` copied from the exported ``paths``).

    Returns:
        ``{name: {"target", "spec", "file", "files", "loudness", "geometry", "notes"}}`` (file names relative to
        ``<out_dir>/<name>/``). ``measure_after=False`` leaves the loudness after normalisation to the delivery
        checks (``qa.delivery.check_delivery`` measures the delivered file and records it).
    """
    out = {}
    for name, plan in plans.items():
        rec = (deliver_master(paths, Path(out_dir) / name, plan, measure_after=measure_after) if name == "master"
               else writers[name].close(measure_after=measure_after))
        rec["spec"] = plan.target.describe()
        out[name] = rec
    return out


def subject_tracks(prepared, request=None):
    """The label's quads (NaN where the track is weak) and the face boxes of a prepared shot, for delivery crops
    and checks; (None, None) when the variant is reframed (its frames no longer match the source's pixels)."""
    if request is not None and request.reframe is not None:
        return None, None
    quads = None
    if getattr(prepared, "label_track", None) is not None:
        quads = np.asarray(prepared.label_track.corners, float).copy()
        quads[~np.asarray(prepared.label_track.valid, bool)] = np.nan
    return quads, getattr(prepared, "face_boxes", None)


def export_with_targets(names, deliver_dir: str | os.PathLike, export, chunks, *, stem: str, source, width: int,
                        height: int, label_quads=None, face_boxes=None, reframed: str | None = None,
                        preset: str = "veryfast"):
    """Run ``export(chunks) -> {format: path}`` with every delivery target of ``names`` written from the same
    frames in the same pass (into ``<deliver_dir>/<target>/``); the writers are aborted when the export fails.

    Returns:
        ``(paths, plans, records)``: the export's paths, ``{name: DeliveryPlan}`` and ``close_targets``' records
        (loudness after normalisation left to the delivery checks).
    """
    names = list(names or [])
    if not names:
        return export(chunks), {}, {}
    plans, writers = open_targets(names, deliver_dir, stem=stem, source=source, width=width, height=height,
                                  label_quads=label_quads, face_boxes=face_boxes, reframed=reframed, preset=preset)
    try:
        paths = export(tee(chunks, writers.values()) if writers else chunks)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return paths, plans, close_targets(plans, writers, paths, deliver_dir, measure_after=False)
