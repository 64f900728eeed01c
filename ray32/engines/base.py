"""The engine interface, the per-shot ``Prepared`` record and its on-disk cache.

An engine works in two steps:

1. ``prepare(shot, settings)``: per-shot work shared by every variant of the shot (tracks of the label and the
   faces; a generative engine adds control videos or latents). The result is cached on disk under a key made of
   the source file's content hash, the trim, the engine's prepare version and the settings, so a campaign with
   forty variants prepares its shot once.
2. ``render(prepared, request)``: streams the variant as chunks of frames, ``(n, H, W, 3)`` uint8 RGB in the
   source's encoding at the output size, with a progress callback and a cancel flag; it never holds the whole
   clip in memory.

Settings (all optional): ``{"label": {"corners": [[x, y] * 4], "frame": int}, "faces": True,
"cache_dir": "..."}``; ``label.frame`` is 0-based in the trimmed shot. ``cache_dir`` (default:
``$RAY32_CACHE_DIR`` or ``~/.cache/ray32``) is where, not what, so it is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ray32.errors import Ray32Error
from ray32.label_track import LabelTrack
from ray32.shot import Shot, content_hash

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


class EngineError(Ray32Error):
    """An engine that cannot serve a request: unknown, not available here, or asked for what it cannot do."""


@dataclass
class Prepared:
    """Per-shot work, shared by every variant of the shot.

    Attributes:
        shot: the source (with its trim).
        key: the cache key (hex); the same source, trim and settings give the same key.
        settings: the normalised settings it was prepared with.
        label_track: the label's quad per frame, when ``settings['label']`` was given.
        face_boxes: (n, 4) float64 ``[x0, y0, x1, y1]`` per frame in source pixels, NaN where no face.
        extras: engine-specific arrays (saved in the cache with the rest).
        cache_dir: the folder holding this entry on disk (None when it was not cached); engines may keep files
            of their own there.
    """

    shot: Shot
    key: str
    settings: dict
    label_track: LabelTrack | None = None
    face_boxes: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    cache_dir: Path | None = None

    @property
    def frame_count(self) -> int:
        return self.shot.frame_count


def normalise_settings(settings: dict | None) -> dict:
    """Settings with defaults filled and values made JSON-plain (lists of floats, ints)."""
    s = dict(settings or {})
    out: dict[str, Any] = {"faces": bool(s.pop("faces", True))}
    if "cache_dir" in s:
        out["cache_dir"] = str(s.pop("cache_dir"))
    label = s.pop("label", None)
    if label is not None:
        corners = np.asarray(label["corners"], dtype=np.float64)
        if corners.shape != (4, 2) or not np.all(np.isfinite(corners)):
            raise EngineError(f"settings['label']['corners'] must be 4 points [[x, y], ...], got {label['corners']!r}")
        frame = label.get("frame", 0)
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
            raise EngineError(f"settings['label']['frame'] must be a frame index >= 0, got {frame!r}")
        out["label"] = {"corners": corners.round(4).tolist(), "frame": int(frame)}
    out.update(s)  # engine-specific settings pass through (they are part of the key)
    return out


def cache_root(settings: dict) -> Path:
    """Where prepared shots are cached: ``settings['cache_dir']``, ``$RAY32_CACHE_DIR`` or ``~/.cache/ray32``."""
    if settings.get("cache_dir"):
        return Path(settings["cache_dir"])
    if os.environ.get("RAY32_CACHE_DIR"):
        return Path(os.environ["RAY32_CACHE_DIR"])
    return Path.home() / ".cache" / "ray32"


def prepare_key(engine_name: str, prepare_version: str, shot: Shot, settings: dict) -> str:
    """The cache key of a prepared shot: source content hash + trim + engine prepare version + settings."""
    keyed = {k: v for k, v in settings.items() if k != "cache_dir"}
    payload = {"engine": engine_name, "prepare_version": prepare_version, "source": content_hash(shot.path),
               "first": shot.first, "stop": shot.stop, "settings": keyed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


class PrepareCache:
    """Prepared shots on disk: ``<root>/prepared/<key>/{meta.json, arrays.npz}``, written atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "prepared"

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str, shot: Shot) -> Prepared | None:
        """The cached entry for ``key``, or None (missing or unreadable entries are treated as absent)."""
        folder = self.path(key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            with np.load(folder / "arrays.npz") as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, KeyError) as ex:
            if folder.exists():
                log.warning("prepare cache entry %s is unreadable (%s); preparing again", folder, ex)
            return None
        track = None
        if meta.get("label_track"):
            t = meta["label_track"]
            track = LabelTrack(corners=arrays.pop("label_corners"), valid=arrays.pop("label_valid").astype(bool),
                               score=arrays.pop("label_score"), ref_frame=int(t["ref_frame"]),
                               ref_corners=np.asarray(t["ref_corners"], dtype=np.float64))
        faces = arrays.pop("face_boxes", None)
        log.info("prepared shot loaded from cache %s", folder)
        return Prepared(shot=shot, key=key, settings=meta["settings"], label_track=track, face_boxes=faces,
                        extras=arrays, cache_dir=folder)

    def save(self, prepared: Prepared) -> Path:
        """Write ``prepared`` under its key (temp folder, then rename) and return the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.path(prepared.key)
        arrays = dict(prepared.extras)
        meta: dict[str, Any] = {"key": prepared.key, "settings": prepared.settings,
                                "source": str(prepared.shot.path), "first": prepared.shot.first,
                                "stop": prepared.shot.stop, "label_track": None}
        if prepared.label_track is not None:
            t = prepared.label_track
            arrays.update(label_corners=t.corners, label_valid=t.valid, label_score=t.score)
            meta["label_track"] = {"ref_frame": t.ref_frame, "ref_corners": np.asarray(t.ref_corners).tolist()}
        if prepared.face_boxes is not None:
            arrays["face_boxes"] = prepared.face_boxes
        tmp = Path(tempfile.mkdtemp(prefix=f".{prepared.key}.", dir=self.root))
        try:
            # Files an engine already wrote into the entry's folder come along.
            if prepared.cache_dir is not None and prepared.cache_dir.exists() and prepared.cache_dir != folder:
                shutil.copytree(prepared.cache_dir, tmp, dirs_exist_ok=True)
            np.savez(tmp / "arrays.npz", **arrays)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        prepared.cache_dir = folder
        return folder


class Engine(ABC):
    """The interface every engine implements (see the module docstring).

    Subclasses set ``name`` and ``version`` (the version goes into variant ids: bump it when the same request
    would give different pixels) and ``prepare_version`` (bump it when what ``prepare`` computes changes).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    prepare_version: ClassVar[str] = "1"
    options: ClassVar[tuple[str, ...] | None] = None
    """The ``engine_options`` keys this engine reads; any other key is an error that lists these (None: not
    declared, not checked)."""
    ignores: ClassVar[tuple[str, ...]] = ()
    """Request fields this engine accepts and does not use (a warning names them when a campaign or a request
    file sets them; an error when they are asked for on the command line)."""

    @classmethod
    def ignored_controls(cls, request) -> list[str]:
        """The fields of ``ignores`` that ``request`` (a ``RenderRequest`` or its dict form) sets, as field paths
        (``keyframes[0].guide``)."""
        d = request if isinstance(request, dict) else request.model_dump()
        out = []
        for name in cls.ignores:
            value = d.get(name)
            if name == "keyframes":
                for i, k in enumerate(value or []):
                    out += [f"keyframes[{i}].{part}" for part in ("guide", "prompt") if k.get(part)]
            elif name == "prompt":
                if (value or "").strip():
                    out.append(name)
            elif value not in (None, "", [], {}):
                out.append(name)
        return out

    @classmethod
    def unknown_options(cls, engine_options: dict) -> list[str]:
        """The keys of ``engine_options`` this engine does not read (empty when it declares no ``options``)."""
        if cls.options is None:
            return []
        return [k for k in engine_options if k not in cls.options]

    @classmethod
    def refusals(cls, request) -> list[str]:
        """What this engine cannot do of ``request`` (a ``RenderRequest`` or its dict form), one sentence each
        naming the field and what to do; empty when it can render it. Checked before any work."""
        return []

    def prepare(self, shot: Shot, settings: dict | None = None, progress: Progress | None = None) -> Prepared:
        """Per-shot work, from the disk cache when the same source, trim and settings were prepared before.

        Args:
            shot: the source (``ray32.shot.open_shot``).
            settings: see the module docstring; ``prepare_settings(request, shot)`` derives them from a request.
            progress: ``progress(done, total)`` while computing (not called on a cache hit).

        Returns:
            ``Prepared``.

        Raises:
            EngineError: bad settings. ShotError: the source cannot be decoded.
        """
        settings = normalise_settings(settings)
        key = prepare_key(self.name, self.prepare_version, shot, settings)
        cache = PrepareCache(cache_root(settings))
        hit = cache.load(key, shot)
        if hit is not None:
            return hit
        prepared = self.compute_prepared(shot, settings, key, progress=progress)
        try:
            cache.save(prepared)
        except OSError as ex:  # a read-only or full disk costs time later, not this render
            log.warning("could not cache the prepared shot in %s: %s", cache.root, ex)
        return prepared

    def compute_prepared(self, shot: Shot, settings: dict, key: str, progress: Progress | None = None) -> Prepared:
        """Compute what ``prepare`` caches. The default tracks the label (when asked) and the faces."""
        track, faces = prepare_tracks(shot, settings, progress=progress)
        return Prepared(shot=shot, key=key, settings=settings, label_track=track, face_boxes=faces)

    def prepare_settings(self, request, shot: Shot) -> dict:
        """The ``prepare`` settings a request needs (the label's reference corners and frame when it swaps or
        locks a label)."""
        settings: dict[str, Any] = {"faces": True}
        if request.label_swap is not None:
            frame = request.resolve_label_frame(shot.fps, shot.frame_count)
            settings["label"] = {"corners": request.label_swap.corners, "frame": frame}
        return settings

    def label_visibility(self, prepared: Prepared, request):
        """Where this variant's label swap/lock draws the artwork: a ``ray32.label_lock.LabelVisibility`` (its
        ``withheld`` frame ranges go into the render record), or None without a label swap or track."""
        if getattr(request, "label_swap", None) is None or prepared.label_track is None:
            return None
        from ray32.label_lock import label_visibility

        return label_visibility(prepared.label_track, prepared.shot.fps)

    @abstractmethod
    def output_size(self, prepared: Prepared, request) -> tuple[int, int]:
        """(width, height) of the frames ``render`` yields for this request."""

    @abstractmethod
    def render(self, prepared: Prepared, request, progress: Progress | None = None,
               cancel: Cancel | None = None) -> Iterator[np.ndarray]:
        """Stream the variant: chunks ``(n, H, W, 3)`` uint8 RGB in the source's encoding, in frame order,
        ``prepared.frame_count`` frames in all (the source's timing). Stops early, without error, when
        ``cancel()`` returns True."""


def prepare_tracks(shot: Shot, settings: dict, progress: Progress | None = None
                   ) -> tuple[LabelTrack | None, np.ndarray | None]:
    """The shared per-shot tracks from one decoding pass over the shot: the label's quad (when
    ``settings['label']``) and face boxes (when ``settings['faces']``; every ``settings['face_stride']``-th
    frame, default 2, interpolated between)."""
    from ray32.faces import FaceDetector, fill_and_smooth
    from ray32.label_track import LabelTracker
    from ray32.shot import read_chunks

    label = settings.get("label")
    want_faces = settings.get("faces", True)
    stride = int(settings.get("face_stride", 2))
    if label is None and not want_faces:
        return None, None
    n = shot.frame_count
    tracker = LabelTracker(np.asarray(label["corners"]), label["frame"], n) if label else None
    detector = FaceDetector() if want_faces else None
    faces = np.full((n, 4), np.nan)
    examined = np.zeros(n, dtype=bool)
    if tracker is not None:
        # The reference frame first: its features are what every frame is matched against.
        tracker.set_reference_from(shot)
    for chunk in read_chunks(shot, chunk_frames=8, progress=progress):
        for k, frame in enumerate(chunk.frames):
            i = chunk.first - shot.first + k
            if tracker is not None:
                tracker.add(i, frame)
            if detector is not None and (i % stride == 0 or i == n - 1):
                examined[i] = True
                box = detector.detect(frame)
                if box is not None:
                    faces[i] = box
    track = tracker.finish() if tracker is not None else None
    return track, (fill_and_smooth(faces, examined) if want_faces else None)
