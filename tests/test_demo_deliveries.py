"""The demo campaign's deliveries (issue 14, "Done when"): master, meta-reels (de) and ctv-16x9 (us).

The demo campaign as shipped (its shot, label corners and ``deliver:`` block), reduced to one product and one
lighting preset in the two markets that carry the extra targets, runs through the campaign flow (track, render,
deliver, check, approve, package). Everything is read back from the packaged deliverables: ffprobe for size, rate,
codec, frame count, duration and audio; ffmpeg's ebur128 filter for loudness and true peak; the delivered Reels
frames decoded to find where the label's band landed. master and meta-reels pass every delivery check; ctv-16x9
passes every one but duration, which the demo is built to fail (a 3 s shot is not a 15 or 30 s spot), and that
failure neither blocks nor loses the variant's other deliveries.
"""

from __future__ import annotations

import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from flow_util import DEMO, keep_rows
from test_delivery import ebur128, ffprobe

from ray32.targets import get_target

CTV_REASON = "ctv-16x9: duration 3.00 s; ctv-16x9 takes spots of 15 or 30 s"
"""The one reason ctv-16x9 fails on the demo (README "Platform deliveries", campaigns/demo/campaign.yaml)."""


@pytest.fixture(scope="module")
def demo_run(prefect_api, tmp_path_factory):
    from flows.run import run_campaign

    work = tmp_path_factory.mktemp("demo_deliver")
    camp = work / "demo"
    shutil.copytree(DEMO, camp, ignore=shutil.ignore_patterns("demo.xlsx"))
    y = (camp / "campaign.yaml").read_text(encoding="utf-8")
    y = y.replace("workbook: matrix/demo.xlsx", "csv: matrix/csv", 1).replace("  rules: rules\n", "", 1)
    (camp / "campaign.yaml").write_text(y, encoding="utf-8")
    (camp / "matrix" / "csv" / "rules.csv").unlink()
    keep_rows(camp / "matrix" / "csv" / "markets.csv", ["de", "us"])
    keep_rows(camp / "matrix" / "csv" / "products.csv", ["aqua500"])
    keep_rows(camp / "matrix" / "csv" / "lighting.csv", ["overcast"])
    result = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), run="d1",
                          auto_approve=True, cache_dir=str(work / "cache"), workers=2, qa_samples=1,
                          deliver_preset="ultrafast")
    return result


def read_back(path: Path) -> dict:
    info = ffprobe(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    frames = int(video["nb_read_frames"])
    fps = Fraction(video["avg_frame_rate"])
    lufs, peak = ebur128(path)
    return {"size": (video["width"], video["height"]), "codec": video["codec_name"], "fps": fps,
            "cfr": Fraction(video["r_frame_rate"]) == fps, "frames": frames, "seconds": float(frames / fps),
            "kbps": float(info["format"]["bit_rate"]) / 1000, "audio": (int(audio["sample_rate"]), audio["channels"]),
            "lufs": lufs, "peak": peak}


def band_rows(path: Path) -> list[tuple[int, int]]:
    """Per delivered frame, the first and last row of the label's orange band (the bottom of the label)."""
    import av

    rows = []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            img = f.to_ndarray(format="rgb24").astype(int)
            mask = (img[..., 0] - img[..., 1] > 70) & (img[..., 0] - img[..., 2] > 100)
            found = np.flatnonzero(mask.sum(axis=1) > 100)  # rows where the band crosses most of the label
            rows.append((int(found[0]), int(found[-1])) if len(found) else (-1, -1))
    return rows


def test_demo_delivers_master_reels_and_ctv_with_every_check_but_the_deliberate_one(demo_run):
    result = demo_run
    assert not result["failed"] and result["approved"] == 2, result
    dest = Path(result["deliverables"])
    wanted = {"de": {"master", "meta-reels"}, "us": {"master", "ctv-16x9"}}
    for market, targets in wanted.items():
        slug = f"{market}-aqua500-overcast"
        folder = dest / market / slug
        vm = json.loads((folder / "manifest.json").read_text())
        assert set(vm["deliveries"]) == targets
        for name in targets:
            t, d = get_target(name), vm["deliveries"][name]
            got = read_back(folder / name / d["main"])
            # Read back: the target's size (master: the shot's), rate, codec, frames, duration, audio, loudness.
            assert got["size"] == (t.size or (960, 540)) and got["codec"] == "h264", (name, got)
            assert got["fps"] == 24 and got["cfr"] and got["frames"] == 72 and got["seconds"] == 3.0
            assert got["audio"] == (48000, 2)
            assert abs(got["lufs"] - t.loudness.integrated) <= t.loudness.tolerance, (name, got)
            assert got["peak"] <= t.loudness.true_peak + 0.1, (name, got)
            if t.min_kbps:
                assert t.min_kbps <= got["kbps"] <= t.max_kbps, (name, got)
            # The checks' own figures agree with what was read back, and say what passed.
            measured = d["measured"]
            assert measured["delivery loudness"]["integrated_lufs"] == pytest.approx(got["lufs"], abs=0.2)
            assert measured["delivery duration"]["duration_s"] == pytest.approx(3.0)
            if name == "ctv-16x9":
                assert d["verdict"] == "fail" and d["reasons"] == [CTV_REASON], d["reasons"]
            else:
                assert d["verdict"] == "pass" and d["reasons"] == [], (name, d["reasons"])
            assert d["reframe_notes"] == []
            if t.zones:  # the tracked label (and a face, where one is in the picture) clear of every zone
                zone = measured["safe zone"]
                assert zone["label_zone_frames"] == 0 and zone["label_judged_frames"] >= 66, zone
                assert zone["face_zone_frames"] == 0, zone
    # Reels: the 9:16 crop keeps the label between the top bar (14 %) and the caption zone (from 65 %) on every
    # delivered frame, found in the pixels (its orange band, the bottom of the label), not from the tracks.
    reels = dest / "de" / "de-aqua500-overcast" / "meta-reels" / "de-aqua500-overcast_meta-reels.mp4"
    rows = band_rows(reels)
    assert len(rows) == 72 and min(top for top, _ in rows) > 0.14 * 1920 + 200  # the label is ~280 px tall here
    assert max(bottom for _, bottom in rows) < 0.65 * 1920, max(rows)
    # The run's manifest, the timeline and the report carry each target's verdict; the failing CTV file is
    # packaged beside the passing master.
    run = json.loads((dest / "manifest.json").read_text())
    us = run["variants"]["us-aqua500-overcast"]["deliveries"]
    assert us["ctv-16x9"]["verdict"] == "fail" and us["master"]["verdict"] == "pass"
    assert (dest / "us" / "us-aqua500-overcast" / "ctv-16x9" / "us-aqua500-overcast_ctv-16x9.mp4").is_file()
    import opentimelineio as otio

    tl = otio.adapters.read_from_file(str(dest / "timeline.otio"))
    assert [t.name for t in tl.tracks] == ["de master", "de meta-reels", "us ctv-16x9", "us master"]
    ctv = list(tl.tracks[2])[0].metadata["ray32"]
    assert ctv["delivery_verdict"] == "fail" and list(ctv["delivery_reasons"]) == [CTV_REASON]
    html = Path(result["report"]).read_text(encoding="utf-8")
    sections = dict(re.findall(r'data-target="([\w-]+)" data-verdict="(\w+)"', html))
    assert sections == {"master": "pass", "meta-reels": "pass", "ctv-16x9": "fail"}
    assert html.count("takes spots of 15 or 30 s") == 1
    reels_section = html[html.index('data-target="meta-reels"'):]
    reels_section = reels_section[:reels_section.index("</section>")]
    assert "data:image/jpeg;base64," in reels_section and "→ -14.0 LUFS (target -14.0)" in reels_section


def test_the_run_says_per_target_what_passed_and_why_ctv_fails(demo_run, capsys):
    from flows.commands.campaign_run import print_result

    summary = demo_run["deliveries"]
    assert summary == {"master": {"pass": 2, "fail": 0, "not checked": 0, "reasons": {}},
                       "meta-reels": {"pass": 1, "fail": 0, "not checked": 0, "reasons": {}},
                       "ctv-16x9": {"pass": 0, "fail": 1, "not checked": 0, "reasons": {CTV_REASON: 1}}}
    print_result(demo_run)
    out = capsys.readouterr().out
    lines = out[out.index("deliveries:"):].splitlines()[:4]
    assert [ln.strip() for ln in lines] == [
        "deliveries:   master: 2 pass", "meta-reels: 1 pass", "ctv-16x9: 1 fail", f"{CTV_REASON} (1 variant)"]
