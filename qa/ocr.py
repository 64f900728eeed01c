"""Reading label text: rapidocr (PP-OCR ONNX models that ship in the wheel) on a rectified label image.

The engine is built once per process with DESIGN.md's settings (``Det.limit_type=max``,
``Det.limit_side_len=960``) and one ONNX Runtime thread, and warmed up as it is built (``_warm_up``); nothing is
downloaded. Text comparison helpers (normalisation, character error
rate) live here too so that every check compares text the same way.
"""

from __future__ import annotations

import threading
import unicodedata
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

OCR_PARAMS = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "Global.use_cls": False,      # a rectified label is upright: the angle classifier only costs time
    # One thread: ONNX Runtime's second thread spins while it waits; on two cores it doubled the CPU time of a
    # read and halved nothing (QA runs beside renders and other QA).
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    "Global.log_level": "error",
}
_lock = threading.Lock()
_build_lock = threading.Lock()
_pool_lock = threading.Lock()
_background: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float
    box: np.ndarray  # (4, 2) in the image's pixels


@dataclass(frozen=True)
class OcrResult:
    lines: tuple[OcrLine, ...]

    @property
    def text(self) -> str:
        """The lines top to bottom, joined with single spaces."""
        return " ".join(line.text for line in self.lines)

    @property
    def score(self) -> float:
        """The lowest line confidence (0 when nothing was read)."""
        return min((line.score for line in self.lines), default=0.0)


def _engine():
    """The process's engine, built (and warmed up) on first use; one build even when threads ask at once."""
    with _build_lock:
        return _built()


@lru_cache(maxsize=1)
def _built():
    from rapidocr import RapidOCR

    engine = RapidOCR(params=dict(OCR_PARAMS))
    _warm_up(engine)
    return engine


def _warm_up(engine) -> None:
    """Load the detector's and the recogniser's models now and run each once on a small drawn label.

    rapidocr opens each ONNX model on its first use (~0.07 s each, with a checksum of the file) and the first read
    sets up the rest; without this, the first QA in a process paid it inside its OCR reads, and where the engine
    is built before QA (``bench/qa_speed.py`` times it apart) it now counts as loading the models. ONNX Runtime
    keeps nothing from one run to the next: no reading changes (``tests/test_qa_ocr_lines.py``)."""
    import cv2

    img = np.full((96, 224, 3), 255, np.uint8)
    cv2.putText(img, "AQUA 0,5", (10, 62), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (40, 30, 20), 3, cv2.LINE_AA)
    engine(img)


def engine_ready() -> bool:
    """Whether this process's engine is built (``_engine``)."""
    return _built.cache_info().currsize > 0


def in_background(fn, *args) -> Future:
    """``fn(*args)`` in the process's one OCR thread (started on first use), as a future.

    QA starts there a read it knows it will need while it still measures the frames (``qa.checks.label``: the
    intended label's full read); the reads are the same calls as ever (``read_text`` takes the engine's lock),
    so they read the same."""
    global _background
    with _pool_lock:
        if _background is None:
            _background = ThreadPoolExecutor(1, thread_name_prefix="qa-ocr")
    return _background.submit(fn, *args)


def read_text(image: np.ndarray) -> OcrResult:
    """Read the text in an RGB image (a rectified label), lines ordered top to bottom.

    Args:
        image: (h, w, 3) uint8 RGB.

    Returns:
        ``OcrResult``; ``text`` joins the lines with spaces, empty when nothing was found.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"read_text needs an (h, w, 3) RGB image, got shape {image.shape}")
    bgr = np.ascontiguousarray(image[..., ::-1])
    with _lock:  # the ONNX sessions are shared; one call at a time
        out = _engine()(bgr)
    if out.txts is None or out.boxes is None:
        return OcrResult(())
    lines = [OcrLine(str(t).strip(), float(s), np.asarray(b, float))
             for t, s, b in zip(out.txts, out.scores, out.boxes) if str(t).strip()]
    return OcrResult(tuple(_ordered(lines)))


def read_lines(items: list[tuple[np.ndarray, list[np.ndarray]]]) -> list[OcrResult]:
    """Read text at known line boxes, without the detector: every image's lines recognised in one batched call.

    ``read_text`` finds the lines (detector) and recognises each; when the layout is already known -- the
    output's label is read at the line boxes OCR found on the intended label, rectified the same way -- only the
    recogniser runs, on the same crops ``read_text`` would make, and lines below rapidocr's text score are
    dropped as ``read_text`` drops them.

    Args:
        items: (RGB image (h, w, 3) uint8, line boxes (4, 2) in its pixels) per image.

    Returns:
        One ``OcrResult`` per image, lines ordered as ``read_text`` orders them.
    """
    from rapidocr.utils.process_img import get_rotate_crop_image

    crops, owner, boxes = [], [], []
    for k, (image, lines) in enumerate(items):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"read_lines needs (h, w, 3) RGB images, got shape {image.shape}")
        bgr = np.ascontiguousarray(image[..., ::-1])
        h, w = bgr.shape[:2]
        for box in lines:
            b = np.clip(np.asarray(box, np.float32), 0, [w - 1, h - 1]).astype(np.float32)
            crop = get_rotate_crop_image(bgr, b.copy())
            if crop.shape[0] >= 2 and crop.shape[1] >= 2:
                crops.append(crop)
                owner.append(k)
                boxes.append(b.astype(float))
    found: list[list[OcrLine]] = [[] for _ in items]
    if crops:
        with _lock:
            engine = _engine()
            out = engine.recognize_txt(crops)
            floor = float(engine.text_score)
        for k, t, sc, b in zip(owner, out.txts, out.scores, boxes):
            if str(t).strip() and float(sc) >= floor:
                found[k].append(OcrLine(str(t).strip(), float(sc), b))
    return [OcrResult(tuple(_ordered(lines))) for lines in found]


def _ordered(lines: list[OcrLine]) -> list[OcrLine]:
    """Top to bottom, then left to right (lines whose middles are within ~0.6 line heights count as one row)."""
    return sorted(lines, key=lambda line: (round(line.box[:, 1].mean() / max(8.0, _line_height(line.box) * 0.6)),
                                           line.box[:, 0].min()))


def _line_height(box: np.ndarray) -> float:
    return float(box[:, 1].max() - box[:, 1].min())


def normalise_text(text: str) -> str:
    """Case-folded, accents kept, everything but letters and digits removed: ``"500 ml"`` -> ``"500ml"``."""
    text = unicodedata.normalize("NFC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum())


_CONFUSABLE = str.maketrans({"o": "0", "l": "1", "i": "1", "|": "1"})


def fold_confusables(text: str) -> str:
    """``normalise_text`` with glyphs OCR confuses in print folded together (o/0, l/i/1):
    ``"0,5 l"`` and ``"0,51"`` compare equal."""
    return normalise_text(text).translate(_CONFUSABLE)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_error_rate(read: str, expected: str) -> float:
    """Character error rate of ``read`` against ``expected`` after ``normalise_text`` (0 = identical)."""
    r, e = normalise_text(read), normalise_text(expected)
    if not e:
        return 0.0 if not r else 1.0
    return levenshtein(r, e) / len(e)
