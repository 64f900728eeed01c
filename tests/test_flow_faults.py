"""Faults across processes: a second concurrent run is refused; a run killed with SIGKILL mid-way and started
again renders only what is missing and never packages anything half-written."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from flow_util import PY, prefect_env, tiny_campaign

from flows import manifest as mf


def test_sigkill_mid_run_then_resume_and_second_run_refused(prefect_api, tmp_path):
    camp = tiny_campaign(tmp_path / "camp", markets=("de", "fr"), frames=24)
    env = prefect_env(Path(os.environ["PREFECT_HOME"]), prefect_api)
    env["RAY32_CACHE_DIR"] = str(tmp_path / "cache")
    args = ["campaign", "run", str(camp), "--run", "r1", "--workers", "1", "--auto-approve"]
    log = open(tmp_path / "first.log", "wb")
    first = subprocess.Popen([PY, "-m", "flows.cli", *args], cwd=tmp_path, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    renders = tmp_path / "runs" / "demo" / "renders"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(renders.glob("*/record.json")):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        assert list(renders.glob("*/record.json")), "no render finished in time"
        # A second run of the same campaign while the first one holds the lock: refused, nothing touched.
        second = subprocess.run([PY, "-m", "flows.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"campaign 'demo' is already running (pid {first.pid}, run 'r1'" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in renders.glob("*/record.json")}
    assert 1 <= len(finished) < 4, "the run was not killed mid-way"
    assert not (tmp_path / "deliverables").exists()  # killed before packaging: nothing delivered
    m = mf.load_manifest(tmp_path / "runs" / "demo" / "r1")
    assert m["status"] == "running" and not m.get("package")
    # Started again: only the missing variants are rendered; the killed run's temp folders are gone.
    again = subprocess.run([PY, "-m", "flows.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"4 ({4 - len(finished)} rendered, {len(finished)} from the cache, 0 failed)" in again.stdout
    assert {p.parent.name: p.stat().st_mtime_ns for p in renders.glob("*/record.json") if p.parent.name in finished} \
        == finished
    assert not [p for p in renders.iterdir() if p.name.startswith(".")]
    dest = tmp_path / "deliverables" / "demo" / "r1"
    packaged = json.loads((dest / "manifest.json").read_text())
    assert sorted(packaged["variants"]) == ["de-aqua500-golden", "de-aqua500-overcast", "fr-aqua500-golden",
                                            "fr-aqua500-overcast"]
    for entry in packaged["variants"].values():
        vm = json.loads((dest / entry["folder"] / "manifest.json").read_text())
        for name, digest in vm["files"].items():
            assert hashlib.sha256((dest / entry["folder"] / name).read_bytes()).hexdigest() == digest
    assert "deliverables: deliverables/demo/r1 (4 variants packaged)" in again.stdout
