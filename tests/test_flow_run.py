"""The campaign flow in this process, against a real Prefect server: run, resume, one-row edit, packaging,
approval, a render that keeps failing, a broken campaign."""

from __future__ import annotations

import hashlib
import json
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from flow_util import keep_rows, tiny_campaign

from flows import manifest as mf
from flows.approval import ApprovalError, record_decision
from flows.campaign import CampaignError
from flows.package import package_run
from flows.run import run_campaign
from ray32.engines import register_engine
from ray32.engines.composite import CompositeEngine
from ray32.shot import probe


class FlakyEngine(CompositeEngine):
    """The composite engine, except that any variant lit 'overcast' raises mid-render, every time."""

    name = "flaky"
    attempts: list[str] = []

    def render(self, prepared, request, progress=None, cancel=None):
        for k, chunk in enumerate(super().render(prepared, request, progress, cancel)):
            if "overcast" in request.prompt.lower() and k == 1:
                FlakyEngine.attempts.append(request.prompt)
                raise RuntimeError("simulated GPU fault")
            yield chunk


register_engine("flaky", f"{__name__}:FlakyEngine")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("flow")


@pytest.fixture(scope="module")
def first(prefect_api, work):
    camp = tiny_campaign(work / "camp")
    result = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), run="r1",
                          auto_approve=True, cache_dir=str(work / "cache"), workers=2)
    return camp, result


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_run_renders_checks_reports_and_packages(first, work):
    camp, result = first
    assert result["rendered"] == 2 and result["cached"] == 0 and not result["failed"]
    run_dir = Path(result["run_dir"])
    m = mf.load_manifest(run_dir)
    assert m["status"] == "packaged" and set(m["variants"]) == {"de-aqua500-golden", "de-aqua500-overcast"}
    for slug, v in m["variants"].items():
        assert v["state"] == "rendered" and v["qa"]["verdict"] == "pass", v.get("qa")
        assert v["approval"]["state"] == "approved" and v["approval"]["by"] and v["approval"]["at"]
        assert v["qa_summary"]["label_text_match_rate"] >= 0.8
    report = (run_dir / "qa_report.html").read_text(encoding="utf-8")
    assert "de-aqua500-golden" in report and "approved" in report
    # Deliverables: formats, poster, manifest with checksums, timeline, zip per market.
    dest = Path(result["deliverables"])
    assert dest == work / "deliv" / "demo" / "r1"
    folder = dest / "de" / "de-aqua500-golden"
    video = folder / "de-aqua500-golden_draft.mp4"
    info = probe(video)
    assert (info.width, info.height, info.frame_count, info.fps) == (960, 540, 24, Fraction(24))
    poster = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(folder / "poster.jpg"))
    assert poster.shape == (540, 960, 3) and poster.std() > 10
    vm = json.loads((folder / "manifest.json").read_text())
    assert vm["axes"] == {"market": "de", "product": "aqua500", "lighting": "golden"}
    assert vm["qa"]["verdict"] == "pass" and vm["qa"]["metrics"]["label_text_match_rate"] >= 0.8
    assert vm["request"]["label_swap"]["text"] == "AQUA FRISCH\n500 ml" and vm["versions"]["prefect"] == "3.8.8"
    assert vm["files"] == {name: sha(folder / name) for name in ("de-aqua500-golden_draft.mp4", "poster.jpg")}
    import opentimelineio as otio

    tl = otio.adapters.read_from_file(str(dest / "timeline.otio"))
    assert [t.name for t in tl.tracks] == ["de"]
    clips = list(tl.tracks[0])
    assert [c.name for c in clips] == ["de-aqua500-golden", "de-aqua500-overcast"]
    meta = clips[0].metadata["ray32"]
    assert meta["axes"]["lighting"] == "golden" and meta["qa_verdict"] == "pass"
    assert clips[0].source_range.duration.value == 24
    assert (dest / clips[0].media_reference.target_url).is_file()
    with zipfile.ZipFile(dest / "de.zip") as zf:
        assert "de/de-aqua500-golden/de-aqua500-golden_draft.mp4" in zf.namelist()
        assert zf.read("de/de-aqua500-golden/poster.jpg") == (folder / "poster.jpg").read_bytes()
    # Nothing half-written is left anywhere.
    assert not [p for p in work.rglob("*") if p.name.startswith(".") and "partial" in p.name]


def test_unchanged_rerun_renders_nothing_and_packaging_is_idempotent(first, work):
    camp, result = first
    renders = work / "runs" / "demo" / "renders"
    before = {p: p.stat().st_mtime_ns for p in renders.rglob("*") if p.is_file()}
    again = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), run="r2",
                         auto_approve=True, cache_dir=str(work / "cache"))
    assert again["rendered"] == 0 and again["cached"] == 2 and len(again["packaged"]) == 2
    assert {p: p.stat().st_mtime_ns for p in renders.rglob("*") if p.is_file()} == before
    dest = Path(result["deliverables"])
    files = {p: (p.stat().st_mtime_ns, sha(p)) for p in dest.rglob("*") if p.is_file()}
    out = package_run(result["run_dir"], work / "runs", work / "deliv")
    assert out["changed"] == []
    assert {p: (p.stat().st_mtime_ns, sha(p)) for p in dest.rglob("*") if p.is_file()} == files


def test_one_row_edit_rerenders_only_that_variant(first, work):
    camp, _ = first
    # Give the overcast row of the lighting sheet a LUT: only the overcast variant changes.
    lighting = camp / "matrix" / "csv" / "lighting.csv"
    lighting.write_text(lighting.read_text().replace("overcast,Soft overcast,", "overcast,Soft overcast,"
                                                     "luts/golden.cube"), encoding="utf-8")
    edited = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), run="r3",
                          auto_approve=True, cache_dir=str(work / "cache"))
    assert edited["rendered"] == 1 and edited["cached"] == 1
    m = mf.load_manifest(edited["run_dir"])
    assert m["variants"]["de-aqua500-overcast"]["cached"] is False
    assert m["variants"]["de-aqua500-golden"]["cached"] is True


def test_failing_render_is_retried_then_failed_and_approval_rules(prefect_api, work):
    camp = tiny_campaign(work / "flaky")
    text = (camp / "campaign.yaml").read_text().replace("label_corner_px: 2.0", "label_corner_px: 0.0001")
    (camp / "campaign.yaml").write_text(text)
    FlakyEngine.attempts.clear()
    result = run_campaign(camp, runs_dir=str(work / "runs_f"), deliverables_dir=str(work / "deliv_f"), run="f1",
                          engine="flaky", auto_approve=True, cache_dir=str(work / "cache"))
    assert len(FlakyEngine.attempts) == 3  # the first try and two retries
    assert list(result["failed"]) == ["de-aqua500-overcast"]
    assert "simulated GPU fault" in result["failed"]["de-aqua500-overcast"]
    run_dir = Path(result["run_dir"])
    m = mf.load_manifest(run_dir)
    assert m["variants"]["de-aqua500-overcast"]["state"] == "failed"
    golden = m["variants"]["de-aqua500-golden"]
    assert golden["state"] == "rendered" and golden["qa"]["verdict"] == "fail"
    assert any("label_drift_max_px" in r or "drift" in r for r in golden["qa"]["reasons"]), golden["qa"]
    assert "approval" not in golden and result["packaged"] == []  # QA failed: not auto-approved
    # Approval: a reason is required; QA-failed needs an override; a failed render cannot be approved.
    with pytest.raises(ApprovalError, match="needs a reason"):
        record_decision(run_dir, ["de-aqua500-golden"], "approved", note=" ")
    with pytest.raises(ApprovalError, match=r"de-aqua500-golden failed QA \(.*\); approve it with --override"):
        record_decision(run_dir, ["de-aqua500-golden"], "approved", note="looks fine")
    with pytest.raises(ApprovalError, match="de-aqua500-overcast was not rendered .*simulated GPU fault"):
        record_decision(run_dir, ["de-aqua500-overcast"], "approved", note="x", override="y")
    with pytest.raises(ApprovalError, match="has no variant 'fr-nothing'"):
        record_decision(run_dir, ["fr-nothing"], "rejected", note="x")
    from flows.cli import main

    assert main(["campaign", "approve", str(run_dir), "de-aqua500-golden", "--note", "drift is invisible",
                 "--override", "0.5 px drift accepted by the client", "--user", "ana",
                 "--deliverables", str(work / "deliv_f")]) == 0
    vm = json.loads((work / "deliv_f" / "demo" / "f1" / "de" / "de-aqua500-golden" / "manifest.json").read_text())
    assert vm["approval"]["by"] == "ana" and vm["approval"]["override"] == "0.5 px drift accepted by the client"
    assert vm["qa"]["verdict"] == "fail"
    # Rejecting it takes it out of the deliverables again.
    assert main(["campaign", "reject", "demo/f1", "de-aqua500-golden", "--note", "client changed their mind",
                 "--runs-dir", str(work / "runs_f"), "--deliverables", str(work / "deliv_f")]) == 0
    assert not (work / "deliv_f" / "demo" / "f1" / "de").exists()
    hist = mf.load_manifest(run_dir)["variants"]["de-aqua500-golden"]["history"]
    assert [h["state"] for h in hist] == ["approved", "rejected"] and hist[1]["note"] == "client changed their mind"


def test_broken_campaign_stops_before_any_render(prefect_api, work, capsys):
    camp = tiny_campaign(work / "broken")
    markets = camp / "matrix" / "csv" / "markets.csv"
    markets.write_text(markets.read_text() + "xx,Nowhere,xx,a void\n", encoding="utf-8")
    keep_rows(camp / "matrix" / "csv" / "products.csv", ["aqua500"])
    (camp / "labels" / "aqua500-de.png").unlink()
    with pytest.raises(CampaignError) as info:
        run_campaign(camp, runs_dir=str(work / "runs_b"), deliverables_dir=str(work / "deliv_b"))
    text = str(info.value)
    assert "2 problems" in text or "problems found" in text
    assert "labels/aqua500-de.png" in text and "'xx'" in text
    assert not (work / "runs_b").exists()
    from flows.cli import main

    assert main(["campaign", "run", str(camp), "--runs-dir", str(work / "runs_b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ray32: error: campaign demo:") and "Traceback" not in err
    assert not (work / "runs_b").exists()
    # A grade key after the trimmed end is found at plan time (the key and its line named) and also stops the run
    # before any render.
    short = tiny_campaign(work / "short", lighting=("golden", "neon"), frames=24)
    with pytest.raises(CampaignError) as info:
        run_campaign(short, runs_dir=str(work / "runs_b"), deliverables_dir=str(work / "deliv_b"))
    assert "key 'lighting.neon.grade.keyframes[1].time'" in str(info.value)
    assert "grade key at '2.5' is frame 60, outside the shot (frames 0..23" in str(info.value)
    assert not (work / "runs_b").exists()


def test_demo_command_probes_the_shot_then_runs_the_campaign(first, work, capsys, monkeypatch):
    camp, _ = first
    monkeypatch.chdir(work)
    from flows.cli import main

    assert main(["demo", "--out", str(work / "shot"), "--campaign", str(camp), "--runs-dir", "runs",
                 "--deliverables", "deliv"]) == 0
    out = capsys.readouterr().out
    assert f"demo shot:    {work / 'shot' / 'demo_shot.mp4'}" in out and "960" in out  # the probe printout
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in out.splitlines() if ":" in ln}
    report = Path(lines["QA report"])
    deliverables = Path(lines["deliverables"].split(" (")[0])
    assert report.is_file() and (work / deliverables / "timeline.otio").is_file()
    assert "(2 variants packaged)" in lines["deliverables"]
