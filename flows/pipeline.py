"""The campaign run's steps as plain functions (no Prefect here): the flow in ``flows.run`` wires them.

``render_variant`` is the unit of work: one planned variant -> its exported formats and its QA measurements in
the render cache (``flows.manifest.render_dir``), keyed by the variant id, so an unchanged variant is never
rendered twice. ``judge`` turns the QA measurements of a run into verdicts (one Great Expectations validation
for the whole run) and writes the run's report.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flows import manifest as mf

log = logging.getLogger(__name__)

QA_FORMATS = ("draft", "prores", "hdr10", "hlg")
"""Formats QA can decode, in order of preference (the first one rendered is checked)."""


@dataclass
class RunContext:
    """Everything a render task needs, picklable (sent to Dask/Ray workers as is).

    Attributes:
        campaign: the campaign name. root: the campaign folder (absolute). source: the source shot (absolute).
        trim: ``{"start", "end"}`` or None. runs_dir: the runs folder (absolute). engine: the engine's name.
        formats: export formats overriding the campaign's (None: each variant's own).
        qa_samples: frames OCR and face identity look at. cache_dir: the prepared-shot cache (None: default).
        model_dir: the engine's weights folder (None: ``$RAY32_MODEL_DIR`` on the worker, else the engine's default).
    """

    campaign: str
    root: str
    source: str
    trim: dict | None
    runs_dir: str
    engine: str
    formats: list[str] | None = None
    qa_samples: int = 9
    cache_dir: str | None = None
    extra: dict = field(default_factory=dict)
    model_dir: str | None = None


def engine_for(ctx: RunContext):
    """This process's engine for the run (``ray32.engines.shared_engine``): one model load per worker, its caches
    kept across variants."""
    from ray32.engines import resolve_model_dir, shared_engine

    folder = resolve_model_dir(ctx.engine, ctx.model_dir)
    return shared_engine(ctx.engine, **({"model_dir": str(folder)} if folder is not None else {}))


def absolute_request(request: dict, root: str | os.PathLike) -> dict:
    """A planned request with the paths it names (artwork, LUT, guides, references) made absolute."""
    root = Path(root)

    def fix(p):
        return p if p is None or Path(p).is_absolute() else str(root / p)

    req = dict(request)
    if req.get("label_swap"):
        req["label_swap"] = {**req["label_swap"], "artwork": fix(req["label_swap"].get("artwork"))}
    if req.get("grade"):
        req["grade"] = {**req["grade"], "lut": fix(req["grade"].get("lut"))}
    req["keyframes"] = [{**k, "guide": fix(k.get("guide"))} for k in req.get("keyframes", [])]
    req["locks"] = [{**k, "reference": fix(k.get("reference"))} for k in req.get("locks", [])]
    return req


def qa_overrides(raw: dict | None, mode: str = "adhere", where: str = "campaign.yaml qa") -> dict:
    """campaign.yaml's ``qa:`` values as ``Facts.overrides`` (``qa.registry.overrides_from_config``).

    Raises:
        QaError: a key that names no QA metric or a value that is not a number (with the valid names).
    """
    from qa.facts import QaError
    from qa.registry import overrides_from_config

    try:
        return overrides_from_config(raw)
    except ValueError as ex:
        raise QaError(f"{where}: {ex}") from ex


def variant_facts(variant: dict, root: str | os.PathLike, engine: str | None = None):
    """The QA facts of a planned variant (``qa.facts.facts_from_request``) with its campaign's ``qa:`` overrides
    and the engine that renders it (``engine``: the run's; else the variant's planned engine): it decides how QA
    judges the variant (``qa.facts.judging``).

    Raises:
        QaError: a ``qa:`` key that names no QA metric (the message lists the valid names).
    """
    from qa.facts import facts_from_request

    overrides = qa_overrides(variant.get("qa_overrides"), variant["request"].get("mode", "adhere"))
    return facts_from_request(variant["request"], variant=variant["slug"], variant_id=variant["variant_id"],
                              market=variant["axes"].get("market"), overrides=overrides, base=Path(root),
                              engine=engine or variant.get("engine"))


# Per-process memo: the prepared shot and the QA source cache are shared by every variant rendered here.
_MEMO: dict = {}
_MEMO_LOCK = threading.Lock()


def _shot(ctx: RunContext):
    from ray32.shot import open_shot

    key = ("shot", ctx.source, repr(ctx.trim))
    with _MEMO_LOCK:
        if key not in _MEMO:
            trim = ctx.trim or {}
            _MEMO[key] = open_shot(ctx.source, start=trim.get("start"), end=trim.get("end"), detect_cuts=False)
        return _MEMO[key]


def prepare(ctx: RunContext, request, progress=None):
    """The engine and the prepared shot for ``request`` (disk cache + a per-process memo).

    Returns:
        (engine, prepared).
    """
    engine = engine_for(ctx)
    shot = _shot(ctx)
    settings = engine.prepare_settings(request, shot)
    if ctx.cache_dir:
        settings["cache_dir"] = ctx.cache_dir
    key = ("prepared", ctx.engine, ctx.source, repr(ctx.trim), repr(sorted(settings.items(), key=str)))
    with _MEMO_LOCK:
        if key not in _MEMO:
            _MEMO[key] = engine.prepare(shot, settings, progress=progress)
        return engine, _MEMO[key]


def check_requests(ctx: RunContext, variants: list[dict]) -> None:
    """Check every planned request against the engine, the export formats and the shot before any render.

    Raises:
        RunError: every variant whose request cannot be rendered, with the reason, together.
    """
    from pydantic import ValidationError

    from ray32.errors import Ray32Error
    from ray32.export import available_formats
    from ray32.request import RenderRequest

    engine = engine_for(ctx)
    shot = _shot(ctx)
    problems: dict[str, list[str]] = {}  # reason -> the variants it stops
    for v in variants:
        try:
            unknown = [f for f in wanted_formats(ctx, v) if f not in available_formats()]
            if unknown:
                raise Ray32Error(f"unknown export format(s) {', '.join(unknown)}; available: "
                                 f"{', '.join(available_formats())}")
            req = RenderRequest.model_validate({**absolute_request(v["request"], ctx.root),
                                                "outputs": wanted_formats(ctx, v)})
            req.check_times(shot.fps, shot.frame_count)
            refused = engine.refusals(req)  # the run's --engine may differ from the one planned
            if refused:
                raise Ray32Error("; ".join(refused))
            if wanted_targets(v):
                from ray32.deliver import check_target
                from ray32.reframe import crop_size

                size = (shot.width, shot.height) if req.reframe is None else crop_size(shot.width, shot.height,
                                                                                       req.reframe.ratio)
                for name in wanted_targets(v):  # frame rate and aspect, before any render
                    check_target(name, *size, shot.fps, reframed=req.reframe.aspect if req.reframe else None)
        except (Ray32Error, ValidationError) as ex:
            problems.setdefault(str(ex), []).append(v["slug"])
    if problems:
        lines = [", ".join(slugs[:3]) + (f" and {len(slugs) - 3} more" if len(slugs) > 3 else "") + f": {why}"
                 for why, slugs in problems.items()]
        raise mf.RunError(f"campaign '{ctx.campaign}': {sum(map(len, problems.values()))} variant(s) cannot be "
                          "rendered; nothing was rendered:\n  - " + "\n  - ".join(lines))


def wanted_formats(ctx: RunContext, variant: dict) -> list[str]:
    return list(ctx.formats or variant.get("outputs") or variant["request"].get("outputs") or ["draft"])


def wanted_targets(variant: dict) -> list[str]:
    """The delivery targets of a planned variant (campaign.yaml ``deliver:``)."""
    return list(variant.get("deliver") or [])


DELIVER_DIR = "deliver"
"""The render cache entry's folder holding one sub-folder per delivery target."""


def cache_key(ctx: RunContext, variant: dict) -> str:
    """The render cache key: the variant id, plus the engine when the run overrides the campaign's engine."""
    vid = variant["variant_id"]
    return vid if ctx.engine == variant.get("engine", ctx.engine) else f"{vid}.{ctx.engine}"


def cached(ctx: RunContext, variant: dict) -> dict | None:
    """The finished render of ``variant`` holding every wanted format, or None."""
    record = mf.cached_record(ctx.runs_dir, ctx.campaign, cache_key(ctx, variant))
    if record is None or not set(wanted_formats(ctx, variant)) <= set(record.get("outputs", {})):
        return None
    if not set(wanted_targets(variant)) <= set(record.get("deliveries") or {}):
        return None
    return record


def render_variant(ctx: RunContext, variant: dict, progress=None) -> dict:
    """Render, export and measure one variant into the render cache; a cached one is returned as is.

    Args:
        ctx: the run's context. variant: a planned variant (``flows.campaign.Plan.variants`` item).
        progress: ``progress(done, total)`` in frames.

    Returns:
        The render record: ``variant_id``, ``slug``, ``outputs`` ({format: file name in the cache entry}),
        ``qa_summary``, ``timings`` ({"render_s", "qa_s"}), ``engine``, ``engine_version``, ``cached``.

    Raises:
        Ray32Error: a request the engine or an exporter refuses. Any engine failure propagates (the flow
        retries it).
    """
    hit = cached(ctx, variant)
    if hit is not None:
        return {**hit, "cached": True}
    from ray32.render import render_to_files
    from ray32.request import RenderRequest

    formats = wanted_formats(ctx, variant)
    request = RenderRequest.model_validate({**absolute_request(variant["request"], ctx.root), "outputs": formats})
    key = cache_key(ctx, variant)
    final = mf.render_dir(ctx.runs_dir, ctx.campaign, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    try:
        t0 = time.perf_counter()
        engine, prepared = prepare(ctx, request)
        shot = prepared.shot
        out = render_to_files(shot, request, engine=engine, prepared=prepared, out_dir=tmp, stem=variant["slug"],
                              progress=(lambda stage, d, t: progress(d, t)) if progress else None,
                              deliver=wanted_targets(variant), deliver_dir=tmp / DELIVER_DIR,
                              deliver_preset=ctx.extra.get("deliver_preset", "veryfast"),
                              check_deliveries=delivery_checker(_source_black_freeze(ctx, shot))
                              if wanted_targets(variant) else None)
        paths, width, height, deliveries = out.paths, out.width, out.height, out.deliveries
        t1 = time.perf_counter()
        qa = measure(ctx, variant, prepared, paths)
        t2 = time.perf_counter()
        record = {"variant_id": variant["variant_id"], "cache_key": key, "slug": variant["slug"],
                  "axes": variant["axes"], "worker": {"host": socket.gethostname(), "pid": os.getpid()},
                  "engine": engine.name, "engine_version": engine.version,
                  "outputs": {fmt: Path(p).name for fmt, p in paths.items()}, "checksums": out.checksums,
                  "deliveries": deliveries, "label_withheld": out.label_withheld,
                  "qa_file": "qa.pkl" if qa is not None else None,
                  "qa_summary": {k: (None if v != v else v) for k, v in (qa.summary if qa else {}).items()},
                  "qa_notes": qa.notes if qa else ["no output QA can decode (draft, prores, hdr10, hlg)"],
                  "timings": {"render_s": round(t1 - t0, 3), "qa_s": round(t2 - t1, 3),
                              "deliver_checks_s": out.timings.get("deliver_checks_s", 0.0)},
                  "frames": shot.frame_count, "fps": str(shot.fps), "width": width, "height": height,
                  "created": mf.now()}
        mf.write_json(tmp / mf.RECORD, record)
        try:
            os.replace(tmp, final)
        except OSError:  # another worker finished the same variant first: keep its result
            if mf.cached_record(ctx.runs_dir, ctx.campaign, key) is None:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**record, "cached": False}


def _source_black_freeze(ctx: RunContext, shot) -> dict:
    from qa.delivery import black_freeze

    key = ("black-freeze", ctx.source, repr(ctx.trim))
    with _MEMO_LOCK:
        if key not in _MEMO:
            start = float(shot.first / shot.fps) if shot.first else None
            _MEMO[key] = black_freeze(ctx.source, start=start, duration=float(shot.frame_count / shot.fps))
        return _MEMO[key]


def delivery_checker(source_black_freeze: dict | None = None):
    """The ``check_deliveries`` callback of ``ray32.render.render_to_files`` and ``ray32.export.export_file``:
    runs the delivery checks (``check_deliveries``) on every delivered file. ``source_black_freeze``: the
    source's own black and frozen stretches (measured from the shot when not given)."""

    def check(records: dict, plans: dict, folder, shot, quads, faces) -> None:
        bf = source_black_freeze
        if bf is None:
            from qa.delivery import black_freeze

            start = float(shot.first / shot.fps) if shot.first else None
            bf = black_freeze(shot.info.path, start=start, duration=float(shot.frame_count / shot.fps))
        check_deliveries(records, plans, Path(folder), shot, quads, faces, bf)

    return check


def check_deliveries(records: dict, plans: dict, folder: Path, shot, quads, faces, source_black_freeze) -> None:
    """Run the delivery checks on each target's file; the result goes into its record as ``qa`` (and the
    loudness measured on the file into ``loudness``). The overlay is ``<folder>/<target>.safe_zone.jpg``."""
    from qa.delivery import check_delivery

    for name, rec in records.items():
        if rec.get("file") is None:
            rec["qa"] = {"verdict": "fail", "reasons": [f"{name}: no video file to check"], "metrics": {}}
            continue
        rec["qa"] = check_delivery(folder / name / rec["file"], plans[name].target, source_fps=shot.fps,
                                   source_frames=shot.frame_count, geometry=rec["geometry"],
                                   loudness=rec.get("loudness"), label_quads=quads, face_boxes=faces,
                                   source_black_freeze=source_black_freeze,
                                   overlay=folder / f"{name}.safe_zone.jpg")
        rec["loudness"] = rec["qa"].pop("loudness")


def _qa_cache(ctx: RunContext) -> dict:
    """This process's QA source cache of the run's shot (shared by every variant QA'd here)."""
    with _MEMO_LOCK:
        return _MEMO.setdefault(("qa-cache", ctx.source, repr(ctx.trim)), {})


def source_side_variants(variants: list[dict], ctx: RunContext | None = None) -> list[dict]:
    """One variant per distinct grade and label artwork among ``variants`` (what QA's source side depends on
    beyond the shot): the ones ``measure_source`` needs, however many variants a campaign has. Given ``ctx``,
    variants that render no format QA decodes (``QA_FORMATS``: e.g. EXR only) are left out."""
    seen, out = set(), []
    for v in variants:
        if ctx is not None and not any(f in QA_FORMATS for f in wanted_formats(ctx, v)):
            continue
        req = v["request"]
        key = (repr(req.get("grade")), repr((req.get("label_swap") or {}).get("artwork")), req.get("mode"))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def measure_source(ctx: RunContext, variants: list[dict]) -> list[dict]:
    """QA's source-side measurements of the run's shot, made once at its preparation
    (``qa.metrics.measure_source``) for the ``variants`` to be QA'd (``source_side_variants``: each grade's graded
    faces, each market's swapped label and its match where the track is lost come with them) and kept in this
    process and next to each variant's prepared shot (grouped by it: a request's label place decides the label
    track and the cache key), so that no variant's QA makes them.

    The pass only saves time: when it fails, for any reason, it is logged and the run goes on (each variant's QA
    makes the measurements itself, and a variant whose facts are bad says so in its own QA). Returns one figures
    dict per prepared shot measured."""
    from qa.metrics import measure_source as measure_qa_source
    from ray32.request import RenderRequest

    groups: dict = {}
    done = []
    try:
        for v in variants:
            request = RenderRequest.model_validate(absolute_request(v["request"], ctx.root))
            _, prepared = prepare(ctx, request)
            groups.setdefault(prepared.key, (prepared, []))[1].append(variant_facts(v, ctx.root, engine=ctx.engine))
        for prepared, facts in groups.values():
            done.append(measure_qa_source(prepared.shot, facts, label_track=prepared.label_track,
                                          samples=ctx.qa_samples, cache=_qa_cache(ctx),
                                          source_cache=prepared.cache_dir, face_boxes=prepared.face_boxes))
    except Exception as ex:  # noqa: BLE001 -- a speed-up only: never the reason a run fails
        log.warning("QA's source-side pass stopped (%s: %s); each variant's QA makes those measurements",
                    type(ex).__name__, ex)
    return done


def measure(ctx: RunContext, variant: dict, prepared, paths: dict):
    """Run the QA checks (``qa.metrics.measure``, the same path as ``ray32 qa``) on the first decodable output
    against the prepared (trimmed) shot; pickles the measurements next to it (``qa.pkl``). Returns the
    ``qa.metrics.VariantQA`` or None when no output can be decoded."""
    from qa.metrics import measure as measure_qa

    fmt = next((f for f in QA_FORMATS if f in paths), None)
    if fmt is None:
        return None
    facts = variant_facts(variant, ctx.root, engine=ctx.engine)
    qa = measure_qa(prepared.shot, paths[fmt], facts, label_track=prepared.label_track, samples=ctx.qa_samples,
                    cache=_qa_cache(ctx), source_cache=prepared.cache_dir, face_boxes=prepared.face_boxes)
    with open(Path(paths[fmt]).parent / "qa.pkl", "wb") as fh:
        pickle.dump(qa, fh)
    return qa


def load_qa(ctx_runs_dir: str | os.PathLike, campaign: str, record: dict):
    """The pickled ``VariantQA`` of a finished render, or None."""
    if not record.get("qa_file"):
        return None
    try:
        key = record.get("cache_key") or record["variant_id"]
        with open(mf.render_dir(ctx_runs_dir, campaign, key) / record["qa_file"], "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as ex:
        log.warning("QA measurements of %s unreadable: %s", record.get("slug"), ex)
        return None


def report_deliveries(manifest: dict, runs_dir: str | os.PathLike) -> dict[str, dict]:
    """The delivery records of a run's variants for the report, each with its safe-zone overlay's bytes."""
    out = {}
    for slug, v in manifest["variants"].items():
        if not v.get("deliveries"):
            continue
        entry = mf.render_dir(runs_dir, manifest["campaign"], v.get("cache_key") or v["variant_id"]) / DELIVER_DIR
        recs = {}
        for target, d in v["deliveries"].items():
            name = (d.get("qa") or {}).get("overlay")
            p = entry / name if name else None
            recs[target] = {**d, "overlay_jpeg": p.read_bytes() if p is not None and p.is_file() else None}
        out[slug] = recs
    return out


def write_run_report(run_dir: str | os.PathLike, runs_dir: str | os.PathLike) -> Path:
    """Write the run's QA report again from the verdicts in the manifest (after approvals changed)."""
    from qa.expectations import Verdict
    from qa.report import write_report

    run_dir = Path(run_dir)
    manifest = mf.load_manifest(run_dir)
    results, found = [], {}
    for slug, v in manifest["variants"].items():
        if v.get("state") != "rendered" or not v.get("qa"):
            continue
        qa = load_qa(runs_dir, manifest["campaign"], {"variant_id": v["variant_id"], "slug": slug,
                                                      "qa_file": v.get("qa_file"), "cache_key": v.get("cache_key")})
        if qa is not None:
            results.append(qa)
            q = v["qa"]
            found[slug] = Verdict(slug, q["verdict"] == "pass", q.get("reasons", []), q.get("failed", {}),
                                  q.get("frames") or [None] * len(q.get("reasons", [])))
    return write_report(results, found, run_dir, title=f"QA: campaign {manifest['campaign']}, run {manifest['run']}",
                        approvals={s: v["approval"] for s, v in manifest["variants"].items() if v.get("approval")},
                        comments={s: v["comments"] for s, v in manifest["variants"].items() if v.get("comments")},
                        deliveries=report_deliveries(manifest, runs_dir))


def _verdict_key(qa) -> str:
    """What a verdict depends on besides the measurements: the thresholds, the mode, grade and overrides."""
    import hashlib
    import json

    from qa.expectations import variant_bounds

    payload = [variant_bounds(qa), qa.facts.mode, qa.facts.overrides, sorted(qa.summary.items())]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def judge(run_dir: str | os.PathLike, runs_dir: str | os.PathLike, *, report: bool = True) -> dict:
    """Verdicts for every rendered variant of a run, written into the manifest, and the run's QA report
    (``qa_report.html`` in the run folder, with approvals shown) when ``report``.

    Variants judged before with the same measurements and thresholds keep their verdict (``verdict.json`` in
    their render cache entry); the others are validated together in one Great Expectations pass.

    Returns:
        ``{"report": path or None, "verdicts": {slug: "pass"|"fail"}}``.
    """
    from qa.expectations import Verdict, verdicts
    from qa.metrics import metrics_table
    from qa.report import write_report

    run_dir = Path(run_dir)
    manifest = mf.load_manifest(run_dir)
    results, found, todo = [], {}, []
    for slug, v in manifest["variants"].items():
        if v.get("state") != "rendered":
            continue
        qa = load_qa(runs_dir, manifest["campaign"], {"variant_id": v["variant_id"], "slug": slug,
                                                      "qa_file": v.get("qa_file"), "cache_key": v.get("cache_key")})
        if qa is None:
            continue
        results.append(qa)
        entry = mf.render_dir(runs_dir, manifest["campaign"], v.get("cache_key") or v["variant_id"])
        try:
            saved = mf.read_json(entry / "verdict.json")
        except (OSError, ValueError):
            saved = None
        if saved and saved.get("key") == _verdict_key(qa):
            q = saved["verdict"]
            found[slug] = Verdict(slug, q["passed"], q["reasons"], q["failed"], q["frames"])
        else:
            todo.append((qa, entry))
    if todo:
        new = verdicts([qa for qa, _ in todo])
        for qa, entry in todo:
            vd = found[qa.variant] = new[qa.variant]
            mf.write_json(entry / "verdict.json", {"key": _verdict_key(qa), "verdict": {
                "passed": vd.passed, "reasons": vd.reasons, "failed": vd.failed, "frames": vd.frames}})
    if results:
        tmp = run_dir / ".metrics.csv.partial"
        metrics_table(results).to_csv(tmp, index=False)
        os.replace(tmp, run_dir / "metrics.csv")

    def record(m):
        for slug, v in m["variants"].items():
            if slug in found:
                vd = found[slug]
                v["qa"] = {"verdict": vd.state, "reasons": vd.reasons, "failed": vd.failed, "frames": vd.frames}
            elif v.get("state") == "rendered":
                v["qa"] = {"verdict": "fail", "reasons": ["not checked: " + "; ".join(v.get("qa_notes") or [])],
                           "failed": {}}
        m["report"] = "qa_report.html"

    manifest = mf.update_manifest(run_dir, record)
    path = None
    if report:
        path = write_report(results, found, run_dir,
                            title=f"QA: campaign {manifest['campaign']}, run {manifest['run']}",
                            approvals={s: v["approval"] for s, v in manifest["variants"].items()
                                       if v.get("approval")},
                            comments={s: v["comments"] for s, v in manifest["variants"].items()
                                      if v.get("comments")},
                            deliveries=report_deliveries(manifest, runs_dir))
    return {"report": str(path) if path else None, "verdicts": {s: vd.state for s, vd in found.items()}}


def new_manifest(plan, ctx: RunContext, run: str) -> dict:
    """The manifest of a new run: the plan and every variant as ``planned``."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("ray32", "prefect", "av", "opencolorio", "numpy", "opencv-contrib-python-headless"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    variants = {}
    for v in plan.variants:
        variants[v["slug"]] = {"variant_id": v["variant_id"], "slug": v["slug"], "axes": v["axes"],
                               "prompt": v["prompt"], "request": v["request"], "qa_overrides": v["qa_overrides"],
                               "outputs_requested": wanted_formats(ctx, v), "deliver": wanted_targets(v),
                               "state": "planned"}
    return {"campaign": plan.campaign, "run": run, "created": mf.now(), "status": "running",
            "campaign_dir": ctx.root, "source": plan.source, "source_hash": plan.source_hash, "trim": plan.trim,
            "engine": ctx.engine, "engine_version": plan.engine_version, "axes": plan.axes,
            "excluded": plan.excluded, "warnings": plan.warnings, "versions": versions, "variants": variants}


def record_render(run_dir: str | os.PathLike, slug: str, record: dict | None, error: str | None = None,
                  attempts: int | None = None) -> None:
    """Write one variant's outcome into the manifest (``rendered`` with its record, or ``failed``)."""

    def change(m):
        v = m["variants"][slug]
        if record is not None:
            v.update(state="rendered", cached=record.get("cached", False), outputs=record["outputs"],
                     qa_file=record.get("qa_file"), qa_summary=record.get("qa_summary"),
                     qa_notes=record.get("qa_notes"), timings=record.get("timings"),
                     deliveries=record.get("deliveries") or {},
                     engine_version=record.get("engine_version"), cache_key=record.get("cache_key"),
                     worker=record.get("worker"),
                     frames=record.get("frames"), fps=record.get("fps"), width=record.get("width"),
                     height=record.get("height"))
            v.pop("error", None)
        else:
            v.update(state="failed", error=error, attempts=attempts)

    mf.update_manifest(run_dir, change)
