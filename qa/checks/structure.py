"""Structure fidelity: do the output's edges (layout, blocking, composition) sit where the intended reference's
do? Edges are compared outside the regions whose change is intended (a new label brings new edges), against
the source through the variant's grade (a grade moves weak edges), with hysteresis (``edge_similarity``). The
bound widens with the source's own edge instability between consecutive frames (``source_edge_noise``, its
90th percentile: noise and compression make edges flicker).

A generative engine's variant (``qa.facts.judging``) re-renders every pixel, so its edges cannot be compared with a
pixel reference: a tone curve moves weak edges, a hue rotation changes which colours contrast, and re-synthesised
texture moves fine edges by a pixel. It is judged on the *orientation* of structure instead
(``orientation_similarity``): the colour structure tensor of the frame (Lab, each channel normalised by the frame's
own spread, so a tone curve, a hue rotation or a saturation change do not turn it), smoothed so that noise and
re-synthesised fine texture average out, its strength weighted by coherence (the incoherent texture of noise on a
dark flat wall is weak, an edge is strong). The doubled-angle orientation of the output's strong structure is
compared with the source's (cos 2Δθ: an edge whose contrast flips under a hue rotation still matches), both ways (a
lost edge and a new one both count). The frame's figure is the worst of a grid of tiles, so an object moved or
warped in one part of the frame is not averaged away by the rest. The bound widens with the source's own
orientation change between consecutive frames (``source_orientation_noise``, its median).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Metric, frame_table, per_mode
from qa.checks.geometry import gray
from qa.facts import grade_invariant, pixel_reference

ORIENT_BLUR = 2.0
"""Gaussian sigma (px at the analysis size) over which the structure tensor is integrated (grade-invariant layout)."""
ORIENT_STRONG = 0.05
"""A pixel's orientation counts where its coherence strength is above this share of the picture's 99th percentile
(inside the judged region): edges and texture, not the noise of a flat wall."""
TILES = (4, 4)
"""Grid (columns, rows) of tiles the orientation similarity is taken over; the frame's figure is the worst tile."""
TILE_MIN = 0.02
"""Share of a tile's pixels that must be strong gradients (in both pictures) for the tile to be judged."""


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


def orientation_field(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit doubled-angle orientation (h, w, 2), strength (h, w)) of a frame's colour structure tensor; the strength
    is the eigenvalue gap times the coherence, so the incoherent texture of noise on a dark, flat area is weak.

    The tensor sums the gradients' outer products of the Lab channels, each normalised by the frame's own spread
    (L by its standard deviation, a and b by their joint RMS chroma): a tone curve scales L's gradients by a positive
    factor, a hue rotation turns (a, b) and a saturation change scales them, and none of these turns the tensor. It
    is smoothed over ``ORIENT_BLUR`` (noise and re-synthesised fine texture average out, edges stay)."""
    import cv2

    lab = cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab[..., 0] /= max(float(lab[..., 0].std()), 1.0)
    lab[..., 1:] /= max(float(np.sqrt((lab[..., 1:] ** 2).mean())), 4.0)
    lab = cv2.GaussianBlur(lab, (0, 0), 1.0)
    gx, gy = cv2.Sobel(lab, cv2.CV_32F, 1, 0), cv2.Sobel(lab, cv2.CV_32F, 0, 1)
    w = np.float32([1.0, 0.5, 0.5])
    jxx, jyy, jxy = ((gx * gx) @ w, (gy * gy) @ w, (gx * gy) @ w)
    jxx, jyy, jxy = (cv2.GaussianBlur(j, (0, 0), ORIENT_BLUR) for j in (jxx, jyy, jxy))
    v = np.stack([jxx - jyy, 2 * jxy], axis=-1)
    m = np.linalg.norm(v, axis=-1)  # λ1 - λ2
    strength = m * m / np.maximum(jxx + jyy, 1e-6)  # (λ1 - λ2) x coherence: noise is strong but incoherent
    return v / np.maximum(m, 1e-6)[..., None], strength


def orientation_similarity(a, b, keep: np.ndarray | None = None, tiles: tuple[int, int] = TILES) -> float:
    """Grade-invariant layout similarity of two ``orientation_field``s: per tile, the strength-weighted mean of
    cos 2Δθ over each picture's strong structure (both ways, the lower counts: a lost edge and a new edge both
    lower it); the worst judged tile is the frame's figure (1 = same layout, 0 = unrelated)."""
    (ua, ma), (ub, mb) = a, b
    keep = np.ones(ma.shape, bool) if keep is None else keep
    if not keep.any():
        return float("nan")
    sa = keep & (ma > ORIENT_STRONG * np.quantile(ma[keep], 0.99))
    sb = keep & (mb > ORIENT_STRONG * np.quantile(mb[keep], 0.99))
    dot = (ua * ub).sum(axis=-1)
    h, w = ma.shape
    worst = np.nan
    for ty in range(tiles[1]):
        for tx in range(tiles[0]):
            ys = slice(ty * h // tiles[1], (ty + 1) * h // tiles[1])
            xs = slice(tx * w // tiles[0], (tx + 1) * w // tiles[0])
            n = sa[ys, xs].size
            scores = []
            for s, m in ((sa, ma), (sb, mb)):
                t = s[ys, xs]
                if t.sum() < TILE_MIN * n:
                    continue
                wt = m[ys, xs][t]
                scores.append(float((dot[ys, xs][t] * wt).sum() / wt.sum()))
            if len(scores) == 2:
                worst = min(scores) if np.isnan(worst) else min(worst, *scores)
            elif len(scores) == 1 and sa[ys, xs].sum() + sb[ys, xs].sum() >= 4 * TILE_MIN * n:
                worst = scores[0] if np.isnan(worst) else min(worst, scores[0])  # edges on one side only
    return float(worst)


def _source_series(batch: Batch, name: str, feature):
    """(k, the source frame's ``feature``, the previous source frame's or None) for every frame of the batch; the
    source's features are cached per shot under ``(name, frame, size)``, so every variant reuses them."""
    cache = batch.clip.cache
    size = batch.src.shape[1:3]
    prev = None
    if batch.prev is not None:
        prev = cache.get((name, int(batch.first) - 1, size))
        if prev is None:
            prev = feature(batch.prev[0])
    for k, i in enumerate(batch.index):
        key = (name, int(i), size)
        cur = cache.get(key)
        if cur is None:
            cur = cache[key] = feature(batch.src[k])
        yield k, cur, prev
        prev = cur


def _measure_invariant(batch: Batch) -> pd.DataFrame:
    rows = []
    for k, fs, prev in _source_series(batch, "src_orient", orientation_field):
        keep = batch.keep[k]
        noise = np.nan if prev is None else 1.0 - orientation_similarity(prev, fs, keep)
        rows.append({"orientation_similarity": orientation_similarity(fs, orientation_field(batch.out[k]), keep),
                     "src_orientation_change": noise})
    return frame_table(rows, [int(i) for i in batch.index])


def measure(batch: Batch) -> pd.DataFrame:
    if batch.clip.grade_invariant:
        return _measure_invariant(batch)
    rows = []
    for k, es, prev_edges in _source_series(batch, "src_edges", edge_map):
        er = es if batch.ref_is_src else edge_map(batch.gray("ref")[k])
        keep = batch.keep[k]
        noise = np.nan if prev_edges is None else 1.0 - edge_similarity(prev_edges, es, keep=keep)
        rows.append({"edge_similarity": edge_similarity(er, edge_map(batch.gray("out")[k]), keep=keep),
                     "src_edge_change": noise})
    return frame_table(rows, [int(i) for i in batch.index])


NAMES = ("structure_edge_min", "structure_edge_mean", "source_edge_noise", "structure_orientation_min",
         "structure_orientation_mean", "source_orientation_noise")


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    out = dict.fromkeys(NAMES, float("nan"))
    if "edge_similarity" in table:
        out.update(structure_edge_min=float(table["edge_similarity"].min()),
                   structure_edge_mean=float(table["edge_similarity"].mean()),
                   source_edge_noise=float(table["src_edge_change"].quantile(0.9)))
    if "orientation_similarity" in table:
        out.update(structure_orientation_min=float(table["orientation_similarity"].min()),
                   structure_orientation_mean=float(table["orientation_similarity"].mean()),
                   source_orientation_noise=float(table["src_orientation_change"].median()))
    return CheckResult("structure", table, out)


CHECK = Check(
    name="structure", needs=frozenset({"frames"}), finish=finish, measure=measure, source_side=True,
    about="edge layout of the output against the intended reference, outside the label",
    about_invariant="orientation of the output's colour structure (normalised per frame) against the source's, "
                    "tile by tile, outside the label (grade-invariant)",
    metrics=(
        Metric("structure_edge_min", "min", per_mode(0.8, 0.7, 0.4), worst="edge_similarity", key=True,
               floor="source_edge_noise", floor_scale=1.0, when=pixel_reference,
               explain="layout departs from the source{at} (edge similarity {value:.2f}, {limit})"),
        Metric("structure_orientation_min", "min", per_mode(0.75, 0.6, 0.35), worst="orientation_similarity",
               key=True, floor="source_orientation_noise", floor_scale=1.0, when=grade_invariant,
               explain="layout departs from the source{at}: edges in part of the picture run in other directions "
                       "(orientation similarity {value:.2f}, {limit}; a grade alone does not change it)"),
    ))
