"""The campaign run on Prefect: plan -> prepare the shot once -> render + export + QA per variant (fanned out,
retried, cached by variant id) -> verdicts and report -> approval -> packaging.

Tasks are thin: each calls one function of ``flows.pipeline``, ``flows.approval`` or ``flows.package``. The
manifest on disk (``flows.manifest``) is the record of what exists; Prefect's database is not needed to resume.

Example:
    >>> from flows.run import run_campaign
    >>> result = run_campaign("campaigns/demo", runs_dir="runs", deliverables_dir="deliverables")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from flows import manifest as mf
from flows import pipeline

log = logging.getLogger(__name__)

RETRIES = 2
RETRY_DELAYS = [1, 4]
"""Seconds before the first and second retry of a failed render (back-off)."""

_GPU_SLOTS: dict[int, threading.Semaphore] = {}


def _gpu_slot(n: int) -> threading.Semaphore:
    return _GPU_SLOTS.setdefault(n, threading.BoundedSemaphore(n))


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(campaign_dir: str, engine: str | None):
    from flows.campaign import plan_campaign

    return plan_campaign(campaign_dir)


@task(name="prepare-shot", cache_policy=NO_CACHE, retries=1)
def prepare_task(ctx: pipeline.RunContext, variant: dict, qa_variants: list[dict] | None = None) -> str:
    """Prepare the shot for ``variant``'s request and measure QA's source side for ``qa_variants`` (default:
    ``variant``) once, before the variants render."""
    from ray32.request import RenderRequest

    request = RenderRequest.model_validate(pipeline.absolute_request(variant["request"], ctx.root))
    _, prepared = pipeline.prepare(ctx, request)
    pipeline.measure_source(ctx, [variant] if qa_variants is None else qa_variants)  # logs, goes on if it fails
    return prepared.key


def _worth_retrying(task, task_run, state) -> bool:
    """Retry failures of the engine or the machine, not bad input (a ``Ray32Error`` fails the same way again)."""
    from ray32.errors import Ray32Error

    try:
        state.result()
    except Ray32Error:
        return False
    except Exception:
        return True
    return True


@task(name="render", task_run_name="{slug}", cache_policy=NO_CACHE, retries=RETRIES,
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=_worth_retrying, tags=["ray32-render"])
def render_task(slug: str, ctx: pipeline.RunContext, variant: dict, gpus: int = 0) -> dict:
    from ray32.engines import engine_info

    if gpus > 0 and engine_info(ctx.engine).gpu:
        with _gpu_slot(gpus):
            return pipeline.render_variant(ctx, variant)
    return pipeline.render_variant(ctx, variant)


@task(name="qa-report", cache_policy=NO_CACHE)
def report_task(run_dir: str, runs_dir: str, report: bool = True) -> dict:
    return pipeline.judge(run_dir, runs_dir, report=report)


@task(name="package", cache_policy=NO_CACHE)
def package_task(run_dir: str, runs_dir: str, deliverables_dir: str) -> dict:
    from flows.package import package_run

    out = package_run(run_dir, runs_dir, deliverables_dir)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items() if k != "zips"} | \
        {"zips": {m: str(p) for m, p in out["zips"].items()}}


def _artifacts(manifest: dict, report: str) -> None:
    """The run's QA table, a markdown summary and a link to the report as Prefect artifacts."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    rows = [{"variant": s, "state": v.get("state"), "qa": (v.get("qa") or {}).get("verdict"),
             "reasons": "; ".join((v.get("qa") or {}).get("reasons") or []) or (v.get("error") or ""),
             "cached": bool(v.get("cached"))} for s, v in manifest["variants"].items()]
    key = "".join(c if c.isalnum() else "-" for c in f"ray32-{manifest['campaign']}".lower())
    try:
        create_table_artifact(rows, key=f"{key}-qa", description=f"QA of run {manifest['run']}")
        passed = sum(r["qa"] == "pass" for r in rows)
        create_markdown_artifact(
            f"# {manifest['campaign']} / {manifest['run']}\n\n{len(rows)} variants, {passed} passed QA, "
            f"{sum(r['state'] == 'failed' for r in rows)} failed to render.\n\nReport: `{report}`",
            key=f"{key}-summary")
        create_link_artifact(Path(report).resolve().as_uri(), link_text="QA report", key=f"{key}-report")
    except Exception as ex:  # artifacts are a convenience; the report on disk is the record
        log.warning("could not create Prefect artifacts: %s", ex)


def _review(run_dir: Path, timeout: int) -> None:
    """Pause the flow run for a reviewer's decisions in the Prefect UI (needs a Prefect server)."""
    from prefect.flow_runs import pause_flow_run
    from prefect.input import RunInput

    from flows.approval import record_decision

    class ReviewInput(RunInput):
        approve: list[str] = []
        reject: list[str] = []
        override: str = ""
        user: str = ""
        note: str = "reviewed in the Prefect UI"

    answer = pause_flow_run(wait_for_input=ReviewInput, timeout=timeout)
    for names, state in ((answer.approve, "approved"), (answer.reject, "rejected")):
        if names:
            record_decision(run_dir, names, state, note=answer.note, user=answer.user or None,
                            override=answer.override or None)


@flow(name="ray32-campaign", log_prints=False)
def campaign_flow(campaign_dir: str, runs_dir: str = "runs", deliverables_dir: str = "deliverables",
                  run: str | None = None, engine: str | None = None, formats: list[str] | None = None,
                  qa_samples: int = 9, auto_approve: bool = False, review: bool = False, review_timeout: int = 3600,
                  gpus: int = 1, package: bool = True, cache_dir: str | None = None,
                  show_progress: bool | None = None, model_dir: str | None = None,
                  deliver_preset: str | None = None) -> dict:
    """Run a campaign end to end (see the module docstring).

    Args:
        campaign_dir: the campaign folder. runs_dir: where runs and the render cache live.
        deliverables_dir: where packaged deliverables go. run: the run name (default: the UTC time).
        engine: the engine (default: campaign.yaml's). formats: export formats for every variant (default: the
            campaign's). qa_samples: frames OCR and identity look at.
        auto_approve: approve every variant that passed QA (recorded as the reviewer ``$RAY32_USER``).
        review: pause for a reviewer's input in the Prefect UI (needs a Prefect server).
        gpus: renders at once on a GPU engine (a local slot count; on Dask/Ray each render asks for one GPU).
        package: package the approved variants at the end. cache_dir: the prepared-shot cache.
        model_dir: the engine's weights folder (default: campaign.yaml's ``engine.model_dir``, else
            ``$RAY32_MODEL_DIR`` on each worker, else the engine's default place).
        show_progress: a progress bar over variants on stderr (default: when it is a terminal).
        deliver_preset: the x264 speed preset of delivery encodes (default veryfast; the demo uses ultrafast).

    Returns:
        ``{"run_dir", "report", "deliverables", "rendered", "cached", "failed", "passed", "approved",
        "packaged", "timings"}``; with ``"unchanged": True`` when the latest run already holds everything (no
        ``run`` named, or the latest one) and nothing was done (``flows.unchanged``).

    Raises:
        CampaignError: the campaign is broken (before any render). RunError: the campaign is already running.
    """
    from flows.progress import progress_bar

    t_start = time.perf_counter()
    plan = plan_task(campaign_dir, engine)
    if not review:  # a scheduled run of an unchanged campaign: nothing to do, only the check is recorded
        from flows.unchanged import find_unchanged, note_unchanged

        found = find_unchanged(campaign_dir, runs_dir=runs_dir, deliverables_dir=deliverables_dir if package else None,
                               run=run, engine=engine, formats=formats, auto_approve=auto_approve, plan=plan)
        if found is not None:
            note_unchanged(found, time.perf_counter() - t_start)
            return found.result
    runs_dir = str(Path(runs_dir).resolve())
    run = run or mf.new_run_id()
    ctx = pipeline.RunContext(campaign=plan.campaign, root=str(Path(campaign_dir).resolve()),
                              source=str((Path(campaign_dir) / plan.source).resolve()), trim=plan.trim,
                              runs_dir=runs_dir, engine=engine or plan.engine, formats=formats,
                              qa_samples=qa_samples, cache_dir=cache_dir, model_dir=model_dir or plan.model_dir,
                              extra={"deliver_preset": deliver_preset} if deliver_preset else {})
    with mf.campaign_lock(runs_dir, plan.campaign) as lock:
        mf.describe_lock(lock, run)
        removed = mf.clean_partials(runs_dir, plan.campaign)
        if removed:
            log.info("removed %d unfinished render(s) of an interrupted run", removed)
        todo = [v for v in plan.variants if pipeline.cached(ctx, v) is None]
        if todo:
            pipeline.check_requests(ctx, todo)  # bad requests stop the run here, all named, before any render
        run_dir = mf.campaign_dir(runs_dir, plan.campaign) / run
        manifest = pipeline.new_manifest(plan, ctx, run)
        if (run_dir / mf.MANIFEST).is_file():  # resuming a named run: keep what it knows of unchanged variants
            old = mf.load_manifest(run_dir)["variants"]
            manifest["variants"] = {s: old[s] if s in old and old[s]["variant_id"] == v["variant_id"] else v
                                    for s, v in manifest["variants"].items()}
        mf.save_manifest(run_dir, manifest)
        mf.mark_latest(runs_dir, plan.campaign, run)

        done = [v for v in plan.variants if v not in todo]
        for v in done:
            pipeline.record_render(run_dir, v["slug"], {**pipeline.cached(ctx, v), "cached": True})
        t_prep = time.perf_counter()
        if todo:
            prepare_task(ctx, todo[0], pipeline.source_side_variants(todo, ctx))
        t_render = time.perf_counter()
        failed = {}
        rendered = 0
        with progress_bar("variants", total=len(plan.variants), unit="variant", enabled=show_progress) as bar:
            bar(len(done), len(plan.variants))
            futures = {}
            for v in todo:
                futures[render_task.submit(v["slug"], ctx, v, gpus)] = v
            finished = len(done)
            for fut in as_completed(list(futures)):
                v = futures[fut]
                try:
                    record = fut.result()
                except Exception as ex:
                    failed[v["slug"]] = f"{type(ex).__name__}: {ex}"
                    log.error("variant %s failed after %d attempts: %s", v["slug"], RETRIES + 1, ex)
                    pipeline.record_render(run_dir, v["slug"], None, error=failed[v["slug"]], attempts=RETRIES + 1)
                else:
                    rendered += 1
                    pipeline.record_render(run_dir, v["slug"], record)
                finished += 1
                bar(finished, len(plan.variants))
        t_judge = time.perf_counter()
        # The report is written now when someone reviews it before packaging; else once, after packaging.
        report_task(str(run_dir), runs_dir, report=review or not package)
        manifest = mf.load_manifest(run_dir)
        _artifacts(manifest, str(run_dir / "qa_report.html"))
        if auto_approve:
            from flows.approval import record_decision

            passing = [s for s, v in manifest["variants"].items()
                       if (v.get("qa") or {}).get("verdict") == "pass" and not v.get("approval")]
            if passing:
                record_decision(run_dir, passing, "approved", note="auto-approved: QA passed",
                                user=os.environ.get("RAY32_USER") or "ray32 (auto)")
        if review:
            _review(run_dir, review_timeout)
        t_pack = time.perf_counter()
        packaged = package_task(str(run_dir), runs_dir, deliverables_dir) if package else None
        t_end = time.perf_counter()

        def finish(m):
            m["status"] = ("packaged" if packaged and packaged["variants"] else
                           "failed" if failed and len(failed) == len(plan.variants) else "reviewed")
            m["timings"] = {"wall_s": round(t_end - t_start, 3), "plan_s": round(t_prep - t_start, 3),
                            "prepare_s": round(t_render - t_prep, 3), "render_s": round(t_judge - t_render, 3),
                            "judge_s": round(t_pack - t_judge, 3), "package_s": round(t_end - t_pack, 3)}

        if package:
            pipeline.write_run_report(run_dir, runs_dir)  # the report with the approvals
        t_end = time.perf_counter()
        manifest = mf.update_manifest(run_dir, finish)
    variants = manifest["variants"].values()
    return {"run_dir": str(run_dir), "report": str(run_dir / "qa_report.html"),
            "deliverables": packaged["folder"] if packaged else None,
            "variants": len(plan.variants), "rendered": rendered, "cached": len(done), "failed": failed,
            "passed": sum((v.get("qa") or {}).get("verdict") == "pass" for v in variants),
            "approved": sum((v.get("approval") or {}).get("state") == "approved" for v in variants),
            "packaged": packaged["variants"] if packaged else [], "timings": manifest["timings"],
            "deliveries": mf.delivery_summary(variants),
            "task_work_s": sum(sum((v.get("timings") or {}).values()) for v in variants if not v.get("cached"))}


def task_runner(runner: str = "threads", address: str | None = None, workers: int | None = None,
                gpus: int = 1):
    """The Prefect task runner for ``--runner``: ``threads`` (default), ``dask`` or ``ray``.

    ``address`` None starts a local cluster that declares ``gpus`` GPU resources (renders of a GPU engine then
    run one per GPU). A Dask or Ray cluster needs a Prefect server (``PREFECT_API_URL``): its workers report
    task runs to it.
    """
    if runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers or max(1, min(4, os.cpu_count() or 1)))
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 2, "threads_per_worker": 1,
                                              "processes": True, "resources": {"GPU": gpus},
                                              "dashboard_address": None})
    if runner == "ray":
        from prefect_ray import RayTaskRunner

        if address:
            return RayTaskRunner(address=address)
        repo = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
        return RayTaskRunner(init_kwargs={"num_cpus": workers or os.cpu_count() or 1, "num_gpus": gpus,
                                          "include_dashboard": False,
                                          "runtime_env": {"env_vars": {"PYTHONPATH": path}}})
    raise mf.RunError(f"unknown runner {runner!r}; use threads, dask or ray")


def run_campaign(campaign_dir: str | os.PathLike, *, runner: str = "threads", address: str | None = None,
                 workers: int | None = None, gpu_per_render: bool | None = None, **kwargs) -> dict:
    """Validate the campaign (before anything starts), then run ``campaign_flow`` on the chosen task runner.

    On Dask each render asks for one ``GPU`` resource when the engine is a GPU engine; on Ray for
    ``num_gpus=1`` (``gpu_per_render`` forces or disables that; default: GPU engines only). Keyword arguments
    are ``campaign_flow``'s.

    Raises:
        CampaignError: the campaign is broken. RunError: the campaign is already running; unknown runner.
    """
    from flows.campaign import plan_campaign

    plan = plan_campaign(campaign_dir)  # every problem at once, before Prefect starts
    engine = kwargs.get("engine") or plan.engine
    from ray32.engines import check_weights, engine_info

    # Its weights: a missing or incomplete model folder is named here, with where it looked.
    model_dir = kwargs.get("model_dir") or (plan.model_dir if engine == plan.engine else None)
    check_weights(engine, model_dir)
    root = Path(campaign_dir).resolve()
    # An unknown engine fails here (pipeline.engine_for lists the available ones), as do requests it refuses.
    pipeline.check_requests(pipeline.RunContext(
        campaign=plan.campaign, root=str(root), source=str(root / plan.source), trim=plan.trim, runs_dir="",
        engine=engine, formats=kwargs.get("formats"), model_dir=model_dir), plan.variants)
    # Refuse a second run early, with the same message the flow would give.
    with mf.campaign_lock(Path(kwargs.get("runs_dir", "runs")).resolve(), plan.campaign):
        pass
    from flows.server import wait_for_temporary_server

    wait_for_temporary_server()  # started early by the command line, when it was
    f = campaign_flow.with_options(task_runner=task_runner(runner, address, workers, kwargs.get("gpus", 1)))
    gpu = engine_info(engine).gpu if gpu_per_render is None else gpu_per_render
    if runner == "dask" and gpu:
        import dask

        with dask.annotate(resources={"GPU": 1}):
            return f(str(campaign_dir), **kwargs)
    if runner == "ray" and gpu:
        from prefect_ray.context import remote_options

        with remote_options(num_gpus=1):
            return f(str(campaign_dir), **kwargs)
    return f(str(campaign_dir), **kwargs)
