"""Identity: is the person in the output the person of the source (or of the lock's reference image)?

Faces are found with dlib's HOG detector and described with dlib's 128-d ResNet embedding
(face-recognition-models, CC0 weights in the package). Distances between embeddings of the same person are
small: on this project's data the astronaut photo from scikit-image, as drawn into the demo shot and
re-encoded, stays within about 0.12 of the photo itself, while Grace Hopper's photo is about 0.69 from it (see
tests/test_qa_checks.py); the expectations put the limit in between.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from qa.checks import CheckResult, frame_table

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


def face_embedding(image: np.ndarray, *, upsample: int = 0,
                   near: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest face in an RGB image: (128-d embedding, box [x0, y0, x1, y1]) or None when no face is found.

    Args:
        image: (h, w, 3) uint8 RGB.
        upsample: how often dlib upsamples the image before detecting (finds smaller faces, slower).
        near: a box [x0, y0, x1, y1] where the face is expected (the source's): the detector looks in that
            box grown by its size on every side first (several times faster), then in the whole image.
    """
    img = np.ascontiguousarray(image)
    if near is not None and np.all(np.isfinite(near)):
        x0, y0, x1, y1 = near
        w, h = x1 - x0, y1 - y0
        ox, oy = int(max(0, x0 - w)), int(max(0, y0 - h))
        crop = np.ascontiguousarray(img[oy:int(min(img.shape[0], y1 + h)), ox:int(min(img.shape[1], x1 + w))])
        if crop.size:
            found = _embed(crop, upsample)
            if found is not None:
                return found[0], found[1] + [ox, oy, ox, oy]
    return _embed(img, upsample)


def _embed(img: np.ndarray, upsample: int):
    detector, shape, encoder = _dlib_models()
    with _lock:
        found = detector(img, upsample)
        if not found:
            return None
        rect = max(found, key=lambda r: r.width() * r.height())
        desc = encoder.compute_face_descriptor(img, shape(img, rect))
    box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float)
    return np.asarray(desc, np.float64), box


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
        ``identity_distance_spread`` (standard deviation over time), ``face_lost_frames``, ``face_frames``.
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
    table = frame_table(rows, index)
    if not rows:
        nan = float("nan")
        return CheckResult("identity", table, {"identity_distance_max": nan, "identity_distance_median": nan,
                                               "identity_distance_spread": nan, "face_lost_frames": 0,
                                               "face_frames": 0})
    d = table["identity_distance"]
    return CheckResult("identity", table, {
        "identity_distance_max": float(d.max()) if d.notna().any() else float("nan"),
        "identity_distance_median": float(d.median()) if d.notna().any() else float("nan"),
        "identity_distance_spread": float(d.std(ddof=0)) if d.notna().sum() > 1 else 0.0,
        "face_lost_frames": int(table["face_lost"].sum()),
        "face_frames": len(table),
    })
