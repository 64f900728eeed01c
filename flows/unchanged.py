"""The no-work rerun: a campaign where nothing changed is recognised without starting Prefect.

A scheduled (or repeated) ``ray32 campaign run`` of a campaign whose plan gives the same variant ids as its latest
run, every one of them rendered in the render cache, judged, and packaged for the same approvals, has nothing to
do. ``find_unchanged`` answers that from files alone: the plan (sheet checks cached), the latest run's manifest,
the render records and the package's manifest. It imports neither Prefect nor Great Expectations nor any engine
library, so the answer costs well under a second; ``note_unchanged`` then records the check in the run's
manifest, the only file written.

Any doubt (a variant missing or changed, a render record or output gone, a package that does not list exactly
the approved variants, a run in progress, a different engine or formats, a QA-passed variant that auto-approval
would approve) means the full run, which renders only what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from flows import manifest as mf

log = logging.getLogger(__name__)

KEEP_CHECKS = 20
"""How many unchanged checks a run's manifest remembers (``unchanged_checks``, newest last)."""


@dataclass
class Unchanged:
    """An up-to-date run: where it is, what it holds (``result`` has ``run_campaign``'s keys)."""

    run_dir: Path
    result: dict


def _why_not(plan, m: dict, run_dir: Path, runs_dir: Path, deliverables: Path | None, engine: str,
             formats: list[str] | None, auto_approve: bool) -> str | None:
    """None when the run ``m`` is everything ``plan`` asks for; else the first reason it is not."""
    from flows import pipeline
    from flows.approval import approvable

    if m.get("engine") != engine:
        return f"engine {m.get('engine')!r} -> {engine!r}"
    if deliverables is None:
        if m.get("status") not in ("reviewed", "packaged"):
            return f"run status {m.get('status')!r}"
    elif m.get("status") != "packaged" and any(approvable(v) for v in m["variants"].values()):
        return f"run status {m.get('status')!r}"
    planned = {v["slug"]: v for v in plan.variants}
    if set(planned) != set(m["variants"]):
        return "the variants differ"
    ctx = pipeline.RunContext(campaign=plan.campaign, root=str(Path(plan.root).resolve()), source="", trim=None,
                              runs_dir=str(runs_dir), engine=engine, formats=formats)
    for slug, v in planned.items():
        had = m["variants"][slug]
        if had.get("variant_id") != v["variant_id"] or had.get("state") != "rendered":
            return f"{slug} changed or is not rendered"
        if not (had.get("qa") or {}).get("verdict"):
            return f"{slug} is not judged"
        if had.get("outputs_requested") != pipeline.wanted_formats(ctx, v):
            return f"{slug}: other formats"
        if pipeline.cached(ctx, v) is None:
            return f"{slug}: render cache entry missing"
        if auto_approve and had["qa"]["verdict"] == "pass" and not had.get("approval"):
            return f"{slug} would be auto-approved"
    if not (run_dir / "qa_report.html").is_file():
        return "no QA report"
    if deliverables is None:
        return None
    dest = deliverables / plan.campaign / m["run"]
    if Path((m.get("package") or {}).get("folder") or "").resolve() != dest.resolve():
        return "packaged elsewhere"
    try:
        summary = mf.read_json(dest / mf.MANIFEST)
    except (OSError, ValueError):
        return "no package manifest"
    chosen = {s: v for s, v in m["variants"].items() if approvable(v)}
    if set(summary.get("variants", {})) != set(chosen):
        return "the package holds other variants"
    for slug, entry in summary["variants"].items():
        if entry.get("variant_id") != chosen[slug]["variant_id"] or entry.get("approval") != chosen[slug].get(
                "approval") or not (dest / entry["folder"] / mf.MANIFEST).is_file():
            return f"{slug}: package out of date"
    for z in (summary.get("zips") or {}).values():
        if not (dest / z["file"]).is_file():
            return f"zip {z['file']} missing"
    return None


def find_unchanged(campaign_dir: str | os.PathLike, *, runs_dir: str | os.PathLike = "runs",
                   deliverables_dir: str | os.PathLike | None = "deliverables", run: str | None = None,
                   engine: str | None = None, formats: list[str] | None = None, auto_approve: bool = False,
                   plan=None) -> Unchanged | None:
    """The latest run of the campaign when it already holds everything a new run would make, else None.

    Args:
        campaign_dir: the campaign folder. runs_dir: the runs folder. deliverables_dir: where the package must be
            (None: the run is not to be packaged). run: a run name asked for (only the latest run qualifies).
        engine, formats, auto_approve: as ``flows.run.campaign_flow``. plan: an already computed plan.

    Raises:
        CampaignError: the campaign is broken (the same error the full run gives).
    """
    t0 = time.perf_counter()
    if plan is None:
        from flows.campaign import plan_campaign

        plan = plan_campaign(campaign_dir)
    runs_dir = Path(runs_dir).resolve()
    camp = mf.campaign_dir(runs_dir, plan.campaign)
    latest = mf._latest(camp)
    if latest is None or (run is not None and run != latest.name):
        return None
    try:
        m = mf.load_manifest(latest)
    except mf.RunError:
        return None
    deliverables = Path(deliverables_dir).resolve() if deliverables_dir is not None else None
    why = _why_not(plan, m, latest, runs_dir, deliverables, engine or plan.engine, formats, auto_approve)
    if why is not None:
        log.info("campaign '%s' needs a run: %s", plan.campaign, why)
        return None
    variants = m["variants"].values()
    package = m.get("package") if deliverables is not None else None
    result = {"run_dir": str(latest), "report": str(latest / "qa_report.html"),
              "deliverables": package["folder"] if package and package.get("variants") else None,
              "variants": len(plan.variants), "rendered": 0, "cached": len(plan.variants), "failed": {},
              "passed": sum((v.get("qa") or {}).get("verdict") == "pass" for v in variants),
              "approved": sum((v.get("approval") or {}).get("state") == "approved" for v in variants),
              "packaged": list(package.get("variants", [])) if package else [],
              "deliveries": mf.delivery_summary(variants),
              "timings": {"wall_s": round(time.perf_counter() - t0, 3)}, "task_work_s": 0.0, "unchanged": True}
    return Unchanged(latest, result)


def note_unchanged(found: Unchanged, wall_s: float) -> None:
    """Record in the run's manifest that a rerun found nothing to do (the only file a no-work rerun writes)."""

    def change(m):
        checks = m.setdefault("unchanged_checks", [])
        checks.append({"at": mf.now(), "wall_s": round(wall_s, 3), "pid": os.getpid()})
        del checks[:-KEEP_CHECKS]

    mf.update_manifest(found.run_dir, change)
    found.result["timings"]["wall_s"] = round(wall_s, 3)
