"""Label checks: is the market's label where the source's was, does it read right, does it look like the art?

For every sampled frame the output is rectified at the label quad expected there (the source's track: a label
swap keeps the label where it was) and

* read with OCR and compared with the market's expected text (exact, normalised, character error rate);
* compared with the market artwork (normalised cross-correlation of the rectified label, 1 = identical);
* searched for the artwork around the expected place (template matching in the rectified, enlarged quad),
  which gives how far the label has drifted from the source's quad, in frame pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from qa.checks import CheckResult, frame_table
from qa.checks.geometry import gray, quad_size, rectify
from qa.ocr import OcrResult, char_error_rate, fold_confusables, read_text

SEARCH_MARGIN = 0.35
"""How far around the expected quad the artwork is searched, as a fraction of the label's width/height."""


def rectified_size(corners: np.ndarray, *, min_width: int = 200, max_width: int = 320) -> tuple[int, int]:
    """The upright size a quad is rectified to: about its size in the frame, clamped for OCR speed."""
    w, h = quad_size(corners)
    rw = int(np.clip(round(w), min_width, max_width))
    return rw, max(16, int(round(rw * h / max(w, 1.0))))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def _expand(corners: np.ndarray, margin: float) -> np.ndarray:
    """The quad grown by ``margin`` of its size on every side (bilinear in the quad's own coordinates)."""
    c = np.asarray(corners, float)
    tl, tr, br, bl = c

    def at(u, v):
        return (1 - u) * (1 - v) * tl + u * (1 - v) * tr + u * v * br + (1 - u) * v * bl

    return np.array([at(-margin, -margin), at(1 + margin, -margin), at(1 + margin, 1 + margin),
                     at(-margin, 1 + margin)])


def locate_artwork(frame: np.ndarray, corners: np.ndarray, artwork_gray: np.ndarray,
                   size: tuple[int, int]) -> tuple[float, float]:
    """Where the artwork is, relative to the expected quad: (drift in frame pixels, match score).

    The area around the quad is rectified (SEARCH_MARGIN on every side) and the artwork, at the quad's
    rectified size, is matched in it; the offset of the best match is converted back to frame pixels.
    """
    import cv2

    w, h = size
    big = (int(round(w * (1 + 2 * SEARCH_MARGIN))), int(round(h * (1 + 2 * SEARCH_MARGIN))))
    area = gray(rectify(frame, _expand(corners, SEARCH_MARGIN), big))
    tmpl = cv2.resize(artwork_gray, (w, h), interpolation=cv2.INTER_AREA)
    # Blur both a little: codec noise and print-size detail should not decide the peak.
    area = cv2.GaussianBlur(area, (0, 0), 1.0)
    tmpl = cv2.GaussianBlur(tmpl, (0, 0), 1.0)
    res = cv2.matchTemplate(area, tmpl, cv2.TM_CCOEFF_NORMED)
    _, score, _, (bx, by) = cv2.minMaxLoc(res)
    dx = bx - (big[0] - w) / 2
    dy = by - (big[1] - h) / 2
    qw, qh = quad_size(corners)
    return float(np.hypot(dx * qw / w, dy * qh / h)), float(score)


def label_check(frames: Mapping[int, np.ndarray], corners: Mapping[int, np.ndarray], expected_text: str,
                artwork: np.ndarray | None = None, *,
                read: Callable[[np.ndarray], OcrResult] = read_text) -> CheckResult:
    """Label text, artwork similarity and drift on sampled output frames.

    Args:
        frames: frame index -> output frame (h, w, 3) uint8 RGB, at the resolution ``corners`` are in.
        corners: frame index -> expected label quad (4, 2) tl, tr, br, bl (the source's track); frames without
            a quad (the label not visible in the source) are skipped.
        expected_text: the market's label text (lines joined with spaces).
        artwork: the market's label artwork (h, w, 3) RGB, or None (no similarity or drift then).
        read: the OCR function (``qa.ocr.read_text``).

    Returns:
        ``CheckResult`` "label": per frame ``ocr_text``, ``ocr_score``, ``text_exact`` (same text, spaces
        collapsed), ``text_match`` (same after ``fold_confusables``: case, spacing, punctuation and the glyphs
        OCR confuses (o/0, l/i/1) ignored), ``cer``, ``artwork_similarity``,
        ``drift_px``; summary ``label_text_match_rate``, ``label_cer_max``, ``label_artwork_similarity_min``,
        ``label_drift_max_px``, ``label_frames``.
    """
    art_gray = gray(artwork) if artwork is not None else None
    want = " ".join(expected_text.split())
    rows, index = [], []
    for i in sorted(frames):
        quad = corners.get(i)
        if quad is None or not np.all(np.isfinite(quad)):
            continue
        frame = frames[i]
        size = rectified_size(quad)
        label = rectify(frame, quad, size)
        ocr = read(label)
        row = {"ocr_text": ocr.text, "ocr_score": ocr.score,
               "text_exact": " ".join(ocr.text.split()) == want,
               "text_match": fold_confusables(ocr.text) == fold_confusables(want),
               "cer": char_error_rate(ocr.text, want),
               "artwork_similarity": np.nan, "drift_px": np.nan}
        if art_gray is not None:
            import cv2

            tmpl = cv2.resize(art_gray, size, interpolation=cv2.INTER_AREA)
            row["artwork_similarity"] = _ncc(cv2.GaussianBlur(gray(label), (0, 0), 1.0),
                                             cv2.GaussianBlur(tmpl, (0, 0), 1.0))
            row["drift_px"], _ = locate_artwork(frame, quad, art_gray, size)
        rows.append(row)
        index.append(i)
    table = frame_table(rows, index)
    if not rows:
        nan = float("nan")
        return CheckResult("label", table, {"label_text_match_rate": nan, "label_cer_max": nan,
                                            "label_artwork_similarity_min": nan, "label_drift_max_px": nan,
                                            "label_frames": 0})
    return CheckResult("label", table, {
        "label_text_match_rate": float(table["text_match"].mean()),
        "label_cer_max": float(table["cer"].max()),
        "label_artwork_similarity_min": float(table["artwork_similarity"].min()),
        "label_drift_max_px": float(table["drift_px"].max()),
        "label_frames": len(table),
    })
