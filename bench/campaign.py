"""Campaign run costs: first run vs unchanged rerun vs a one-row edit, and Prefect's orchestration overhead.

Runs a copy of the demo campaign (17 variants, 960x540, 72 frames, composite engine) in one process against a
``prefect server start`` started here, with the same settings as ``ray32 demo`` (QA on 3 sampled frames, 2
workers). Side by side in the same process it renders the same variants with a plain thread pool calling the same
library functions (no Prefect): the difference is the orchestration overhead. ``--demo`` also times
``ray32 demo`` itself (temporary Prefect server, fresh caches) in a subprocess, as ``make demo`` runs it, and then
a second time unchanged. The unchanged rerun is also measured as a user runs it: ``ray32 campaign run`` in a new
process (it finds nothing changed and starts no Prefect server).

Run: ``python bench/campaign.py [--demo]`` from the repository root; writes ``bench/results/campaign.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench.machine import write_result  # noqa: E402


PROFILE = {
    "how": "py-spy 0.4.3 (record --subprocesses --idle -f raw) of 'ray32 demo' on a fresh folder and again unchanged, "
           "before this change (main at 50adf26), load average about 1.5, 2026-11-30",
    "before": {
        "first_demo_s": 120.0, "first_demo_note": "under py-spy; flow 98.4 s: render phase 91.8 s (17 variants, 2 "
                                                   "workers: render+export 67.8 s and QA 87.1 s of thread time), "
                                                   "prepare 3.4 s, judge 0.2 s, package 2.8 s; outside the flow about "
                                                   "22 s: the demo shot 8.7 s, Prefect's temporary server 10-15 s, "
                                                   "imports",
        "second_demo_s": 13.5, "second_demo_note": "campaign 4.2 s of flow; of the process's samples: Prefect server "
                                                    "start and flow engine 39%, imports 8%, the QA report again 6.5%, "
                                                    "packaging (copies, sha256 of the copies, poster decode) 2.5%",
    },
    "after": {
        "rerun": "no Prefect, no Great Expectations, no engine or QA imports: plan (sheet checks cached) + reading "
                 "the latest run's manifest, render records and package manifest; 'ray32 demo' again 1.0 s at load "
                 "1.5 (most of it the demo shot's probe with cut detection and Python's imports)",
        "first_run": "Prefect's temporary server boots in the background while the demo shot is made; the demo "
                     "shot blends the product only where it is (same pixels); packaging links instead of copying, "
                     "posters and checksums come with the render",
        "left": "QA (issue 11) is the largest share of a first run, then the OCIO grade, then Prefect's server start",
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campaign", type=Path, default=REPO / "campaigns" / "demo")
    ap.add_argument("--qa-samples", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--demo", action="store_true", help="also time 'ray32 demo' in a subprocess")
    args = ap.parse_args()
    os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="WARNING")
    work = Path(tempfile.mkdtemp(prefix="ray32-bench-campaign-"))
    load0 = [round(x, 2) for x in os.getloadavg()]
    try:
        result = run(args, work)
        if args.demo:
            result["demo"] = time_demo(work)
        result["profile"] = PROFILE
        result["load_before"] = load0
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        path = write_result("campaign", result)
        print(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> dict:
    from flow_util import start_server, stop_server

    home = work / "prefect"
    home.mkdir()
    proc, url = start_server(home)
    os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(home))
    try:
        from flows import pipeline
        from flows.campaign import plan_campaign
        from flows.run import run_campaign

        camp = work / "campaign"
        shutil.copytree(args.campaign, camp)
        cache = str(work / "cache")
        common = dict(runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), qa_samples=args.qa_samples,
                      workers=args.workers, auto_approve=True, cache_dir=cache)
        plan = plan_campaign(camp)
        n = len(plan.variants)
        # Prepare the shot once outside the timings so that the flow and the plain loop start equal.
        ctx = pipeline.RunContext(campaign=plan.campaign, root=str(camp), source=str(camp / plan.source),
                                  trim=plan.trim, runs_dir=str(work / "plain"), engine=plan.engine,
                                  qa_samples=args.qa_samples, cache_dir=cache)
        from ray32.request import RenderRequest

        pipeline.prepare(ctx, RenderRequest.model_validate(pipeline.absolute_request(plan.variants[0]["request"],
                                                                                     camp)))

        def forget_qa_cache():  # the source's QA measurements are cached per process: start both runs cold
            for k in [k for k in pipeline._MEMO if k[0] == "qa-cache"]:
                del pipeline._MEMO[k]

        # The same variants with a plain thread pool: library calls only.
        forget_qa_cache()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            records = list(pool.map(lambda v: pipeline.render_variant(ctx, v), plan.variants))
        plain_render = time.perf_counter() - t0
        work_s = sum(sum(r["timings"].values()) for r in records)

        forget_qa_cache()
        t0 = time.perf_counter()
        first = run_campaign(camp, run="first", **common)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rerun = run_campaign(camp, run="rerun", **common)
        rerun_s = time.perf_counter() - t0
        rules = camp / "matrix" / "demo.xlsx"
        edit_row(rules)
        t0 = time.perf_counter()
        edit = run_campaign(camp, run="edit", **common)
        edit_s = time.perf_counter() - t0
        flow_render = first["timings"]["render_s"]
        # The unchanged rerun as a user runs it: a new process, the command line (no Prefect server is started).
        cli = rerun_cli(camp, work)
        return {
            "campaign": plan.campaign, "variants": n, "size": "960x540", "frames": 72,
            "engine": plan.engine, "qa_samples": args.qa_samples, "workers": args.workers,
            "first_run_s": round(first_s, 2), "first_rendered": first["rendered"],
            "first_flow_timings": first["timings"],
            "unchanged_rerun_s": round(rerun_s, 2), "rerun_rendered": rerun["rendered"],
            "rerun_over_first": round(rerun_s / first_s, 4),
            "one_row_edit_s": round(edit_s, 2), "edit_rendered": edit["rendered"],
            "edit_what": "rules sheet: the fr/*/golden override row's seed 7 -> 8 (2 variants change)",
            "plain_thread_pool_render_s": round(plain_render, 2),
            "flow_render_phase_s": round(flow_render, 2),
            "task_work_s": round(work_s, 2),
            "orchestration_overhead_s": round(first_s - plain_render, 2),
            "orchestration_overhead_share": round((first_s - plain_render) / first_s, 4),
            "render_phase_overhead_per_variant_s": round((flow_render - plain_render) / n, 3),
            "passed": first["passed"], "packaged": len(first["packaged"]),
            "first_package_s": first["timings"]["package_s"], "rerun_package_s": rerun["timings"]["package_s"],
            "unchanged_rerun_new_process": cli,
            "note": "overhead = first flow run (plan, Prefect task runs, manifest, report, packaging) minus the same "
                    "renders+QA in a plain thread pool, measured one after the other in one process; the machine "
                    "is shared, so both numbers carry its noise",
        }
    finally:
        stop_server(proc)
        os.environ.pop("PREFECT_API_URL", None)


def edit_row(xlsx: Path) -> None:
    """Change one cell of one row of the rules sheet (the seed of the fr golden override)."""
    from openpyxl import load_workbook

    wb = load_workbook(xlsx)
    ws = wb["rules"]
    head = [c.value for c in ws[1]]
    col = head.index("seed") + 1
    for row in ws.iter_rows(min_row=2):
        if row[head.index("action")].value == "override":
            ws.cell(row=row[0].row, column=col, value=8)
            break
    wb.save(xlsx)


def rerun_cli(camp: Path, work: Path) -> dict:
    """``ray32 campaign run`` of the unchanged campaign in a new process, with no Prefect server to talk to."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(work / "prefect-cli"))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "flows.cli", "campaign", "run", str(camp), "--runs-dir",
                          str(work / "runs"), "--deliverables", str(work / "deliv"), "--auto-approve"], env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "exit": out.returncode, "output_tail": out.stdout.strip().splitlines()[-6:],
            "prefect_home_created": (work / "prefect-cli").exists()}


def time_demo(work: Path) -> dict:
    """``ray32 demo`` in a fresh folder with fresh caches and a temporary Prefect server, as ``make demo``; then
    again, unchanged, as a second ``make demo`` (a new process)."""
    cwd = work / "demo"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(cwd / "prefect"), RAY32_CACHE_DIR=str(cwd / "cache"), PYTHONPATH=str(REPO))
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "flows.cli", "demo"], cwd=cwd, env=env, capture_output=True,
                             text=True)
        wall = time.perf_counter() - t0
        runs.append({"wall_s": round(wall, 2), "exit": out.returncode,
                     "output_tail": out.stdout.strip().splitlines()[-6:]})
    return {"first": runs[0], "second_unchanged": runs[1], "wall_s": runs[0]["wall_s"],
            "second_wall_s": runs[1]["wall_s"]}


if __name__ == "__main__":
    main()
