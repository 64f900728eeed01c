"""The one measuring path: run every declared check (``qa.registry.CHECKS``) over a source/output pair.

``measure`` is what ``ray32 qa`` and the campaign run both call. It decodes the source and the output once,
chunk by chunk, and builds per chunk what the checks declare they need (``qa.checks.base``): frames at an
analysis size, the *intended reference* (the source with the market label swapped in and the variant's grade
applied, made with the same ``ray32`` code the composite engine uses), the mask of the regions whose change is
intended, consecutive-frame flows and steps, and full-size frames (kept only at the sampled indices). Memory is
bounded by two chunks (the one measured and the next, made in a second thread) plus the samples, and with threads
up to three decoded chunks per clip (``decode_chunk``).

Source-side measurements (the source's flows and frame steps, warp residuals, edges, texture, face embeddings,
and where the label is withheld how well each market's artwork matches the source there) do not depend on the
variant: they are made once per shot and kept in ``cache`` (shared by the variants QA'd in one process) and,
given ``source_cache`` (a folder: the campaign run passes the prepared shot's cache folder), on disk in
``qa-source-<key>.pkl`` there, so a second variant in another process reuses them. The key
(``source_cache_key``) covers the shot's content and trim, the analysis parameters, the label's place (the
region left out of whole-frame checks), ``SOURCE_CACHE_VERSION`` and the code of the modules that compute them.
``metrics_table`` makes one row per variant.

QA uses two threads by default (``PARALLEL``; ``RAY32_QA_THREADS=1`` keeps it on one): each clip is decoded a
chunk ahead in a thread of its own, the next batch is resized, its reference graded and its flows made while the
checks measure the current batch, and the checks of
the label's and face's region run beside the whole-frame checks. OpenCV, numpy, PyAV, OpenColorIO and dlib
release the GIL in their loops, so a second core is used; the results are the same as on one thread
(``tests/test_qa_speed.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Clip
from qa.checks.geometry import fit_size, resize
from qa.checks.identity import face_embedding
from qa.checks.label_lost import visibility as label_visibility
from qa.checks.motion import dis_flows, steps
from qa.facts import Facts, QaError, judging
from qa.registry import CHECKS

log = logging.getLogger(__name__)

ANALYSIS_SIDE = 256
"""Longest side of the frames flow, flicker, structure and exposure are measured on (never enlarged). 512 until
issue 11's speed work: at 512 these whole-frame checks cost more than a composite render of a 640x480 clip; at
256 the defects benchmark (``bench/qa_defects.py``: calibration clips first, then the score clips) has the same
false alarms (0/66 real, 0/18 synthetic) and recall, and the clean renders use as much of each bound. Flow
lengths stay in px at 512 (``qa.checks.motion.PX_SIDE``); the label's checks work on the full-size frames."""
SAMPLES = 5
"""Frames (evenly spread, first and last included) OCR always reads (besides the frames where the per-frame label
measures dip) and the report shows."""
LABEL_MARGIN = 0.12
"""The label region left out of whole-frame checks: the quad grown by this share of its size."""
SOURCE_CACHE_VERSION = 1
"""Bump when what the source cache holds changes meaning (the code of the modules that fill it is keyed too)."""
FLOW_CACHE_MB = 512
"""The source's flows (float16) are written to the disk cache only up to this size (about 40 s at 1080p)."""
DECODE_AHEAD_MB = 48
"""With QA in threads, the chunk of frames each clip is decoded ahead is at most this large (``decode_chunk``)."""
SOURCE_FRAMES_MB = 256
"""A source clip whose decoded frames fit in this many MB (cup.mp4 whole, 217 frames at 640x480: 200 MB; not 48
frames at 1080p: 300 MB) is decoded once per process and its frames held for the next variants' QA (``measure``):
the frames of one shot at a time, the last one decoded in full."""
SWAP_CACHE_MB = 256
"""Pixels of swapped label crops a process keeps (``Swaps``), all shots and markets together: a 1080p label of
about 220x120 px is 0.1 MB a frame, so a 20 s shot's market about 50 MB. When full, the least recently filled
shot's and market's crops are dropped first."""
PARALLEL = os.environ.get("RAY32_QA_THREADS", "2") != "1"
"""Whether QA runs in two threads (see the module docstring): the same numbers either way; ``RAY32_QA_THREADS=1``
keeps QA on one thread."""
_SOURCE_MODULES = ("qa.metrics", "qa.checks.motion", "qa.checks.temporal", "qa.checks.structure",
                   "qa.checks.identity", "qa.checks.label_lost", "qa.checks.label", "qa.checks.geometry",
                   "ray32.grade", "ray32.color")
"""The modules whose code computes source-side measurements: a change to any of them makes a new cache key."""


@dataclass
class VariantQA:
    """Everything measured on one variant.

    Attributes:
        variant: its name (slug). facts: what it was checked against.
        summary: metric name -> number (one row of the metrics table; NaN: not judged).
        frames: per-frame numbers of every check (index: frame index), outer-joined.
        fps: the source's frame rate (for timecodes). frame_count: the source's frame count.
        thumbs: frame index -> (source JPEG, output JPEG) or (source, output, reference JPEG) at the sampled,
            keyframe and worst frames.
        keyframes: the keyframe frame indices.
        notes: things the checks could not do or did not judge, in words.
        judged_against: what the output was compared with, per check ("label" -> "...").
        label_reads: frame index -> (output label JPEG, intended label JPEG), both rectified from the label's
            place the way OCR read them, at up to ``LABEL_READS_SHOWN`` of the frames OCR read (the report's
            close-ups, beside the texts read).
        timings: wall seconds spent per check, "decode+reference" (decoding, resizing, the reference, the
            masks), "flows+steps" (optical flow and frame steps), "source cache write", "thumbnails" and a
            check's own background work ("label.ocr thread": its state's ``timings``), each measured in the thread
            that ran it (with ``parallel`` some of them overlap).
        cpu_timings: the CPU seconds of the same stages (their thread's).
    """

    variant: str
    facts: Facts
    summary: dict[str, float]
    frames: pd.DataFrame
    fps: Fraction
    frame_count: int
    thumbs: dict[int, tuple[bytes, ...]] = field(default_factory=dict)
    keyframes: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    judged_against: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    label_reads: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)

    def __setstate__(self, state: dict) -> None:
        # a VariantQA pickled by an older version (a render's qa file in the cache) lacks the newer fields
        for f in dataclasses.fields(self):
            if f.name not in state and f.default_factory is not dataclasses.MISSING:
                state[f.name] = f.default_factory()
        self.__dict__.update(state)


LABEL_READS_SHOWN = 6
"""At most this many label close-ups per variant in the report (spread over the frames OCR read; the failing
ones first)."""


def _label_reads(frames: pd.DataFrame, rects: dict) -> dict[int, tuple[bytes, bytes]]:
    """Close-ups of the label where OCR read it: wrong readings first, then spread over the others."""
    if "ocr_text" not in frames or not rects:
        return {}
    read = [int(i) for i in frames["ocr_text"].dropna().index if int(i) in rects]
    wrong = [i for i in read if frames.at[i, "text_match"] is False or frames.at[i, "text_match"] == 0] \
        if "text_match" in frames else []
    rest = [i for i in read if i not in wrong]
    room = max(0, LABEL_READS_SHOWN - len(wrong[:LABEL_READS_SHOWN]))
    if len(rest) > room:
        rest = [rest[int(round(k))] for k in np.linspace(0, len(rest) - 1, room)] if room else []
    shown = sorted(set(wrong[:LABEL_READS_SHOWN]) | set(rest))
    return {i: (jpeg(_rgb(rects[i][0])), jpeg(_rgb(rects[i][1]))) for i in shown}


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def sample_indices(frame_count: int, count: int = SAMPLES, extra: Iterable[int] = ()) -> list[int]:
    """``count`` frame indices evenly spread over the clip (first and last included) plus ``extra``."""
    if frame_count <= 0:
        return []
    base = np.unique(np.round(np.linspace(0, frame_count - 1, min(count, frame_count))).astype(int))
    return sorted(set(base.tolist()) | {int(e) for e in extra if 0 <= int(e) < frame_count})


def jpeg(frame: np.ndarray, width: int = 400, quality: int = 82) -> bytes:
    """A small JPEG of an RGB frame for the report."""
    import cv2

    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise QaError("a report thumbnail could not be encoded as JPEG")
    return buf.tobytes()


class FrameSeq(list):
    """Full-size frames (each (H, W, 3)) taken from several decoded chunks: views of the chunks, not a copy of them
    joined (at 1080p joining two 8-frame chunks into a 16-frame batch cost about 90 ms a clip, mostly the page
    faults of a new 100 MB array). Indexed, measured with ``len`` and ``shape`` (n, H, W, 3) like the array it
    stands for."""

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self[0].shape) if self else (0,)


class _Frames:
    """Frames from ray32.shot Chunks or plain (n, h, w, 3) arrays, taken ``n`` at a time: a view of the decoder's
    chunk when it holds them all, else a ``FrameSeq`` of views of the pieces (no copy either way)."""

    def __init__(self, chunks: Iterable):
        self.chunks = iter(chunks)
        self.head: np.ndarray | None = None
        self.pos = 0

    def take(self, n: int) -> np.ndarray | FrameSeq | None:
        parts, need = [], n
        while need:
            if self.head is None or self.pos >= len(self.head):
                c = next(self.chunks, None)
                if c is None:
                    break
                self.head, self.pos = np.asarray(c.frames if hasattr(c, "frames") else c), 0
                continue
            part = self.head[self.pos:self.pos + need]
            self.pos += len(part)
            need -= len(part)
            parts.append(part)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else FrameSeq(f for p in parts for f in p)


class _Ahead:
    """An iterator run one item ahead in a second thread (decoding and OpenCV release the GIL, so the next item
    is made while the caller works on the current one). At most two items live at a time: the next is begun
    only once the caller has taken the current one. Errors come out of ``__next__``; ``close`` stops the thread
    and closes the source iterator."""

    _END = object()

    def __init__(self, items: Iterator):
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(2)  # the item the caller holds and the one being made
        self._taken = 0
        self._stop = threading.Event()
        self._items = items
        self._finished: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="qa-batches", daemon=True)
        self._thread.start()

    def _slot(self) -> bool:
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.05):
                return True
        return False

    def _run(self) -> None:
        try:
            while self._slot():
                item = next(self._items, self._END)
                self._queue.put((True, item))
                if item is self._END:
                    return
        except BaseException as ex:  # handed to the caller's thread
            self._queue.put((False, ex))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished is not None:  # ended or failed before: the same again, never a wait
            raise self._finished
        if self._taken:
            self._slots.release()  # the caller is done with the item it took before
        self._taken += 1
        ok, item = self._queue.get()
        if not ok:
            self._finished = item
            raise item
        if item is self._END:
            self._finished = StopIteration()
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _batches(src: Iterable, out: Iterable, size: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first index, source frames, output frames) of at most ``size`` frames each, in step, until either ends."""
    s = _Frames(src)
    o = None if out is None else _Frames(out)  # None: the source is its own output (``measure_source``)
    first = 0
    while True:
        a = s.take(size)
        b = a if o is None else o.take(size)
        if a is None or b is None:
            return
        m = min(len(a), len(b))
        a, b = (x if len(x) == m else x[:m] if isinstance(x, np.ndarray) else FrameSeq(x[:m]) for x in (a, b))
        yield first, a, b
        first += m
        if m < size:
            return


class Swaps(dict):
    """The label check's reference crops with the market artwork swapped in, before the grade (``Reference``): one
    per frame, kept for the process's next variants of the same shot and market (a campaign grades each market
    several ways; the swap at full size was 60 % of the label check's CPU at 1080p). Every ``Swaps`` of the
    process shares one budget, ``SWAP_CACHE_MB``: when a new crop does not fit, the least recently filled others
    are emptied first; a crop that still does not fit is not kept. Safe to fill from several threads."""

    _lock = threading.RLock()  # re-entrant: a collected Swaps gives its bytes back from inside the garbage collector
    _order: OrderedDict = OrderedDict()  # id -> weak reference, least recently filled first
    _sizes: dict = {}  # id -> bytes kept
    total = 0
    """Bytes kept by every ``Swaps`` of the process."""

    def __init__(self):
        super().__init__()
        self.nbytes = 0

    def put(self, key, crop: np.ndarray) -> None:
        limit = int(SWAP_CACHE_MB * 2**20)
        cls = Swaps
        with cls._lock:
            if key in self or crop.nbytes > limit:
                return
            me = id(self)
            if me not in cls._order:
                cls._order[me] = weakref.ref(self, lambda _, me=me: cls._forget(me))
            cls._order.move_to_end(me)
            for other_id in list(cls._order):
                if cls.total + crop.nbytes <= limit or other_id == me:
                    break
                other = cls._order[other_id]()
                if other is not None:
                    other.clear()
                    other.nbytes = 0
                cls._forget(other_id)
            if cls.total + crop.nbytes > limit:
                return
            self[key] = crop
            self.nbytes += crop.nbytes
            cls._sizes[me] = self.nbytes
            cls.total += crop.nbytes

    @classmethod
    def _forget(cls, ident: int) -> None:
        with cls._lock:
            cls.total -= cls._sizes.pop(ident, 0)
            cls._order.pop(ident, None)


class Reference:
    """The intended reference: the market label swapped into the source and the variant's grade applied.

    Built from the facts with ``ray32.label_lock.LabelSwapper`` and ``ray32.grade.Grader`` (what the composite
    engine renders with, and what a label lock composites after any engine); the batches (a second thread) and
    the label check make references at once, without a lock: the swapper and the grader keep no state from one call
    to the next but their caches, which they read race-free. ``visibility``
    (``ray32.label_lock.LabelVisibility`` of the source's track) gives the artwork's opacity per frame: withheld
    where the track is lost, faded around that, as the label lock intends.
    """

    def __init__(self, facts: Facts, artwork: np.ndarray | None, fps: Fraction, frame_count: int,
                 transfer: str = "bt709", primaries: str = "bt709", visibility=None, swaps: dict | None = None):
        self.swapper = self.grader = self.alpha = None
        self.swaps = swaps  # (frame, crop's place and size, corners) -> the crop with the artwork swapped in
        parts = []
        if facts.label is not None and artwork is not None:
            from ray32.label_lock import LabelSwapper

            self.swapper = LabelSwapper(artwork, transfer=transfer, primaries=primaries)
            parts.append("the market artwork swapped onto the source's label")
            vis = visibility  # withheld (faded out) where the source's track is lost, as the label lock does
            if vis is not None and vis.withheld:
                self.alpha = vis.alpha
                parts[-1] += " (withheld where its track is lost)"
        if facts.grade:
            from ray32.color import source_space
            from ray32.errors import Ray32Error
            from ray32.grade import Grader
            from ray32.request import RenderRequest

            try:
                req = RenderRequest.model_validate({"grade": facts.grade})
                keys = req.resolve_grade_keys(fps, frame_count) or [(0, req.grade.values())]
                self.grader = Grader(keys, source_space(transfer, primaries), req.grade.lut)
            except (Ray32Error, ValueError) as ex:
                raise QaError(f"facts: the intended grade cannot be applied: {ex}") from ex
            parts.append("the source through the variant's grade")
        self.kind = " and ".join(parts) if parts else "the source"

    @property
    def intended(self) -> bool:
        return self.swapper is not None or self.grader is not None

    def __call__(self, i: int, image: np.ndarray, corners: np.ndarray | None, place: tuple | None = None) -> np.ndarray:
        """The reference of ``image`` (frame ``i``, full size or a crop; ``corners`` of the label in its
        pixels, or None), as a new array. ``place``: where a crop of the full-size source sits ((x0, y0)): the
        label check's crops, whose swapped label is kept in ``swaps`` (shared by the variants of one market, whose
        grades differ) and graded per variant."""
        if place is None or self.swaps is None or self.swapper is None or corners is None:
            return self._make(i, np.array(image, copy=True), corners)
        opacity = 1.0 if self.alpha is None or i >= len(self.alpha) else float(self.alpha[i])
        key = (i, tuple(place), image.shape, np.asarray(corners, np.float64).tobytes(), opacity)
        swapped = self.swaps.get(key)
        if swapped is None:
            swapped = self._swap(i, np.array(image, copy=True), corners)
            self.swaps.put(key, swapped)
        img = np.array(swapped, copy=True)
        return self.grader.apply(i, img) if self.grader is not None else img

    def _swap(self, i: int, img: np.ndarray, corners: np.ndarray | None) -> np.ndarray:
        if self.swapper is not None and corners is not None and np.all(np.isfinite(corners)):
            img = self.swapper.apply(img, corners, inplace=True,
                                     opacity=1.0 if self.alpha is None or i >= len(self.alpha) else self.alpha[i])
        return img

    def _make(self, i: int, img: np.ndarray, corners: np.ndarray | None) -> np.ndarray:
        img = self._swap(i, img, corners)
        if self.grader is not None:
            img = self.grader.apply(i, img)
        return img

    def close(self):
        if self.grader is not None:
            self.grader.close()


def fill_track(track: dict[int, np.ndarray] | None, count: int) -> dict[int, np.ndarray] | None:
    """The label's place on every frame: NaN quads (weak or occluded) filled by linear interpolation between the
    nearest good ones (held at the ends). Used for the reference and the mask, never to judge the label."""
    if track is None:
        return None
    idx = np.arange(count)
    arr = np.full((count, 4, 2), np.nan)
    for i, q in track.items():
        if 0 <= i < count and q is not None:
            arr[i] = q
    good = np.all(np.isfinite(arr), axis=(1, 2))
    if not good.any():
        return None
    flat = arr.reshape(count, 8)
    for c in range(8):
        flat[:, c] = np.interp(idx, idx[good], flat[good, c])
    return {i: flat[i].reshape(4, 2) for i in range(count)}


_CONTENT_KEYS: dict = {}


def shot_key(path: str | os.PathLike, first: int = 0, stop: int | None = None) -> str:
    """The source's identity for the source cache: its content hash and trim (the hash is remembered per
    path, size and modification time, so a process hashes a file once)."""
    from ray32.shot import content_hash

    st = os.stat(path)
    memo = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _CONTENT_KEYS:
        _CONTENT_KEYS[memo] = content_hash(path)
    return f"{_CONTENT_KEYS[memo]}:{first}:{stop}"


def _code_hash() -> str:
    import importlib

    h = hashlib.sha256()
    for name in _SOURCE_MODULES:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return h.hexdigest()[:16]


def source_cache_key(shot: str, *, count: int, place: dict[int, np.ndarray] | None, analysis_side: int,
                     chunk_frames: int) -> str:
    """The key of a shot's source-side measurements: the shot (``shot_key``), the analysis parameters, the label's
    place on every frame (it decides the region whole-frame checks leave out), the cache version and the code
    that computes them."""
    h = hashlib.sha256(json.dumps({"version": SOURCE_CACHE_VERSION, "shot": shot, "count": count,
                                   "analysis_side": analysis_side, "chunk_frames": chunk_frames,
                                   "label_margin": LABEL_MARGIN, "code": _code_hash()}, sort_keys=True).encode())
    if place is not None:
        h.update(np.stack([np.asarray(place[i], np.float64) for i in range(count)]).round(4).tobytes())
    return h.hexdigest()[:32]


def source_cache_path(folder: str | os.PathLike, key: str) -> Path:
    """Where the source cache with ``key`` lives in ``folder``."""
    return Path(folder) / f"qa-source-{key}.pkl"


class _Bits:
    """A bool array stored as bits (edge and texture maps are 8x smaller on disk)."""

    def __init__(self, a: np.ndarray):
        self.shape, self.bits = a.shape, np.packbits(a, axis=None)

    def unpack(self) -> np.ndarray:
        return np.unpackbits(self.bits, count=int(np.prod(self.shape))).reshape(self.shape).astype(bool)


def _pack(v):
    if isinstance(v, np.ndarray) and v.dtype == bool:
        return _Bits(v)
    if isinstance(v, tuple):
        return tuple(_pack(x) for x in v)
    return v


def _unpack(v):
    if isinstance(v, _Bits):
        return v.unpack()
    if isinstance(v, tuple):
        return tuple(_unpack(x) for x in v)
    return v


def _load_source_cache(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
        return {k: _unpack(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as ex:
        log.warning("QA source cache %s is unreadable (%s); measuring the source again", path, ex)
        return {}


def _save_source_cache(path: Path, data: dict) -> None:
    """Write ``data`` atomically; the source's flows only while they fit in FLOW_CACHE_MB.

    A campaign run QAs several variants of one shot in threads that share ``data``: it is copied first (copying
    a dict does not let another thread in), nested dicts too, so another variant adding a face embedding while
    this one pickles cannot break the write ("dictionary changed size during iteration")."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in list(data.items())}
    flows = sum(v[0].nbytes for k, v in data.items() if isinstance(k, tuple) and k[0] == "src_pairs")
    if flows > FLOW_CACHE_MB * 2**20:
        data = {k: v for k, v in data.items() if not (isinstance(k, tuple) and k[0] == "src_pairs")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump({k: _pack(v) for k, v in data.items()}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as ex:  # a read-only or full cache folder costs time, never the QA
        log.warning("QA source cache %s not written: %s", path, ex)
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass


def _entries(cache: dict) -> int:
    """How many measurements the source cache holds, counting inside its nested dicts (the source's and the
    graded source's faces): more than when it was loaded means there is something new to write."""
    return sum(len(v) if isinstance(v, dict) else 1 for v in list(cache.values()))


def _keep_mask(size: tuple[int, int], quad: np.ndarray | None, scale: float) -> np.ndarray:
    import cv2

    from qa.checks.label import expand

    keep = np.ones((size[1], size[0]), bool)
    if quad is not None and np.all(np.isfinite(quad)):
        poly = np.round(expand(quad, LABEL_MARGIN) * scale).astype(np.int32)
        m = np.zeros_like(keep, np.uint8)
        cv2.fillConvexPoly(m, poly, 1)
        keep &= m == 0
    return keep


def measure_frames(source: Iterable, output: Iterable, facts: Facts, *, fps: Fraction, source_count: int,
                   output_count: int, output_fps: Fraction | None = None,
                   label_track: dict[int, np.ndarray] | None = None, label_score: dict[int, float] | None = None,
                   artwork: np.ndarray | None = None, identity_reference: np.ndarray | None = None,
                   guides: dict[int, np.ndarray] | None = None, samples: int = SAMPLES,
                   analysis_side: int = ANALYSIS_SIDE, chunk_frames: int = 16, cache: dict | None = None,
                   transfer: str = "bt709", primaries: str = "bt709", hdr: tuple[float, float] | None = None,
                   checks=CHECKS, progress: Callable[[int, int], None] | None = None,
                   source_cache: str | os.PathLike | None = None, source_key: str | None = None,
                   face_boxes: np.ndarray | None = None, parallel: bool | None = None,
                   source_only: bool = False) -> VariantQA:
    """Run every check on a source/output pair given as streams of frames.

    Args:
        source, output: iterables of ``ray32.shot.Chunk`` or of (n, h, w, 3) uint8 RGB arrays, in order.
        facts: the variant's facts (``qa.facts``).
        fps: the source's frame rate; ``output_fps`` the output's (default: the same).
        source_count, output_count: frame counts (from the probes).
        label_track: frame index -> the source's label quad (4, 2) in source pixels (NaN: not judged there).
        label_score: frame index -> the tracker's confidence (0..1), when known.
        artwork: the market's label artwork (RGB) or None.
        identity_reference: the lock's reference face embedding (128,), or None to compare with the source's face.
        guides: keyframe frame index -> guide image.
        samples: how many evenly spread frames OCR always reads (it also reads every dip of the per-frame label
            measures).
        analysis_side: longest side of the frames for flow, flicker, structure and exposure.
        cache: a dict kept by the caller between variants (source-side measurements, under their key).
        source_cache: a folder for the source-side measurements on disk (``qa-source-<key>.pkl``), or None.
        source_key: the source's identity (``shot_key``); without it nothing is written to or read from disk.
        face_boxes: the source's face box per frame from the shot's preparation (``Prepared.face_boxes``), or
            None: the identity check looks for the source's face there first.
        transfer, primaries: the source's colour tags (for the reference's swap and grade).
        hdr: (MaxCLL, MaxFALL) of an HDR output, measured by the caller.
        checks: the checks to run (default: all of ``qa.registry.CHECKS``).
        progress: ``progress(done, total)`` in frames.
        parallel: make the next batch (decoding, the reference, flows) in a second thread while the checks
            measure the current one, run the label's and face's checks beside the whole-frame checks, and make
            the thumbnails while the checks finish (the same numbers either way); None: ``PARALLEL``.
        source_only: ``output`` is None and the source is measured as its own output, for the source-side
            measurements only (``measure_source``): no output flows, thumbnails or report frames.

    Returns:
        ``VariantQA``.
    """
    cache = {} if cache is None else cache
    guides = guides or {}
    parallel = PARALLEL if parallel is None else parallel
    n = min(source_count, output_count)
    place = fill_track(label_track, source_count) if facts.label is not None else None
    key = source_cache_key(source_key or "the caller's source", count=source_count, place=place,
                           analysis_side=analysis_side, chunk_frames=chunk_frames)
    disk = source_cache_path(source_cache, key) if source_cache is not None and source_key is not None else None
    outer, cache = cache, cache.setdefault(("qa-source", key), {})
    if not cache and disk is not None:
        cache.update(_load_source_cache(disk))
    known = _entries(cache)
    vis = label_visibility(label_track, source_count, fps) if facts.label is not None else None
    swaps = None
    if artwork is not None and facts.label is not None:
        art = hashlib.sha1(np.ascontiguousarray(artwork).tobytes()).hexdigest()
        swaps = outer.setdefault(("qa-swaps", key, art, artwork.shape, transfer, primaries), Swaps())
    reference = Reference(facts, artwork, fps, source_count, transfer, primaries, visibility=vis, swaps=swaps)
    judge = judging(facts)  # pixel reference, or grade-invariant measures (a generative engine's variant)
    inv = judge.grade_invariant
    clip = Clip(facts=facts, fps=Fraction(fps), output_fps=Fraction(output_fps or fps), source_count=source_count,
                output_count=output_count, label_track=label_track, label_score=label_score, artwork=artwork,
                identity_reference=identity_reference, guides=guides, reference_kind=reference.kind,
                grade=facts.grade, cache=cache, hdr=hdr, make_reference=reference, grade_invariant=inv,
                label_visibility=vis, parallel=bool(parallel), source_only=source_only,
                source_face_boxes=None if face_boxes is None else np.asarray(face_boxes, float))
    show = {0, (source_count - 1) // 2, source_count - 1}  # first / middle / last for the report
    clip.sample_index = tuple(sample_indices(source_count, samples))
    extra = set()
    for c in checks:
        if c.sample_frames is not None:
            extra |= set(c.sample_frames(clip))
    picks = set() if source_only else set(clip.sample_index) | show | extra
    streamed = [c for c in checks if c.streamed]
    pairs = any("pairs" in c.needs for c in streamed)
    tables: dict[str, list[pd.DataFrame]] = {c.name: [] for c in checks}
    states = {c.name: clip.state.setdefault(c.name, {}) for c in checks}
    kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    worst: dict[str, tuple[float, int, tuple[np.ndarray, ...]]] = {}  # metric -> (badness, frame, frames)
    timings: dict[str, float] = {}  # wall seconds per stage (measured in the thread that ran it)
    cpu: dict[str, float] = {}  # CPU seconds per stage (that thread's)
    geometry: dict = {}  # "size", "scale": the analysis size, set from the first batch

    def prepared() -> Iterator[tuple[Batch, list]]:
        """Decode, resize, make the reference and the masks, the flows and steps: one ``Batch`` per chunk (run
        ahead of the checks in a second thread when ``parallel``)."""
        import cv2

        prev = prev_gray = None
        clock, c0 = time.perf_counter(), time.thread_time()
        for first, src_full, out_raw in _batches(source, output, chunk_frames):
            s0, o0 = src_full[0], out_raw[0]
            if not geometry:
                size = fit_size(s0.shape[1], s0.shape[0], analysis_side)
                geometry.update(size=size, scale=size[0] / s0.shape[1])
                clip.analysis_size, clip.full_size = size, (s0.shape[1], s0.shape[0])
                if s0.shape[:2] != o0.shape[:2]:
                    clip.notes.append(f"output is {o0.shape[1]}x{o0.shape[0]}, source {s0.shape[1]}x{s0.shape[0]}: "
                                      "the output is resized to the source's size for the pixel comparisons")
            size, scale = geometry["size"], geometry["scale"]
            idx = np.arange(first, first + len(src_full))
            out_full = out_raw if out_raw.shape[1:3] == src_full.shape[1:3] else \
                FrameSeq(resize(o, (src_full.shape[2], src_full.shape[1])) for o in out_raw)
            # Each array holds the previous batch's last frame first (what the pairs run over: ``Batch.seq``), the
            # batch's own frames are views of it; grey frames are made once here for every check.
            o0 = 0 if prev is None else 1
            m = len(src_full)
            quads = [None if place is None else place.get(int(i)) for i in idx]
            seqs = {w: np.empty((m + o0, size[1], size[0], 3), np.uint8) for w in ("src", "out")}
            seqs["keep"] = np.empty((m + o0, size[1], size[0]), bool)
            if source_only:  # the source is its own output: one array for both
                seqs["out"] = seqs["src"]
            for k in range(m):
                seqs["src"][o0 + k] = resize(src_full[k], size)
                if not source_only:
                    seqs["out"][o0 + k] = resize(out_full[k], size)
                seqs["keep"][o0 + k] = _keep_mask(size, quads[k], scale)
            if reference.intended and not source_only:  # (the source-side pass keeps nothing made from it)
                seqs["ref"] = np.empty_like(seqs["src"])
                for k, i in enumerate(idx):
                    q = quads[k]
                    seqs["ref"][o0 + k] = reference(int(i), seqs["src"][o0 + k], None if q is None else q * scale)
            else:
                seqs["ref"] = seqs["src"]
            grays = {w: np.empty(seqs[w].shape[:3], np.uint8) for w in ("src", "out", "ref")
                     if w == "src" or not source_only and (w != "ref" or reference.intended)}
            if prev is not None:
                for k, w in enumerate(("src", "out", "ref", "keep")):
                    seqs[w][0] = prev[k]
                for w in grays:
                    grays[w][0] = prev_gray[w]
            for w, g in grays.items():
                for k in range(o0, m + o0):
                    cv2.cvtColor(seqs[w][k], cv2.COLOR_RGB2GRAY, dst=g[k])
            grays.setdefault("ref", grays["src"])
            grays.setdefault("out", grays["src"])
            src, out, ref, keep = (seqs[w][o0:] for w in ("src", "out", "ref", "keep"))
            for k, i in enumerate(idx):
                if int(i) in picks:  # copies: a view would keep the decoder's whole chunk alive
                    kept[int(i)] = (src_full[k].copy(), out_full[k].copy(), ref[k].copy())
            batch = Batch(first=int(first), index=idx, src=src, out=out, ref=ref, keep=keep, src_full=src_full,
                          out_full=out_full, prev=prev, clip=clip, state={},
                          ref_is_src=not reference.intended or source_only,
                          seqs=seqs, grays=grays)
            now, c1 = time.perf_counter(), time.thread_time()
            _add(timings, "decode+reference", now - clock)
            _add(cpu, "decode+reference", c1 - c0)
            clock, c0 = now, c1
            if pairs:
                src_seq, out_seq, ref_seq = (batch.gray_seq(w) for w in ("src", "out", "ref"))
                keep_seq = batch.seq("keep")
                batch.pair_first = int(first) if prev is not None else int(first) + 1
                pk = ("src_pairs", batch.pair_first, len(src_seq), size, inv)
                if pk not in cache:  # float16: what the disk cache keeps, so cold and warm measure the same
                    cache[pk] = (dis_flows(src_seq, normalise=inv).astype(np.float16), steps(src_seq, keep_seq))
                batch.src_flows, batch.src_steps = cache[pk][0].astype(np.float32), cache[pk][1]
                if source_only:
                    batch.out_flows, batch.out_steps = batch.src_flows, batch.src_steps
                else:
                    batch.out_flows = dis_flows(out_seq, normalise=inv)
                    batch.out_steps = steps(out_seq, keep_seq)
                batch.ref_steps = batch.src_steps if batch.ref_is_src or inv else steps(ref_seq, keep_seq)
            _add(timings, "flows+steps", time.perf_counter() - clock)
            _add(cpu, "flows+steps", time.thread_time() - c0)
            # copies, not views: a view would keep the whole previous batch alive
            prev = tuple(np.array(a[-1]) for a in (src, out, ref, keep))
            prev_gray = {w: np.array(g[-1]) for w, g in grays.items()}
            yield batch, quads
            clock, c0 = time.perf_counter(), time.thread_time()

    done = 0
    # The checks of a batch in two groups, the second in a second thread: at first the label's and face's region
    # and the whole frame, then split by what each check took on the batch before (``balanced``); tables and worst
    # frames are gathered in the declared order, so the results are the same.
    region = [c for c in streamed if c.region is not None and (c.applies is None or c.applies(facts))]
    groups = [region, [c for c in streamed if c not in region]]
    if not groups[0]:  # no label or face to judge: the whole-frame checks start split in two
        groups = [groups[1][0::2], groups[1][1::2]]
    groups = ([g for g in groups if g] or [[]]) if parallel else [streamed]  # [[]]: no streamed check chosen
    took: dict[str, float] = {}  # check -> seconds on the last batch
    pool = None
    if len(groups) > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(len(groups) - 1, thread_name_prefix="qa-checks")

    def run_checks(batch: Batch, group: list) -> dict:
        found = {}
        for c in group:
            if "pairs" in c.needs and (batch.src_flows is None or len(batch.src_flows) == 0):
                continue
            t0, c0 = time.perf_counter(), time.thread_time()
            found[c.name] = c.measure(dataclasses.replace(batch, state=states[c.name]))
            took[c.name] = time.thread_time() - c0
            _add(timings, c.name, time.perf_counter() - t0)
            _add(cpu, c.name, took[c.name])
        return found

    decoders = []
    if parallel:  # each clip decoded one chunk ahead in a thread of its own, beside the batches' work
        source = _Ahead(iter(source))  # read by ``prepared`` when it runs
        output = None if source_only else _Ahead(iter(output))
        decoders = [d for d in (source, output) if d is not None]
    try:
        batches = _Ahead(prepared()) if parallel else prepared()
    except BaseException:
        for d in decoders:
            d.close()
        raise
    try:
        for batch, quads in batches:
            if pool is not None and took:
                groups = balanced(streamed, took)
            others = [pool.submit(run_checks, batch, g) for g in groups[1:]] if pool else []
            found = run_checks(batch, groups[0])
            for f in others:
                found.update(f.result())
            for c in streamed:
                t = found.get(c.name)
                if t is not None and not t.empty:
                    tables[c.name].append(t)
                    _keep_worst(worst, c, t, batch, quads, reference)
            done += len(batch.index)
            if progress:
                progress(done, n)
    finally:
        try:
            batches.close()
        finally:
            for d in decoders:  # even when closing the batches fails (a second Ctrl-C during its join)
                d.close()
            if pool is not None:
                pool.shutdown()
        reference.close()
    clip.samples = kept

    def save() -> None:
        if disk is not None and _entries(cache) != known:
            t0, c0 = time.perf_counter(), time.thread_time()
            _save_source_cache(disk, cache)
            timings["source cache write"] = time.perf_counter() - t0
            cpu["source cache write"] = time.thread_time() - c0

    def thumbnails() -> dict[int, tuple[bytes, ...]]:
        t0, c0 = time.perf_counter(), time.thread_time()
        thumbs = {}
        for i in sorted(kept):
            s, o, r = kept[i]
            thumbs[i] = (jpeg(s), jpeg(o), jpeg(r)) if reference.intended else (jpeg(s), jpeg(o))
        for _, i, fr in worst.values():
            if i not in thumbs:
                thumbs[i] = tuple(jpeg(f) for f in fr)
        timings["thumbnails"], cpu["thumbnails"] = time.perf_counter() - t0, time.thread_time() - c0
        return thumbs

    # The report's thumbnails and the source cache's file are made in a second thread while the checks finish
    # (OCR); the finishes read the source cache, none writes it.
    if source_only:  # the source-side pass: its measurements are what it is for
        save()
        summary, frames, judged_against = _finish_checks(checks, tables, clip, timings, cpu)
        thumbs = {}
    elif parallel:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="qa-finish") as ex:
            later = ex.submit(lambda: (save(), thumbnails())[1])
            summary, frames, judged_against = _finish_checks(checks, tables, clip, timings, cpu)
            thumbs = later.result()
    else:
        save()
        summary, frames, judged_against = _finish_checks(checks, tables, clip, timings, cpu)
        thumbs = thumbnails()
    judged_against["reference"] = judge.against(reference.kind)
    return VariantQA(variant=facts.variant, facts=facts, summary=summary, frames=frames, fps=Fraction(fps),
                     frame_count=source_count, thumbs=thumbs, keyframes=sorted(guides), notes=clip.notes,
                     judged_against=judged_against, timings={k: round(v, 3) for k, v in timings.items()},
                     cpu_timings={k: round(v, 3) for k, v in cpu.items()},
                     label_reads=_label_reads(frames, clip.state.get("label", {}).get("rects", {})))


def balanced(checks: list, took: dict[str, float]) -> list[list]:
    """``checks`` in two groups of about equal cost (``took``: seconds each check took on the last batch): the
    costliest first, each to the group with less so far."""
    groups: list[list] = [[], []]
    load = [0.0, 0.0]
    for c in sorted(checks, key=lambda c: -took.get(c.name, 0.0)):
        g = 0 if load[0] <= load[1] else 1
        groups[g].append(c)
        load[g] += took.get(c.name, 0.0)
    return [g for g in groups if g] or [[]]


def _finish_checks(checks, tables: dict, clip: Clip, timings: dict, cpu: dict):
    """Every check's ``finish``: (summary, the per-frame table of all checks, what each judged against)."""
    summary: dict[str, float] = {}
    per_frame = []
    judged_against = {}
    for c in checks:
        t = pd.concat(tables[c.name]) if tables[c.name] else pd.DataFrame()
        t0, c0 = time.perf_counter(), time.thread_time()
        res = c.finish(t, clip)
        timings[f"{c.name}.finish"] = time.perf_counter() - t0
        cpu[f"{c.name}.finish"] = time.thread_time() - c0
        for k, (w, t) in clip.state.get(c.name, {}).get("timings", {}).items():  # a check's own thread
            timings[f"{c.name}.{k}"], cpu[f"{c.name}.{k}"] = w, t
        summary.update(res.summary)
        if not res.frames.empty:
            per_frame.append(res.frames)
        if c.applies is None or c.applies(clip.facts):  # the report lists what was judged, not what does not apply
            judged_against[c.name] = c.describe(clip)
    frames = pd.concat(per_frame, axis=1) if per_frame else pd.DataFrame()
    if not frames.empty and frames.columns.duplicated().any():
        frames = frames.loc[:, ~frames.columns.duplicated()]
    frames = frames.sort_index()
    frames.index.name = "frame"
    return summary, frames, judged_against


def _add(d: dict, key: str, v: float) -> None:
    d[key] = d.get(key, 0.0) + v


def _keep_worst(worst: dict, check, table: pd.DataFrame, batch: Batch, quads: list, reference) -> None:
    """Remember the worst frame so far (at the analysis size) of each of ``check``'s metrics that has a worst
    column, so the report can show source, output and reference of a failure side by side (bounded memory: one
    frame triple per metric)."""
    pos = {int(i): k for k, i in enumerate(batch.index)}
    for m in check.metrics:
        if m.worst is None or m.worst not in table:
            continue
        col = pd.to_numeric(table[m.worst], errors="coerce").dropna()
        col = col[[i in pos for i in col.index]]
        if col.empty:
            continue
        i = int(col.idxmin() if m.side == "min" else col.idxmax())
        bad = -float(col[i]) if m.side == "min" else float(col[i])
        if m.name in worst and worst[m.name][0] >= bad:
            continue
        k = pos[i]  # copies of the analysis-size frames; made into JPEGs once, at the end
        frames = (batch.src[k].copy(), batch.out[k].copy()) + ((batch.ref[k].copy(),) if reference.intended else ())
        worst[m.name] = (bad, i, frames)


def _image(path: Path, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if path is None or not Path(path).is_file():
        raise QaError(f"{path}: {what} does not exist; fix the path in the facts file")
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (UnidentifiedImageError, OSError) as ex:
        raise QaError(f"{path}: {what} is not an image Pillow can read ({ex})") from ex


def label_frame(facts: Facts, fps: Fraction, frame_count: int) -> int:
    """The label's reference frame, read exactly as ``ray32.request`` reads ``label_swap.frame`` (an int or a
    string of digits is a frame number; other strings are times)."""
    from ray32.request import RequestError, resolve_frame

    try:
        return resolve_frame(facts.label.frame, fps, frame_count, what="label.frame")
    except RequestError as ex:
        raise QaError(f"facts: {ex}") from ex


def source_label_track(facts: Facts, source, fps: Fraction, frame_count: int):
    """The source's label quad per frame and the tracker's confidence: from the facts (``track`` or a demo
    ``truth`` file), else tracked with ``ray32.label_track.track_label`` from ``corners`` at ``frame``.

    Returns:
        (frame -> quad (NaN where the track is weak), frame -> score or None), or (None, None) without a label.

    Raises:
        QaError: the facts give neither a track nor corners, or the track has the wrong length.
    """
    lab = facts.label
    if lab is None:
        return None, None
    score = None
    if lab.track is not None:
        arr = np.asarray(lab.track, float)
    elif lab.truth is not None:
        from ray32.demo_shot import load_truth

        if not lab.truth.is_file():
            raise QaError(f"{lab.truth}: label truth file does not exist; fix label.truth in the facts file")
        arr = load_truth(lab.truth).label_corners
    elif lab.corners is not None:
        from ray32.label_track import track_label
        from ray32.shot import Shot, open_shot

        shot = source if isinstance(source, Shot) else open_shot(source, detect_cuts=False)
        return track_dict(track_label(shot, label_frame(facts, fps, frame_count), np.asarray(lab.corners, float)))
    else:
        raise QaError("facts: label needs 'corners' (the label quad in the source at 'frame'), 'track' or 'truth' "
                      "so that QA knows where the label is")
    if arr.ndim != 3 or arr.shape[1:] != (4, 2):
        raise QaError(f"facts: the label track must be (frames, 4, 2), got shape {arr.shape}")
    if len(arr) != frame_count:
        raise QaError(f"facts: the label track has {len(arr)} frames, the source {frame_count}; give one quad per "
                      "source frame")
    return {i: arr[i] for i in range(len(arr))}, score


def track_dict(track) -> tuple[dict, dict | None]:
    """A ``ray32.label_track.LabelTrack`` (or frame -> quad mapping) as (frame -> quad with NaN where the fit is
    weak, frame -> confidence)."""
    if hasattr(track, "corners"):
        corners = np.asarray(track.corners, float).copy()
        corners[~np.asarray(track.valid, bool)] = np.nan  # weak fits are not judged, not guessed
        score = np.asarray(getattr(track, "score", np.ones(len(corners))), float)
        return {i: corners[i] for i in range(len(corners))}, {i: float(score[i]) for i in range(len(score))}
    return dict(track), None


def decode_chunk(width: int, height: int) -> int:
    """Frames per decoded chunk when each clip is decoded ahead in its own thread (``measure_frames`` with
    ``parallel``): up to 16, fewer where 16 frames would exceed ``DECODE_AHEAD_MB`` (a 1080p clip: 8). A batch
    joined from smaller chunks holds up to three per clip at a time (two joined, one being decoded)."""
    return int(max(1, min(16, DECODE_AHEAD_MB * 2**20 // max(1, width * height * 3))))


_held_lock = threading.Lock()
_held: dict = {}
"""The decoded source frames held for the next variants (``SOURCE_FRAMES_MB``): {"key": shot key, "chunks": [...]}."""


def _source_chunks(shot, key: str, nbytes: int, chunk_frames: int) -> Iterable:
    """The source's decoded chunks: the held ones when this shot's are held, else decoded (``read_chunks``) and,
    when the clip fits ``SOURCE_FRAMES_MB``, held once decoded to its end (read-only: nothing may change them)."""
    from ray32.shot import read_chunks

    with _held_lock:
        if _held.get("key") == key:
            return list(_held["chunks"])
    chunks = read_chunks(shot, chunk_frames=chunk_frames)
    return chunks if nbytes > SOURCE_FRAMES_MB * 2**20 else _holding(chunks, key)


def _holding(chunks: Iterator, key: str) -> Iterator:
    kept = []
    for c in chunks:
        c.frames.flags.writeable = False
        kept.append(c)
        yield c
    with _held_lock:  # decoded to its end: held instead of the shot held before
        _held.clear()
        _held.update(key=key, chunks=kept)


def measure(source, output, facts: Facts, *, label_track=None, samples: int = SAMPLES,
            analysis_side: int = ANALYSIS_SIDE, cache: dict | None = None,
            source_cache: str | os.PathLike | None = None, face_boxes: np.ndarray | None = None,
            progress: Callable[[int, int], None] | None = None, parallel: bool | None = None,
            checks=None) -> VariantQA:
    """Probe and decode a source and an output clip and run every check: the one measuring path of
    ``ray32 qa`` and of the campaign run.

    Args:
        source: the source clip's path, or an opened (possibly trimmed) ``ray32.shot.Shot``.
        output: the output clip's path (None: the source-side pass, ``measure_source``).
        facts: the variant's facts (``qa.facts.load_facts`` / ``facts_from_request``).
        label_track: the source's label track when the caller has it (``Prepared.label_track``: a
            ``ray32.label_track.LabelTrack``, or frame -> (4, 2) quads); otherwise it comes from the facts.
        samples, analysis_side: see ``measure_frames``.
        cache: a dict shared between variants QA'd in this process (source-side measurements, keyed by shot).
        source_cache: a folder where the source-side measurements are kept on disk between processes (the
            campaign run passes the prepared shot's cache folder), or None.
        face_boxes: the source's face boxes from the shot's preparation (``Prepared.face_boxes``), or None.
        progress: ``progress(done, total)`` in frames.
        parallel: see ``measure_frames`` (None: ``PARALLEL``).
        checks: the checks to run (None: all; the source-side ones for the source-side pass).

    Returns:
        ``VariantQA`` (with ``max_cll_nits``/``max_fall_nits`` for HDR output).

    Raises:
        ShotError: a clip cannot be read. QaError: the facts name images that cannot be read.
    """
    from ray32.shot import Shot, probe, read_chunks

    src = source if isinstance(source, Shot) else None
    src_info = src.info if src is not None else probe(source)
    fps = src.fps if src is not None else src_info.fps
    count = src.frame_count if src is not None else src_info.frame_count
    out_info = probe(output) if output is not None else None  # None: the source-side pass (``measure_source``)
    artwork = _image(facts.label.artwork, "label artwork") if facts.label and facts.label.artwork else None
    reference = None
    if facts.identity.reference is not None:
        found = face_embedding(_image(facts.identity.reference, "identity reference image"))
        if found is None:
            raise QaError(f"{facts.identity.reference}: no face found in the identity reference image")
        reference = found[0]
    guides = {}
    if facts.keyframes:
        from ray32.request import RequestError, resolve_frame

        for k in facts.keyframes:
            if k.guide is not None:
                try:
                    guides[resolve_frame(k.time, fps, count, what="keyframe time")] = _image(k.guide,
                                                                                            "keyframe guide")
                except RequestError as ex:
                    raise QaError(f"facts: {ex}") from ex
    if label_track is not None and facts.label is not None:
        track, score = track_dict(label_track)
    else:
        track, score = source_label_track(facts, source, fps, count)
    hdr = None
    if out_info is not None and out_info.dynamic_range not in ("SDR", "sdr"):
        from qa.checks.exposure import hdr_light_levels
        from ray32.shot import working_geometry

        w, h = fit_size(out_info.width, out_info.height, 256)
        geo = working_geometry(out_info.width, out_info.height, max_width=w, max_height=h)
        cll = fall = 0.0
        for chunk in read_chunks(out_info, geometry=geo, output="linear"):
            c, f = hdr_light_levels(chunk.frames)
            cll, fall = max(cll, c), max(fall, f)
        hdr = (cll, fall)
    skey = shot_key(src.path, src.first, src.stop) if src is not None else shot_key(source, 0, count)
    ahead = PARALLEL if parallel is None else parallel
    src_chunks = _source_chunks(src if src is not None else src_info, skey,
                                count * src_info.width * src_info.height * 3,
                                decode_chunk(src_info.width, src_info.height) if ahead else 16)
    out_chunks = None if out_info is None else \
        read_chunks(out_info, chunk_frames=decode_chunk(out_info.width, out_info.height) if ahead else 16)
    if checks is None:
        checks = CHECKS if out_info is not None else [c for c in CHECKS if c.source_side]
    return measure_frames(src_chunks, out_chunks, facts, checks=checks, source_only=out_info is None,
                          fps=fps, source_count=count, output_count=count if out_info is None else out_info.frame_count,
                          output_fps=fps if out_info is None else out_info.fps,
                          label_track=track, label_score=score, artwork=artwork, identity_reference=reference,
                          guides=guides, samples=samples, analysis_side=analysis_side, cache=cache,
                          transfer=src_info.color_transfer, primaries=src_info.color_primaries, hdr=hdr,
                          progress=progress, source_cache=source_cache, source_key=skey, face_boxes=face_boxes,
                          parallel=parallel)


def measure_source(source, facts: Facts | Iterable[Facts], *, label_track=None, samples: int = SAMPLES,
                   analysis_side: int = ANALYSIS_SIDE, cache: dict | None = None,
                   source_cache: str | os.PathLike | None = None, face_boxes: np.ndarray | None = None,
                   progress: Callable[[int, int], None] | None = None, parallel: bool | None = None) -> dict:
    """The source-side measurements of a shot, made once at its preparation so that no variant's QA makes them.

    The checks that keep measurements of the source (``Check.source_side``) run on the source as its own output
    (``measure_frames`` with ``source_only``; the output's side is skipped): the source's flows and frame steps,
    its warp errors and edge features and its faces, kept in ``cache`` and on disk in ``source_cache``; and per
    variant in ``facts`` (a campaign's variants of the shot) what depends on its grade or its market: the graded
    source's faces, the label's match with the artwork where the track is lost (both on disk too) and the label
    check's swapped reference label (``Swaps``: in ``cache`` only, this process's). One pass per distinct grade
    or artwork (paired up); what is cached already is not measured again, so a resumed run pays the decoding.
    The QA models are loaded too (one load per process).

    Args:
        source, label_track, samples, analysis_side, cache, source_cache, face_boxes, progress, parallel: as
            ``measure``.
        facts: one variant's facts or those of every variant of the shot that will be QA'd.

    Returns:
        {"passes": how many passes decoded the source, "measured": whether anything new was cached,
        "timings": wall seconds per stage (all passes), "cpu_timings": CPU seconds, "entries": measurements
        cached (on disk)}.
    """
    many = [facts] if isinstance(facts, Facts) else list(facts)
    if not many:
        raise ValueError("measure_source needs the facts of at least one variant")
    if any(f.label is not None for f in many):
        from qa.ocr import _engine

        _engine()  # built once per process: the label check's reads of every variant start at once
    cache = {} if cache is None else cache

    def kept() -> int:
        return sum(_entries(v) if k[0] == "qa-source" else len(v) for k, v in list(cache.items())
                   if isinstance(k, tuple) and k[:1] in (("qa-source",), ("qa-swaps",)))

    # the passes: each distinct grade and artwork once, paired up (the first pass also measures what no grade or
    # artwork changes)
    grades, arts = [], []
    for f in many:
        g = repr(sorted((f.grade or {}).items()))
        a = f.label.artwork if f.label is not None else None
        if g not in [x for x, _ in grades]:
            grades.append((g, f))
        if a is not None and a not in [x for x, _ in arts]:
            arts.append((a, f))
    passes = []
    for k in range(max(len(grades), len(arts))):
        g = grades[k][1] if k < len(grades) else many[0]
        a = arts[k][1] if k < len(arts) else g
        passes.append(g.model_copy(update={"label": a.label}))
    before = kept()
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for k, f in enumerate(passes):
        qa = measure(source, None, f, label_track=label_track, samples=samples, analysis_side=analysis_side,
                     cache=cache, source_cache=source_cache, face_boxes=face_boxes, progress=progress,
                     parallel=parallel, checks=None if k == 0 else [c for c in CHECKS if c.source_per_variant])
        for d, got in ((timings, qa.timings), (cpu, qa.cpu_timings)):
            for name, v in got.items():
                d[name] = round(d.get(name, 0.0) + v, 3)
    return {"passes": len(passes), "measured": kept() != before, "timings": timings, "cpu_timings": cpu,
            "entries": sum(_entries(v) for k, v in list(cache.items())
                           if isinstance(k, tuple) and k[:1] == ("qa-source",))}


measure_clips = measure
"""The former name of ``measure``."""


def metrics_table(results: Iterable[VariantQA]) -> pd.DataFrame:
    """One row per variant: ``variant``, ``mode`` and every summary number."""
    rows = [{"variant": r.variant, "mode": r.facts.mode, **r.summary} for r in results]
    return pd.DataFrame(rows)
