"""Structure fidelity: do the output's edges (layout, blocking, composition) sit where the source's do?"""

from __future__ import annotations

import numpy as np

from qa.checks import CheckResult, frame_table
from qa.checks.geometry import gray


def edge_map(frame: np.ndarray) -> np.ndarray:
    """Canny edges (bool) of a lightly blurred grey frame, thresholds from the frame's median."""
    import cv2

    g = cv2.GaussianBlur(gray(frame), (0, 0), 1.2)
    med = float(np.median(g))
    return cv2.Canny(g, int(max(10, 0.5 * med)), int(max(30, 1.2 * med))) > 0


def edge_similarity(a: np.ndarray, b: np.ndarray, tolerance: int = 2) -> float:
    """F1 score of two edge maps, an edge counting as matched within ``tolerance`` pixels (1 = same layout)."""
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    da = cv2.dilate(a.astype(np.uint8), k) > 0
    db = cv2.dilate(b.astype(np.uint8), k) > 0
    na, nb = int(a.sum()), int(b.sum())
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    precision = float((b & da).sum()) / nb
    recall = float((a & db).sum()) / na
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def structure_check(src: np.ndarray, out: np.ndarray, first: int = 0) -> CheckResult:
    """Edge-map similarity of each output frame to the source frame with the same index.

    Args:
        src, out: (n, h, w, 3) uint8, same analysis size.
        first: the frame index of ``src[0]``.

    Returns:
        ``CheckResult`` "structure": per frame ``edge_similarity``; summary ``structure_edge_min``,
        ``structure_edge_mean``.
    """
    rows = [{"edge_similarity": edge_similarity(edge_map(s), edge_map(o))} for s, o in zip(src, out)]
    table = frame_table(rows, list(range(first, first + len(rows))))
    return CheckResult("structure", table, summarise_structure(table))


def summarise_structure(table) -> dict[str, float]:
    if table.empty:
        return {"structure_edge_min": float("nan"), "structure_edge_mean": float("nan")}
    return {"structure_edge_min": float(table["edge_similarity"].min()),
            "structure_edge_mean": float(table["edge_similarity"].mean())}
