"""Structure fidelity: do the output's edges (layout, blocking, composition) sit where the intended reference's
do? Edges are compared outside the regions whose change is intended (a new label brings new edges), against
the source through the variant's grade (a grade moves weak edges), with hysteresis (``edge_similarity``). The
bound widens with the source's own edge instability between consecutive frames (``source_edge_noise``, its
90th percentile: noise and compression make edges flicker)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray


def edge_map(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(strong, weak) Canny edges (bool) of a lightly blurred grey frame, thresholds from the frame's median; the
    weak map uses half the thresholds."""
    import cv2

    g = cv2.GaussianBlur(gray(frame), (0, 0), 1.2)
    med = float(np.median(g))
    lo, hi = max(10, 0.5 * med), max(30, 1.2 * med)
    return cv2.Canny(g, int(lo), int(hi)) > 0, cv2.Canny(g, int(lo / 2), int(hi / 2)) > 0


def edge_similarity(a, b, tolerance: int = 2, keep: np.ndarray | None = None) -> float:
    """F1 score of two edge maps (``edge_map``: strong, weak), 1 = same layout. A strong edge of one counts as
    matched where the other has at least a weak edge within ``tolerance`` pixels (hysteresis: an edge that
    noise or a codec pushes just under the threshold is not a change of layout); only edges inside ``keep``
    count."""
    import cv2

    (a, wa), (b, wb) = a, b
    if keep is not None:
        a, b = a & keep, b & keep
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    da = cv2.dilate(wa.astype(np.uint8), k) > 0
    db = cv2.dilate(wb.astype(np.uint8), k) > 0
    na, nb = int(a.sum()), int(b.sum())
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    precision = float((b & da).sum()) / nb
    recall = float((a & db).sum()) / na
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def measure(batch: Batch) -> pd.DataFrame:
    cache = batch.clip.cache
    rows = []
    prev_edges = None
    if batch.prev is not None:
        prev_edges = cache.get(("src_edges", int(batch.first) - 1, batch.src.shape[1:3]))
        if prev_edges is None:
            prev_edges = edge_map(batch.prev[0])
    for k, i in enumerate(batch.index):
        key = ("src_edges", int(i), batch.src.shape[1:3])
        es = cache.get(key)
        if es is None:
            es = cache[key] = edge_map(batch.src[k])
        er = es if batch.ref_is_src else edge_map(batch.ref[k])
        keep = batch.keep[k]
        noise = np.nan if prev_edges is None else 1.0 - edge_similarity(prev_edges, es, keep=keep)
        rows.append({"edge_similarity": edge_similarity(er, edge_map(batch.out[k]), keep=keep),
                     "src_edge_change": noise})
        prev_edges = es
    return frame_table(rows, [int(i) for i in batch.index])


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    if table.empty:
        return CheckResult("structure", table, {"structure_edge_min": float("nan"),
                                                "structure_edge_mean": float("nan"),
                                                "source_edge_noise": float("nan")})
    return CheckResult("structure", table, {"structure_edge_min": float(table["edge_similarity"].min()),
                                            "structure_edge_mean": float(table["edge_similarity"].mean()),
                                            "source_edge_noise": float(table["src_edge_change"].quantile(0.9))})


CHECK = Check(
    name="structure", needs=frozenset({"frames"}), finish=finish, measure=measure,
    about="edge layout of the output against the intended reference, outside the label",
    metrics=(
        Metric("structure_edge_min", "min", per_mode(0.8, 0.7, 0.4), worst="edge_similarity", key=True,
               floor="source_edge_noise", floor_scale=1.0,
               explain="layout departs from the source{at} (edge similarity {value:.2f}, {limit})"),
    ))
