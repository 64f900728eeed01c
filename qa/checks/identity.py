"""Identity: is the person in the output the person of the source (or of the lock's reference image)?

Faces are found with dlib's HOG detector and described with dlib's 128-d ResNet embedding
(face-recognition-models, CC0 weights in the package). Distances between embeddings of the same person are
small: on this project's data the astronaut photo from scikit-image, as drawn into the demo shot and
re-encoded, stays within about 0.12 of the photo itself, while Grace Hopper's photo is about 0.69 from it (see
tests/test_qa_checks.py); the bounds sit in between.

Faces are sampled on every ``face_step(fps)``-th frame (about 4 a second), so a one-second glitch anywhere in a
20 s clip is seen; the source's embeddings are computed once per shot. A gradual morph is caught by the trend
of the distance over the clip (``identity_distance_trend``, ``identity_trend``: the rise of a straight line fitted
to the distance over time, from the first sampled frame to the last, the smallest of the lines that leave one
sample out each) as well as by its maximum. With a grade, the output's face is compared with the face found
in the source through that grade (what the variant intends): a grade can make dlib pick a different face near
the source's box (Megamind.avi frame 20 under the golden preset picks the man behind the woman), and that is the
intended picture's, not a defect of the output.

Three measures keep dlib's own jitter out of the verdict (on Megamind.avi's animated faces the distance between a
clean draft and its graded source jittered up to 0.39 and its trend reached 0.15-0.20 against a 0.12 bound):

- the output's face is described at the reference's face box when the detector finds it there (overlap >= 0.5):
  the HOG detector's box moves by a few pixels with compression and grade, and a different box gives a different
  embedding of the same picture (Megamind frames 2-37, JPEG-80 of the source: distance up to 0.68 with the
  output's own box, 0.09 at the reference's; a gradual 35 % morph toward the other character: trend 0.16-0.19
  with the own box, 0.26-0.31 at the reference's). The detector still decides whether a face is there
  (``face_lost``), and a face found elsewhere is described at its own box.
- the trend leaves one sample out: a clip gives only 5-9 sampled faces (a 1.5 s trim at 24 fps: 7), and one face
  that dlib reads 0.2-0.4 further than its neighbours (pose, expression, a grade) tilts a least-squares line by
  up to 0.17 when it is near an end. ``identity_trend`` fits the line once without each sample and keeps the
  smallest slope, times the span of all samples: a morph rises on every sample and keeps its trend, one far
  sample is left out. (Theil-Sen and the rise between the medians of the first and last thirds were measured
  too: with 5-7 samples they separate clean drafts from morphs less well; see the figures below.)
- the bounds widen with the source's own identity noise, ``source_identity_noise``: the median distance between
  the source's embeddings on neighbouring sampled frames (the same person a quarter second apart, so what varies
  is dlib on this footage: pose, expression, rendering). It comes from the source's face embeddings, which are
  computed once per shot and kept in the source cache (``src_faces``). A quarter of it is added to the maximum's
  bound and an eighth to the trend's (like flicker's and motion's floors).

Calibrated on the benchmark's calibration clips only (Megamind.avi frames 2-37, source identity noise 0.30; the
demo shot's face, frames 0-23, noise 0.09): clean graded drafts against a gradual 35 % morph toward the other
character (bench/qa_defects.py's seeding, starting at 0, 1/8 and 1/4 of the clip), golden / overcast / neon
(``bench/identity_trend.py`` prints the per-sample distances). Clean maximum 0.23-0.30 (bound 0.4 + 0.08).
Trend, least-squares line through all samples (the estimator before): clean -0.04..0.015 (demo -0.01..0.06),
morph 0.185-0.24 (demo 0.33-0.42); with one clean sample read 0.3 further, at the worst place, a clean draft
reached 0.20 (demo 0.29). Leave-one-out trend (now): clean -0.09..-0.03 (demo -0.04..0.05), 0.06 at most with
one sample read 0.3 (or any amount) further (demo 0.07), morph 0.16-0.21 (demo 0.21-0.33). Theil-Sen with one
far sample: 0.26 on Megamind (above its morphs' 0.15); medians of the thirds: 0.165 (morphs 0.155-0.205). The
bound, 0.08 + an eighth of the noise (Megamind 0.118, demo 0.091), sits between the clean drafts with one far
sample and the morphs on both clips (adhere; flex's 0.1 and reimagine's 0.13 keep the proportions of the bounds
before, 0.12 / 0.15 / 0.2, and were not measured).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode

_lock = threading.Lock()


def _models_dir() -> str:
    # face_recognition_models/__init__ imports pkg_resources (gone from current setuptools): locate, don't import.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed; install the pinned environment "
                           "(pip install -c constraints.txt face-recognition-models)")
    return os.path.join(spec.submodule_search_locations[0], "models")


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    d = _models_dir()
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(os.path.join(d, "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(os.path.join(d, "dlib_face_recognition_resnet_model_v1.dat")))


def face_embedding(image: np.ndarray, *, upsample: int = 0, near: np.ndarray | None = None,
                   at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest face in an RGB image: (128-d embedding, box [x0, y0, x1, y1]) or None when no face is found.

    Args:
        image: (h, w, 3) uint8 RGB.
        upsample: how often dlib upsamples the image before detecting (finds smaller faces, slower).
        near: a box [x0, y0, x1, y1] where the face is expected (the source's): the detector looks in that
            box grown by its size on every side first (several times faster), then in the whole image.
        at: the reference's face box: when the face found overlaps it by at least half (intersection over
            union), the embedding is computed at ``at`` instead of the detector's own box, so the detector's
            jitter of a few pixels does not change the embedding (the returned box is still the detector's).
    """
    img = np.ascontiguousarray(image)
    if at is not None and not np.all(np.isfinite(at)):
        at = None
    found = _find(img, upsample, near, at)
    if found is None:
        return None
    if at is not None and _iou(found.box, at) >= 0.5:  # described once, at ``at`` (not also at its own box)
        return _describe(img, at), found.box
    return found.describe(), found.box


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _describe(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    import dlib

    _, shape, encoder = _dlib_models()
    rect = dlib.rectangle(*(int(round(v)) for v in box))
    with _lock:
        return np.asarray(encoder.compute_face_descriptor(img, shape(img, rect)), np.float64)


class _Found:
    """A face the detector found: its box in the whole image's pixels, described (dlib's ResNet, the costly part)
    only when asked, on the image and at the rectangle it was found in."""

    def __init__(self, img: np.ndarray, rect, offset: tuple[int, int] = (0, 0)):
        self.img, self.rect = img, rect
        self.box = _box(rect) + [offset[0], offset[1], offset[0], offset[1]]

    def describe(self) -> np.ndarray:
        _, shape, encoder = _dlib_models()
        with _lock:
            return np.asarray(encoder.compute_face_descriptor(self.img, shape(self.img, self.rect)), np.float64)


def _find(img: np.ndarray, upsample: int, near: np.ndarray | None, at: np.ndarray | None = None) -> _Found | None:
    if near is not None and np.all(np.isfinite(near)):
        x0, y0, x1, y1 = near
        w, h = x1 - x0, y1 - y0
        ox, oy = int(max(0, x0 - w)), int(max(0, y0 - h))
        crop = np.ascontiguousarray(img[oy:int(min(img.shape[0], y1 + h)), ox:int(min(img.shape[1], x1 + w))])
        if crop.size:
            found = _detect(crop, upsample, None if at is None else at - [ox, oy, ox, oy], (ox, oy))
            if found is not None:
                if at is None or _iou(found.box, at) >= 0.5:
                    return found
                # only another face in the crop (the reference's person missed there, e.g. after compression):
                # the whole image may still show the reference's person (Megamind.avi frame 20, JPEG-80)
                whole = _detect(img, upsample, at)
                return whole if whole is not None and _iou(whole.box, at) >= 0.5 else found
    return _detect(img, upsample, at)


def _detect(img: np.ndarray, upsample: int, at: np.ndarray | None = None,
            offset: tuple[int, int] = (0, 0)) -> _Found | None:
    """The largest face found, or, given ``at`` (in ``img``'s pixels), the face that overlaps ``at`` most when one
    overlaps it by at least half (another, larger face near the reference's is another person: Megamind.avi
    frame 20). ``offset``: where ``img`` sits in the whole image (a crop)."""
    detector = _dlib_models()[0]
    with _lock:
        found = detector(img, upsample)
    if not found:
        return None
    rect = max(found, key=lambda r: r.width() * r.height())
    if at is not None:
        best = max(found, key=lambda r: _iou(_box(r), at))
        rect = best if _iou(_box(best), at) >= 0.5 else rect
    return _Found(img, rect, offset)


def _box(rect) -> np.ndarray:
    return np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float)


def face_embeddings(frames: Mapping[int, np.ndarray], *, upsample: int = 0) -> dict[int, np.ndarray | None]:
    """``face_embedding`` for each sampled frame: frame index -> embedding (or None: no face)."""
    out = {}
    for i, frame in frames.items():
        found = face_embedding(frame, upsample=upsample)
        out[i] = None if found is None else found[0]
    return out


def identity_check(output: Mapping[int, np.ndarray | None],
                   reference: Mapping[int, np.ndarray | None] | np.ndarray) -> CheckResult:
    """Distance of the output's face to the reference identity on each sampled frame.

    Args:
        output: frame index -> the output's face embedding, None where no face was found.
        reference: the source's embeddings per frame (same indices), or one embedding (a lock's reference
            image). Frames where the source shows no face are not counted.

    Returns:
        ``CheckResult`` "identity": per frame ``identity_distance`` (NaN: no face in the output) and
        ``face_lost``; summary ``identity_distance_max``, ``identity_distance_median``,
        ``identity_distance_trend``, ``face_lost_frames``, ``face_frames``.
    """
    rows, index = [], []
    for i in sorted(output):
        ref = reference.get(i) if isinstance(reference, Mapping) else reference
        if ref is None:
            continue
        emb = output[i]
        rows.append({"identity_distance": float(np.linalg.norm(emb - ref)) if emb is not None else np.nan,
                     "face_lost": emb is None})
        index.append(i)
    return _summarise(frame_table(rows, index))


MIN_TREND_FACES = 4
"""Fewer sampled faces than this give no trend (NaN)."""


def identity_trend(frames: np.ndarray, distance: np.ndarray) -> float:
    """How far the identity distance rises over the clip, robust to one jittery sample.

    A least-squares line is fitted to the distance over the frame index with each sampled face left out in turn;
    the trend is the smallest of those slopes times the span from the first sampled frame to the last. A gradual
    morph rises on every sample, so leaving one out hardly changes its line; dlib's jitter on one sample (one
    face read 0.2-0.3 further, e.g. near an end of the clip, where it tilts a plain line most) is left out by the
    line that skips it. NaN with fewer than ``MIN_TREND_FACES`` samples.
    """
    x, y = np.asarray(frames, float), np.asarray(distance, float)
    if len(x) < MIN_TREND_FACES:
        return float("nan")
    keep = ~np.eye(len(x), dtype=bool)
    slope = min(np.polyfit(x[k], y[k], 1)[0] for k in keep)
    return float(slope * (x[-1] - x[0]))


def _summarise(table: pd.DataFrame) -> CheckResult:
    nan = float("nan")
    if table.empty:
        return CheckResult("identity", table, {"identity_distance_max": nan, "identity_distance_median": nan,
                                               "identity_distance_trend": nan, "face_lost_frames": 0,
                                               "face_frames": 0})
    d = table["identity_distance"].astype(float)
    ok = d.dropna()
    return CheckResult("identity", table, {
        "identity_distance_max": float(ok.max()) if len(ok) else nan,
        "identity_distance_median": float(ok.median()) if len(ok) else nan,
        "identity_distance_trend": identity_trend(ok.index.to_numpy(float), ok.to_numpy()),
        "face_lost_frames": int(table["face_lost"].astype(bool).sum()),
        "face_frames": len(table),
    })


def face_step(fps) -> int:
    """Every how many frames a face is sampled: about four times a second."""
    return max(1, int(round(float(fps) / 4)))


def grade_key(grade: dict) -> str:
    """The key of a grade in the source cache (the graded source's faces are kept per grade): its values, and the
    content of its LUT file when it names one (a .cube edited in place is another grade)."""
    key = repr(sorted(grade.items()))
    lut = grade.get("lut")
    if lut:
        import hashlib

        try:
            key += ":" + hashlib.sha256(open(lut, "rb").read()).hexdigest()[:16]
        except OSError:
            pass  # a missing LUT fails where the grade is applied
    return key


def measure(batch: Batch) -> pd.DataFrame:
    clip = batch.clip
    if not clip.facts.identity.check:
        return frame_table([], [])
    step = face_step(clip.fps)
    src_faces = clip.cache.setdefault("src_faces", {})  # frame -> (embedding, box) or None
    ref_faces = clip.cache.setdefault("graded_faces", {})  # (grade, frame) -> (embedding, box) or None
    grade = grade_key(clip.grade) if clip.grade and clip.make_reference is not None else None
    rows, index = [], []
    for k, i in enumerate(batch.index):
        i = int(i)
        if i % step and i != clip.source_count - 1:
            continue
        # The source's face is looked for near where the shot's preparation found it, when it did: 2.5-6x
        # less CPU than the whole frame at 1080p (the output's face is looked for near the source's, as always).
        hint = None if clip.source_face_boxes is None or i >= len(clip.source_face_boxes) \
            else clip.source_face_boxes[i]
        hint = hint if hint is not None and np.all(np.isfinite(hint)) else None
        if i not in src_faces:
            src_faces[i] = face_embedding(batch.src_full[k], near=hint)
        src = src_faces[i]
        near = None if src is None else src[1]
        if clip.identity_reference is not None:
            ref = clip.identity_reference
        elif src is None:
            continue
        elif grade is not None:  # the intended picture: the source through the variant's grade
            if (grade, i) not in ref_faces:
                ref_faces[(grade, i)] = face_embedding(clip.make_reference(i, batch.src_full[k], None), near=near)
            graded = ref_faces[(grade, i)]
            if graded is None:  # the graded source shows the detector no face here: not judged
                continue
            ref, near = graded
        else:
            ref = src[0]
        if clip.source_only:  # the shot's source-side pass: the source's (and graded source's) faces only
            continue
        found = face_embedding(batch.out_full[k], near=near,
                               at=None if clip.identity_reference is not None else near)
        emb = None if found is None else found[0]
        rows.append({"identity_distance": float(np.linalg.norm(emb - ref)) if emb is not None else np.nan,
                     "face_lost": emb is None})
        index.append(i)
    return frame_table(rows, index)


def source_identity_noise(src_faces: Mapping[int, tuple | None]) -> float:
    """The median distance between the source's face embeddings on neighbouring sampled frames (NaN: fewer than
    two neighbouring pairs with a face). ``src_faces``: frame -> (embedding, box) or None, as cached."""
    ids = sorted(i for i in src_faces if isinstance(i, (int, np.integer)))
    d = [float(np.linalg.norm(src_faces[a][0] - src_faces[b][0])) for a, b in zip(ids, ids[1:])
         if src_faces[a] is not None and src_faces[b] is not None]
    return float(np.median(d)) if len(d) >= 2 else float("nan")


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    res = _summarise(table)
    src = dict(clip.cache.get("src_faces", {}))  # a copy: other variants' threads may add to the shared cache
    judged = set(int(i) for i in table.index) if not table.empty else set()
    res.summary["source_identity_noise"] = source_identity_noise({i: f for i, f in src.items() if i in judged})
    if clip.facts.identity.check and res.summary["face_frames"] == 0:
        clip.notes.append("identity not judged: no face found in the source's sampled frames")
    return res


def _lost(f):
    from ray32.timecode import format_seconds

    fr = f.qa.frames
    lost = fr.index[fr["face_lost"].astype("boolean").fillna(False)] if "face_lost" in fr else []
    i = int(lost[0]) if len(lost) else None
    return (f"face lost in {int(f.value)} checked frame(s): "
            + ", ".join(format_seconds(k / f.qa.fps) for k in list(lost)[:6]), i)


CHECK = Check(
    name="identity", needs=frozenset({"frames"}), finish=finish, measure=measure, region="face",
    source_side=True, source_per_variant=True,
    applies=lambda facts: facts.identity.check,
    about="the face on every few frames against the source's through the variant's grade (or the lock's "
          "reference), maximum and trend",
    metrics=(
        Metric("identity_distance_max", "max", per_mode(0.4, 0.45, 0.5), worst="identity_distance", key=True,
               floor="source_identity_noise", floor_scale=0.25,
               explain="face is not the source's person{at} (identity distance {value:.2f}, {limit})"),
        Metric("identity_distance_trend", "max", per_mode(0.08, 0.1, 0.13), worst="identity_distance", key=True,
               floor="source_identity_noise", floor_scale=0.125,
               explain="face drifts away from the source's person over the clip (identity distance rises by "
                       "{value:.2f}, worst{at}; {limit}): a gradual morph"),
        Metric("face_lost_frames", "max", per_mode(0, 1, 2), explain=_lost),
    ))
