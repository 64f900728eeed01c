"""Beyond one process, against a real ``prefect server start``: render tasks on a Dask LocalCluster and on a
local Ray (one GPU resource per render), and the campaign served on its cron schedule."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from flow_util import PY, prefect_env, tiny_campaign

from flows import manifest as mf
from flows.run import run_campaign


def _run_on(runner: str, tmp_path: Path) -> dict:
    camp = tiny_campaign(tmp_path / "camp", frames=12)
    result = run_campaign(camp, runner=runner, workers=2, gpu_per_render=True, gpus=1,
                          runs_dir=str(tmp_path / "runs"), deliverables_dir=str(tmp_path / "deliv"), run="c1",
                          auto_approve=True, cache_dir=str(tmp_path / "cache"))
    assert result["rendered"] == 2 and not result["failed"], result
    m = mf.load_manifest(result["run_dir"])
    workers = {v["worker"]["pid"] for v in m["variants"].values()}
    assert os.getpid() not in workers  # the renders ran in the cluster's worker processes
    assert sorted(result["packaged"]) == ["de-aqua500-golden", "de-aqua500-overcast"]
    return result


def _task_runs(api: str, name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    async def go():
        async with get_client() as client:
            return await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])))

    return asyncio.run(go())


def test_dask_local_cluster(prefect_api, tmp_path):
    _run_on("dask", tmp_path)
    runs = _task_runs(prefect_api, "de-aqua500-overcast")  # task runs are named by slug on the server
    assert runs and runs[-1].state.is_completed()


def test_ray_local_cluster(prefect_api, tmp_path):
    pytest.importorskip("prefect_ray", reason="prefect-ray is in pyproject.toml; install the project")
    try:
        _run_on("ray", tmp_path)
    finally:
        import ray

        ray.shutdown()


def test_serve_registers_the_cron_deployment(prefect_api, tmp_path):
    camp = tiny_campaign(tmp_path / "camp")
    env = prefect_env(Path(os.environ["PREFECT_HOME"]), prefect_api)
    proc = subprocess.Popen([PY, "-m", "flows.cli", "campaign", "serve", str(camp)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    from prefect.client.orchestration import get_client

    async def deployment():
        async with get_client() as client:
            try:
                return await client.read_deployment_by_name("ray32-campaign/ray32-demo")
            except Exception:
                return None

    try:
        found = None
        deadline = time.monotonic() + 120
        while found is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(1)
            found = asyncio.run(deployment())
        assert found is not None, "the deployment was not registered"
        sched = found.schedules[0].schedule
        assert sched.cron == "0 6 * * 1" and sched.timezone == "Europe/Berlin"
        assert found.parameters["campaign_dir"] == str(camp.resolve())
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_serve_without_schedule_is_refused(tmp_path, capsys):
    camp = tiny_campaign(tmp_path / "camp")
    text = (camp / "campaign.yaml").read_text()
    (camp / "campaign.yaml").write_text(text[:text.index("schedule:")])
    from flows.cli import main

    assert main(["campaign", "serve", str(camp)]) == 2
    assert "campaign 'demo' has no schedule; add schedule:" in capsys.readouterr().err
