"""Safe zones: the tracked label and the faces against the target's interface zones, on every frame.

The label's quad and the face boxes come from the shot's tracks, mapped through the delivery's crop and scale
into the delivered frame; on each frame the share of each one's visible box that lies under each zone is
measured. Frames where the label is not tracked are not judged.
"""

from __future__ import annotations

import numpy as np

from qa.checks.base import Check, CheckResult, Metric, frame_table
from qa.checks.delivery import same

COVER_MAX = 0.02
"""Share of a label's or face's visible box that may lie under a zone (a hair over the edge is not a miss)."""
VISIBLE_MIN = 0.25
"""A box with less than this share inside the frame is out of the picture, not under the interface."""


def _covers(box: np.ndarray, zones_px: list, width: int, height: int) -> tuple[float, str | None]:
    """(largest share of the box's visible part under one zone, that zone's name); (nan, None) when not visible."""
    x0, y0, x1, y1 = box
    area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    vx0, vy0, vx1, vy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    visible = max(0.0, vx1 - vx0) * max(0.0, vy1 - vy0)
    if area <= 0 or visible < VISIBLE_MIN * area:
        return float("nan"), None
    best, name = 0.0, None
    for zname, (zx0, zy0, zx1, zy1) in zones_px:
        ov = max(0.0, min(vx1, zx1) - max(vx0, zx0)) * max(0.0, min(vy1, zy1) - max(vy0, zy0))
        if ov / visible > best:
            best, name = ov / visible, zname
    return best, name


def finish(frames, clip) -> CheckResult:
    facts = clip.facts
    t = facts.target
    w, h = int(facts.probe["width"]), int(facts.probe["height"])
    zones = [(z.name, z.pixels(w, h)) for z in t.zones]
    n = int(facts.source_frames)
    rows, index = [], []
    for i in range(n):
        row = {"label_cover": np.nan, "label_zone": None, "face_cover": np.nan, "face_zone": None}
        if facts.label_quads is not None and i < len(facts.label_quads):
            q = np.asarray(facts.label_quads[i], float)
            if np.isfinite(q).all():
                row["label_cover"], row["label_zone"] = _covers(
                    np.r_[q.min(axis=0), q.max(axis=0)], zones, w, h)
        if facts.face_boxes is not None and i < len(facts.face_boxes):
            b = np.asarray(facts.face_boxes[i], float)
            if np.isfinite(b).all():
                row["face_cover"], row["face_zone"] = _covers(b, zones, w, h)
        rows.append(row)
        index.append(i)
    table = frame_table(rows, index)
    summary = {}
    for what in ("label", "face"):
        col = table[f"{what}_cover"].astype(float)
        judged = col.dropna()
        summary[f"{what}_zone_frames"] = int((judged > COVER_MAX).sum())
        summary[f"{what}_judged_frames"] = int(len(judged))
        summary[f"{what}_cover_max"] = float(judged.max()) if len(judged) else float("nan")
        summary[f"{what}_worst_frame"] = int(judged.idxmax()) if len(judged) and judged.max() > 0 else -1
    return CheckResult("safe zone", table, summary)


def worst_frame(result: CheckResult) -> int | None:
    """The frame the report shows: the label's worst, else the faces', else None."""
    for what in ("label", "face"):
        if result.summary.get(f"{what}_worst_frame", -1) >= 0:
            return int(result.summary[f"{what}_worst_frame"])
    return None


def _explain(what: str, noun: str, target):
    def explain(f):
        from ray32.timecode import format_timecode

        s = f.qa.summary
        i = f.frame
        zone = f.qa.frames.loc[i, f"{what}_zone"] if i is not None else "?"
        return (f"{noun} sits under the '{zone}' zone on {int(f.value)} of {s[f'{what}_judged_frames']} "
                f"frames; worst at {format_timecode(i, f.qa.fps)} (frame {i}): "
                f"{100 * s[f'{what}_cover_max']:.0f} % of it covered"), i
    return explain


def metrics(t) -> tuple[Metric, ...]:
    if not t.zones:
        return ()
    return (
        Metric("label_zone_frames", "max", same(0), worst="label_cover", key=True,
               explain=_explain("label", "the label", t)),
        Metric("face_zone_frames", "max", same(0), worst="face_cover", key=True,
               explain=_explain("face", "a face", t)),
    )


CHECK = Check(name="safe zone", needs=frozenset({"clip"}), finish=finish, metrics=(),
              about="the tracked label quad and the face boxes against the platform's interface zones (where its "
                    "app draws captions, buttons and bars) on every frame of the delivery; the worst frame is shown "
                    "with the zones drawn over it")
