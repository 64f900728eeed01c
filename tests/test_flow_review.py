"""A reviewer answers a paused run in Prefect (what the UI's "resume with input" sends), against a real
``prefect server start``: the decisions are recorded with who and why, and only the approved variant is packaged."""

from __future__ import annotations

import asyncio
import threading
import time

from flow_util import tiny_campaign

from flows import manifest as mf
from flows.run import run_campaign


def _paused_run_id(deadline: float):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateName

    async def find():
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Paused"]))))
            return runs[0].id if runs else None

    while time.time() < deadline:
        run_id = asyncio.run(find())
        if run_id is not None:
            return run_id
        time.sleep(1)
    raise AssertionError("the flow run never paused for review")


def test_review_pauses_for_input_and_records_the_decisions(prefect_api, tmp_path):
    from prefect.flow_runs import aresume_flow_run

    camp = tiny_campaign(tmp_path / "camp", frames=12)
    result: dict = {}
    errors: list = []

    def go():
        try:
            result.update(run_campaign(camp, review=True, review_timeout=300, runs_dir=str(tmp_path / "runs"),
                                       deliverables_dir=str(tmp_path / "deliv"), run="r1",
                                       cache_dir=str(tmp_path / "cache")))
        except Exception as ex:  # surfaced below
            errors.append(ex)

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    run_id = _paused_run_id(time.time() + 240)
    asyncio.run(aresume_flow_run(run_id, run_input={
        "approve": ["de-aqua500-golden"], "reject": ["de-aqua500-overcast"],
        "user": "rita@example.com", "note": "checked the label in the UI"}))
    worker.join(timeout=240)
    assert not worker.is_alive() and not errors, errors

    m = mf.load_manifest(result["run_dir"])
    golden = m["variants"]["de-aqua500-golden"]["approval"]
    overcast = m["variants"]["de-aqua500-overcast"]["approval"]
    assert (golden["state"], golden["by"], golden["note"]) == ("approved", "rita@example.com",
                                                               "checked the label in the UI")
    assert overcast["state"] == "rejected" and golden["at"]
    assert result["packaged"] == ["de-aqua500-golden"]
