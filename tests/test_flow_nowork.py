"""No work done twice: packaging hard-links the render cache (same bytes, no copy; checksums from the render
record), and rerunning an unchanged campaign from the command line starts no Prefect server, imports no heavy
library and writes nothing but the run's record."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flow_util import REPO, tiny_campaign

from flows import manifest as mf
from flows.package import package_run
from flows.run import run_campaign
from flows.unchanged import find_unchanged

HEAVY = ("prefect", "great_expectations", "torch", "diffusers", "rapidocr", "dlib", "onnxruntime")


@pytest.fixture(scope="module")
def done(prefect_api, tmp_path_factory):
    work = tmp_path_factory.mktemp("nowork")
    old = os.environ.get("RAY32_CACHE_DIR")
    os.environ["RAY32_CACHE_DIR"] = str(work / "ray32-cache")  # the sheet-check cache, inside the snapshot
    try:
        camp = tiny_campaign(work / "camp", lighting=("golden",), frames=12)
        result = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"),
                              auto_approve=True, cache_dir=str(work / "cache"), workers=1, qa_samples=2)
        yield work, camp, result
    finally:
        if old is None:
            os.environ.pop("RAY32_CACHE_DIR", None)
        else:
            os.environ["RAY32_CACHE_DIR"] = old


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_packaging_hard_links_the_render_cache(done):
    work, _, result = done
    assert result["rendered"] == 1 and result["packaged"] == ["de-aqua500-golden"]
    m = mf.load_manifest(result["run_dir"])
    v = m["variants"]["de-aqua500-golden"]
    render = mf.render_dir(work / "runs", "demo", v["cache_key"])
    folder = Path(result["deliverables"]) / "de" / "de-aqua500-golden"
    record = json.loads((render / "record.json").read_text())
    for name in ("de-aqua500-golden_draft.mp4", "poster.jpg"):
        a, b = (folder / name).stat(), (render / name).stat()
        assert (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) and a.st_nlink >= 2, name  # a link, not a copy
        assert (folder / name).read_bytes() == (render / name).read_bytes()
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert files["de-aqua500-golden_draft.mp4"] == record["checksums"]["de-aqua500-golden_draft.mp4"] == \
        sha(folder / "de-aqua500-golden_draft.mp4")
    assert files["poster.jpg"] == sha(folder / "poster.jpg")
    # Packaging the same run again changes nothing; a zip is not rebuilt when its content is the same.
    zips = {p: p.stat().st_mtime_ns for p in Path(result["deliverables"]).glob("*.zip")}
    assert package_run(result["run_dir"], work / "runs", work / "deliv")["changed"] == []
    assert {p: p.stat().st_mtime_ns for p in zips} == zips


def snapshot(*roots: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for r in roots for p in r.rglob("*") if p.is_file()}


def test_unchanged_rerun_does_no_work_in_a_new_process(done, tmp_path):
    work, camp, result = done
    run_dir = Path(result["run_dir"])
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), PREFECT_HOME=str(home), PREFECT_API_URL="http://127.0.0.1:9/api")
    before = snapshot(work, home)
    script = ("import json, sys\nfrom flows.cli import main\nrc = main(sys.argv[1:])\n"
              f"print('HEAVY=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\nsys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", script, "campaign", "run", str(camp), "--runs-dir", str(work / "runs"),
                          "--deliverables", str(work / "deliv"), "--auto-approve"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "nothing changed" in out.stdout and f"run:          {run_dir}" in out.stdout
    assert f"deliverables: {result['deliverables']} (1 variants packaged)" in out.stdout
    assert "HEAVY=[]" in out.stdout, out.stdout  # neither Prefect nor QA nor engine libraries were imported
    after = snapshot(work, home)
    assert not list(home.iterdir())  # no Prefect server (its database would be here)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {run_dir / "manifest.json"}  # the run's record, nothing else
    checks = mf.load_manifest(run_dir)["unchanged_checks"]
    assert len(checks) == 1 and checks[0]["wall_s"] < 30


def test_any_change_means_a_real_run(done):
    work, camp, result = done
    kw = dict(runs_dir=work / "runs", deliverables_dir=work / "deliv", auto_approve=True)
    assert find_unchanged(camp, **kw) is not None
    assert find_unchanged(camp, **{**kw, "deliverables_dir": work / "elsewhere"}) is None
    assert find_unchanged(camp, **kw, run="another-run") is None
    assert find_unchanged(camp, **kw, formats=["draft", "exr"]) is None
    vm = Path(result["deliverables"]) / "de" / "de-aqua500-golden" / "manifest.json"
    text = vm.read_bytes()
    vm.unlink()
    try:
        assert find_unchanged(camp, **kw) is None  # the package is incomplete
    finally:
        vm.write_bytes(text)
    render = mf.render_dir(work / "runs", "demo", mf.load_manifest(result["run_dir"])["variants"][
        "de-aqua500-golden"]["cache_key"])
    draft = render / "de-aqua500-golden_draft.mp4"
    draft.rename(draft.with_name("moved.mp4"))
    try:
        assert find_unchanged(camp, **kw) is None  # the render cache lost an output
    finally:
        draft.with_name("moved.mp4").rename(draft)
    assert find_unchanged(camp, **kw) is not None


def test_scheduled_flow_run_of_an_unchanged_campaign_does_nothing(done):
    """``campaign serve`` calls the flow itself: an unchanged campaign makes no new run folder, renders and
    packages nothing."""
    work, camp, result = done
    runs = {p.name for p in (work / "runs" / "demo").iterdir()}
    again = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), auto_approve=True,
                         cache_dir=str(work / "cache"))
    assert again.get("unchanged") and again["run_dir"] == result["run_dir"] and again["rendered"] == 0
    assert {p.name for p in (work / "runs" / "demo").iterdir()} == runs
