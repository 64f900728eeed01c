"""Label drawn where the product is not: on the frames where the source's own label track is lost (the product
has turned away or is hidden), the output must not show the market artwork at the place the label was last seen.

Which frames: the same decision the label lock makes (``ray32.label_lock.label_visibility`` over the source's
track: weak runs longer than a bridge, or running to the end, are *withheld*), so a render that withholds the label
there passes and one that keeps pasting it at held or interpolated corners (the label floating beside a turned
cup) fails. The frames where the track is good are the label check's (``qa.checks.label``).

How: on each withheld frame, the output and the source are rectified at the held quad grown by
``qa.checks.label.SEARCH_MARGIN`` and the market artwork (grey, at the quad's size) is searched in both by
normalised cross-correlation (``cv2.TM_CCOEFF_NORMED``, blurred; gain, offset, a grade and a shift within the
margin do not matter). A frame shows the label where the product is not when the artwork's match in the output is
at least ``DRAWN_MATCH`` and at least ``DRAWN_EXCESS`` above its match in the source there (what the source shows
at that place: a wall, the cup's side, a hand). Only the facts, the source and the output are used, so it judges
any engine's output (the composite swap, or a label lock after a generative engine).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from qa.checks.base import Batch, Check, CheckResult, Clip, Failure, Metric, frame_table, per_mode
from qa.checks.geometry import gray, rectify
from qa.facts import has_label

DRAWN_MATCH = 0.3
"""The artwork's correlation with the output at the held place from which it counts as drawn (what the label's
text and marks give even when it is pasted dim and low in contrast over a dark product) ..."""
DRAWN_EXCESS = 0.15
"""... when it is also this much above the artwork's correlation with the source at the same place (unrelated
texture reaches 0.1-0.3 by chance within the search margin; an output that shows the source there matches
equally, up to the codec's noise)."""


def visibility(track: dict[int, np.ndarray] | None, count: int, fps):
    """The label lock's intent for a source track given as frame -> quad (NaN where the fit is weak):
    ``ray32.label_lock.label_visibility`` of its good frames, or None without a track or a good frame."""
    if track is None or count <= 0:
        return None
    valid = np.array([track.get(i) is not None and bool(np.all(np.isfinite(track[i]))) for i in range(count)])
    if not valid.any():
        return None
    from ray32.label_lock import label_visibility

    return label_visibility(valid, Fraction(fps))


def _plan(clip: Clip, state: dict):
    """(visibility, frame -> held quad) computed once per variant."""
    if "plan" not in state:
        from qa.metrics import fill_track

        vis = clip.label_visibility
        if vis is None:
            vis = visibility(clip.label_track, clip.source_count, clip.fps)
        held = fill_track(clip.label_track, clip.source_count) if vis is not None and vis.withheld else None
        art = None
        if held is not None and clip.artwork is not None:
            art = gray(clip.artwork)
            import hashlib

            state["art_key"] = hashlib.sha1(np.ascontiguousarray(art).tobytes()).hexdigest()[:16]
        state["plan"] = (vis, held, art)
    return state["plan"]


def artwork_match(frame: np.ndarray, quad: np.ndarray, art_gray: np.ndarray) -> float:
    """The best normalised cross-correlation of the artwork (grey) within ``frame`` rectified at ``quad`` grown by
    the label check's search margin (shifts up to that margin are allowed)."""
    import cv2

    from qa.checks.label import SEARCH_MARGIN, _blur, expand, rectified_size

    size = rectified_size(quad, min_width=96, max_width=160)
    big = (int(round(size[0] * (1 + 2 * SEARCH_MARGIN))), int(round(size[1] * (1 + 2 * SEARCH_MARGIN))))
    area = gray(rectify(frame, expand(quad, SEARCH_MARGIN), big))
    template = cv2.resize(art_gray, size, interpolation=cv2.INTER_AREA)
    if float(template.std()) < 1.0:
        return float("nan")
    res = cv2.matchTemplate(_blur(area), _blur(template), cv2.TM_CCOEFF_NORMED)
    return float(np.nanmax(res))


def measure(batch: Batch) -> pd.DataFrame:
    clip = batch.clip
    if clip.facts.label is None or clip.label_track is None:
        return frame_table([], [])
    vis, held, art = _plan(clip, batch.state)
    if vis is None or held is None:
        return frame_table([], [])
    rows, index = [], []
    for k, i in enumerate(batch.index):
        i = int(i)
        if i >= len(vis.alpha) or vis.alpha[i] > 0:
            continue
        row = {"label_withheld": True}
        quad = held.get(i)
        if art is not None and quad is not None and np.all(np.isfinite(quad)):
            key = ("lost_source_match", batch.state["art_key"], i)  # the source's side: once per shot and artwork
            src_m = clip.cache.get(key)
            if src_m is None:
                src_m = clip.cache[key] = artwork_match(batch.src_full[k], quad, art)
            if clip.source_only:  # the shot's source-side pass: the source's match only
                continue
            out_m = artwork_match(batch.out_full[k], quad, art)
            row.update({"lost_artwork_match": out_m, "lost_source_match": src_m,
                        "lost_label_excess": out_m - src_m,
                        "label_drawn_lost": bool(out_m >= DRAWN_MATCH and out_m - src_m >= DRAWN_EXCESS)})
        rows.append(row)
        index.append(i)
    return frame_table(rows, index)


def _ranges(idx) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for i in sorted(int(j) for j in idx):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return [(a, b) for a, b in out]


def _times(ranges, fps) -> str:
    from ray32.timecode import format_seconds

    fps = Fraction(fps)
    return ", ".join(f"{format_seconds(a / fps)}–{format_seconds((b + 1) / fps)} (frames {a}–{b})"
                     if b > a else f"{format_seconds(a / fps)} (frame {a})" for a, b in ranges[:6]) \
        + (" ..." if len(ranges) > 6 else "")


def finish(table: pd.DataFrame, clip: Clip) -> CheckResult:
    nan = float("nan")
    summary = {"label_drawn_where_lost_frames": nan, "label_withheld_frames": 0}
    if clip.facts.label is None:
        return CheckResult("label_lost", table, summary)
    vis, held, art = clip.state.get("label_lost", {}).get("plan", (None, None, None))
    if vis is None or not vis.withheld:
        if clip.label_track is not None:
            summary["label_drawn_where_lost_frames"] = 0  # the track holds on every frame: nothing to withhold
        return CheckResult("label_lost", table, summary)
    summary["label_withheld_frames"] = int(vis.withheld_count)
    where = _times(list(vis.withheld), clip.fps)
    if art is None or table.empty or "label_drawn_lost" not in table:
        clip.notes.append(f"label should be withheld at {where} (the source's label track is lost there); not "
                          "checked: no market artwork to look for")
        return CheckResult("label_lost", table, summary)
    drawn = table["label_drawn_lost"].fillna(False).astype(bool)
    summary["label_drawn_where_lost_frames"] = int(drawn.sum())
    clip.notes.append(f"label withheld at {where}: the source's label track is lost there (the product turned "
                      "away or is hidden), so the label is not judged there; checked instead that the artwork is "
                      "not drawn there")
    return CheckResult("label_lost", table, summary)


def _explain(f: Failure):
    fr = f.qa.frames
    col = fr["label_drawn_lost"] if "label_drawn_lost" in fr else pd.Series(dtype=object)
    bad = col[col.fillna(False).astype(bool)].index
    if len(bad) == 0:
        return f"the label is drawn on {int(f.value)} frame(s) where the product is not ({f.limit})", f.frame
    ranges = _ranges(bad)
    return (f"the label is drawn at {_times(ranges, f.qa.fps)} where the product has turned away or is hidden "
            f"(the source's label track is lost there); the source shows no label there ({len(bad)} frame(s), "
            f"{f.limit})", int(bad[0]))


CHECK = Check(
    name="label_lost", needs=frozenset({"frames"}), finish=finish, measure=measure, region="label", applies=has_label,
    source_side=True, source_per_variant=True,
    about="on the frames where the source's label track is lost, the output at the label's last place against "
          "the market artwork and against what the source shows there: the label must be withheld, not floating",
    metrics=(
        Metric("label_drawn_where_lost_frames", "max", per_mode(0), worst="lost_label_excess", key=True,
               explain=_explain),
    ))
