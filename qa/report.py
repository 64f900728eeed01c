"""The QA report: one self-contained HTML file per run (jinja2, autoescaped).

Summary counts; a card per variant with source vs output at first / middle / last and keyframe frames
(JPEG, base64 inline), plots over time (OCR match, identity distance, flicker; inline SVG made with
matplotlib's Agg/SVG backend), the failing frames with their timecodes, the verdict with its reasons and
the approval state, and per delivery target (``qa.delivery``) its verdict, the loudness figures before and
after normalisation and the safe-zone overlay of its worst frame (the platform's interface zones drawn over the
delivered frame). Every user string (variant names, label text, reasons) is escaped by the template engine.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
from pathlib import Path

import numpy as np

from ray32.timecode import format_seconds, format_timecode

TEMPLATE = "report.html.j2"


def key_metrics() -> list[str]:
    """The metrics the report's table shows: those declared ``key`` by their checks, in ``qa.registry`` order."""
    from qa.registry import CHECKS

    return [m.name for c in CHECKS for m in c.metrics if m.key]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _plot_svg(qa, bounds: dict) -> str | None:
    """Three stacked plots over time (OCR match, identity distance, flicker) as an inline <svg> string."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fr, fps = qa.frames, float(qa.fps)
    panels = []
    if "label_similarity" in fr and fr["label_similarity"].notna().any():
        lo = bounds.get("label_similarity_min", (None, None))[0]
        panels.append(("label similarity", fr["label_similarity"].astype(float).dropna(), lo, "-"))
    if "identity_distance" in fr and fr["identity_distance"].notna().any():
        hi = bounds.get("identity_distance_max", (None, None))[1]
        panels.append(("identity distance", fr["identity_distance"].astype(float).dropna(), hi, "o-"))
    if "flicker" in fr and fr["flicker"].notna().any():
        hi = bounds.get("flicker_max", (None, None))[1]
        panels.append(("flicker (grey levels)", fr["flicker"].astype(float).dropna(), hi, "-"))
    elif "luma_flicker" in fr and fr["luma_flicker"].notna().any():  # a generative variant's (grade-invariant)
        hi = bounds.get("luma_flicker_max", (None, None))[1]
        panels.append(("flicker (% off trend)", fr["luma_flicker"].astype(float).dropna(), hi, "-"))
    if not panels:
        return None
    fig = Figure(figsize=(6.4, 1.45 * len(panels)), dpi=80)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    t_end = max(1, qa.frame_count - 1) / fps
    for ax, (title, series, limit, style) in zip(axes, panels):
        ax.plot(series.index.to_numpy() / fps, series.to_numpy(), style, color="#1f5fa8", markersize=3, lw=1.2)
        if limit is not None:
            ax.axhline(limit, color="#c0392b", lw=1, ls="--")
        ax.set_ylabel(title, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, t_end)
        if title == "label similarity":
            ax.set_ylim(min(0.5, float(series.min()) - 0.02), 1.01)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)", fontsize=8)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: inline SVG in HTML


def _pair(qa, i: int) -> dict:
    """The report images of frame ``i``: source, output and (when something is intended) the reference."""
    t = qa.thumbs.get(i)
    if t is None:
        return {"src": None, "out": None, "ref": None}
    return {"src": _b64(t[0]), "out": _b64(t[1]), "ref": _b64(t[2]) if len(t) > 2 else None}


def _deliveries(records: dict | None) -> list[dict]:
    """The report's rows for a variant's delivery targets: verdict, reasons, loudness, the overlay image."""
    rows = []
    for name, d in sorted((records or {}).items()):
        qa = d.get("qa") or {}
        loud = d.get("loudness") or {}
        before, after = loud.get("before") or {}, loud.get("after") or {}
        spec = d.get("spec") or {}
        target_loud = spec.get("loudness") or {}
        overlay = d.get("overlay_jpeg")
        def one(x):
            return None if x is None else f"{float(x):.1f}"

        rows.append({"target": name, "title": spec.get("title", name), "spec": spec.get("spec", ""),
                     "source": spec.get("source", ""), "verdict": qa.get("verdict") or "not checked",
                     "reasons": qa.get("reasons") or [], "notes": d.get("notes") or [], "file": d.get("file"),
                     "lufs_before": one(before.get("integrated")), "lufs_after": one(after.get("integrated")),
                     "tp_before": one(before.get("true_peak")), "tp_after": one(after.get("true_peak")),
                     "gain": loud.get("gain_db"), "loudness_note": loud.get("note", ""),
                     "lufs_target": target_loud.get("integrated_lufs"), "tp_ceiling": target_loud.get("true_peak_dbtp"),
                     "worst_frame": qa.get("worst_frame"), "overlay": _b64(overlay) if overlay else None})
    return rows


def _card(qa, verdict, approval: dict | None, comments: list | None = None,
          deliveries: dict | None = None) -> dict:
    from qa.expectations import limit_text, not_judged, variant_bounds
    from qa.registry import METRICS

    fps = qa.fps
    bounds = variant_bounds(qa)
    n = qa.frame_count
    wanted = [("first", 0), ("middle", (n - 1) // 2), ("last", n - 1)] + [("keyframe", k) for k in qa.keyframes]
    pairs = []
    for what, i in wanted:
        if i in qa.thumbs:
            pairs.append({"what": what, "frame": i, "tc": format_timecode(i, fps), "time": format_seconds(i / fps),
                          **_pair(qa, i)})
    failing = []
    for reason, i in zip(verdict.reasons, verdict.frames):
        item = {"reason": reason, "frame": i, "tc": None, "time": None, "src": None, "out": None, "ref": None}
        if i is not None:
            item.update(tc=format_timecode(i, fps), time=format_seconds(i / fps))
            item.update(_pair(qa, _nearest(qa, i)))
        failing.append(item)
    reads = []
    fr = qa.frames
    for i, (out, ref) in sorted(getattr(qa, "label_reads", {}).items()):
        ok = fr.at[i, "text_match"] if "text_match" in fr and i in fr.index else None
        reads.append({"frame": i, "tc": format_timecode(i, fps), "time": format_seconds(i / fps),
                      "out": _b64(out), "ref": _b64(ref), "ocr_text": fr.at[i, "ocr_text"],
                      "ref_text": fr.at[i, "ref_text"] if "ref_text" in fr else "",
                      "verdict": "not judged (OCR missed a line)" if ok is None or ok != ok
                      else "reads like the artwork" if bool(ok) else "reads differently"})
    metrics = []
    for m in key_metrics():
        if m not in bounds or m not in qa.summary:  # not one of this variant's measures (a pixel-reference
            continue                                  # metric of a generative one; MaxCLL of an SDR output)
        v = qa.summary.get(m)
        lo, hi = bounds.get(m, (None, None))
        judged = not (v is None or (isinstance(v, float) and np.isnan(v)))
        metrics.append({"name": m, "value": (f"{v:.3g}" if isinstance(v, float) else str(v)) if judged
                        else "not judged", "bound": limit_text(lo, hi) if (lo is not None or hi is not None) else "",
                        "unit": METRICS[m][1].unit, "failed": m in verdict.failed, "judged": judged})
    approval = approval or {}
    against = getattr(qa, "judged_against", {}) or {}
    return {"variant": qa.variant, "variant_id": qa.facts.variant_id, "market": qa.facts.market,
            "mode": qa.facts.mode, "label": qa.facts.label.text if qa.facts.label else None,
            "verdict": verdict.state, "reasons": verdict.reasons, "failing": failing, "pairs": pairs, "label_reads": reads,
            "plot": _plot_svg(qa, bounds), "metrics": metrics, "notes": qa.notes,
            "reference": against.get("reference", "the source"),
            "against": [{"check": k, "about": v} for k, v in against.items() if k != "reference" and v],
            "not_judged_frames": int(qa.summary.get("label_not_judged_frames") or 0),
            "not_judged": not_judged(qa),
            "deliveries": _deliveries(deliveries),
            "approval": approval.get("state", "awaiting review"), "approved_by": approval.get("by"),
            "approved_at": approval.get("at"), "approval_note": approval.get("note"), "comments": comments or []}


def _nearest(qa, i: int) -> int:
    """The frame with thumbnails nearest to ``i`` (the worst frame itself when it was kept)."""
    if i in qa.thumbs or not qa.thumbs:
        return i
    return min(qa.thumbs, key=lambda k: abs(k - i))


def render_report(results: list, verdicts: dict, *, title: str = "QA report",
                  approvals: dict[str, dict] | None = None, comments: dict[str, list] | None = None,
                  deliveries: dict[str, dict] | None = None) -> str:
    """The report's HTML text.

    Args:
        results: ``qa.metrics.VariantQA`` of the run.
        verdicts: variant -> ``qa.expectations.Verdict``.
        title: the page title (escaped like every user string).
        approvals: variant -> {"state": "approved"|"rejected"|..., "by", "at", "note"} when recorded.
        comments: variant -> reviewers' comments ``[{"frame", "timecode", "text", "by", "at"}]`` (``ray32 review``).
        deliveries: variant -> {target: delivery record (``qa.delivery.check_delivery`` under ``qa``, the
            loudness figures, ``overlay_jpeg``: the safe-zone overlay's bytes)}.

    Returns:
        A complete HTML document with everything inline (no external files, scripts or fonts).
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    cards = [_card(r, verdicts[r.variant], (approvals or {}).get(r.variant), (comments or {}).get(r.variant),
                   (deliveries or {}).get(r.variant))
             for r in results]
    counts = {"variants": len(cards), "pass": sum(c["verdict"] == "pass" for c in cards),
              "fail": sum(c["verdict"] == "fail" for c in cards),
              "approved": sum(c["approval"] == "approved" for c in cards)}
    return env.get_template(TEMPLATE).render(
        title=title, counts=counts, cards=cards,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_report(results: list, verdicts: dict, out_dir: str | os.PathLike, *, title: str = "QA report",
                 approvals: dict[str, dict] | None = None, name: str = "qa_report.html",
                 comments: dict[str, list] | None = None, deliveries: dict[str, dict] | None = None) -> Path:
    """Write the report into ``out_dir`` atomically (temp name, then rename) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = out_dir / f".{name}.partial"
    tmp.write_text(render_report(results, verdicts, title=title, approvals=approvals, comments=comments,
                                 deliveries=deliveries),
                   encoding="utf-8")
    os.replace(tmp, path)
    return path
