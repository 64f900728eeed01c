"""Platform deliveries: targets as data, two-pass loudness, safe-zone reframing, delivery checks, packaging.

Outputs are read back with ffprobe (size, rate, codec, bitrate, duration, audio) and ffmpeg's ebur128 filter
(loudness, true peak), and delivered frames are decoded to find where the label landed.
"""

from __future__ import annotations

import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ray32.targets import TARGETS, TargetError, get_target

REPO = Path(__file__).resolve().parents[1]
DEMO_SHOT = REPO / "campaigns" / "demo" / "source" / "demo_shot.mp4"
TRUTH = REPO / "campaigns" / "demo" / "source" / "demo_shot.truth.json"


def ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "format=duration,bit_rate:stream=codec_type,codec_name,width,height,r_frame_rate,"
                          "avg_frame_rate,nb_read_frames,sample_rate,channels", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def ebur128(path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) measured by ffmpeg's ebur128 filter, independently of ray32."""
    text = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0", "-af",
                           "ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
                          capture_output=True, text=True).stderr
    summary = text[text.rfind("Summary:"):]
    i = re.search(r"I:\s+(\S+) LUFS", summary).group(1)
    peak = re.search(r"Peak:\s+(\S+) dBFS", summary).group(1)
    return float(i), float(peak)


def tone_clip(path: Path, *, level_db: float | None = -30.0, seconds: float = 2.0, audio: bool = True) -> Path:
    """A small test clip (320x180, 24 fps) with a 1 kHz tone at ``level_db`` (None: digital silence)."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=320x180:r=24:d={seconds}"]
    if audio:
        src = (f"sine=f=1000:sample_rate=44100:d={seconds},volume={level_db}dB" if level_db is not None
               else f"anullsrc=r=44100:cl=stereo:d={seconds}")
        cmd += ["-f", "lavfi", "-i", src, "-c:a", "aac", "-b:a", "128k"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    subprocess.run(cmd, check=True)
    return path


# ------------------------------------------------------------------------------------------------ targets

def test_every_target_names_its_spec_and_source_and_unknown_names_list_the_known_ones():
    assert {"master", "meta-reels", "meta-feed-4x5", "tiktok", "youtube-shorts", "ctv-16x9"} <= set(TARGETS)
    for t in TARGETS.values():
        assert t.spec and t.source and t.loudness is not None
        d = t.describe()
        assert d["name"] == t.name and d["constant_frame_rate"] is True
    reels = get_target("meta-reels")
    assert reels.size == (1080, 1920) and reels.safe_box() == pytest.approx((0.06, 0.14, 0.94, 0.65))
    assert get_target("tiktok").min_kbps == 516 and get_target("tiktok").max_seconds == 60
    ctv = get_target("ctv-16x9")
    assert ctv.lengths == (15.0, 30.0) and ctv.loudness.integrated == -24 and ctv.loudness.true_peak == -2
    with pytest.raises(TargetError, match=r"unknown delivery target 'reelz'; known: master, meta-reels"):
        get_target("reelz")


def test_campaign_deliver_key_is_checked_and_lists_the_known_targets(tmp_path):
    from tests.campaign_util import copy_demo, edit_yaml, plan_error

    camp = copy_demo(tmp_path / "camp", csv=True)
    edit_yaml(camp, "  - master  ", "  - instagram  ")
    _, msg = plan_error(camp)
    assert "deliver" in msg and "unknown delivery target 'instagram'" in msg
    assert "known: master, meta-reels, meta-feed-4x5, tiktok, youtube-shorts, ctv-16x9" in msg
    camp = copy_demo(tmp_path / "camp2", csv=True)
    edit_yaml(camp, "{target: ctv-16x9, markets: [us]}", "{target: ctv-16x9, markets: [us, it]}")
    _, msg = plan_error(camp)
    assert "unknown market 'it' for delivery target 'ctv-16x9'" in msg and "de, fr, us" in msg


# ------------------------------------------------------------------------------------------------ loudness

def test_two_pass_loudness_meets_the_target_and_records_before_and_after(tmp_path):
    from ray32.loudness import normalise_file

    quiet = tone_clip(tmp_path / "quiet.mp4", level_db=-30)
    src_i, _ = ebur128(quiet)
    for name in ("meta-reels", "ctv-16x9"):
        target = get_target(name).loudness
        out = tmp_path / f"{name}.mp4"
        figures = normalise_file(quiet, out, target)
        i, tp = ebur128(out)
        assert abs(i - target.integrated) <= target.tolerance, (name, i)
        assert tp <= target.true_peak + 0.1
        assert figures["before"]["integrated"] == pytest.approx(src_i, abs=0.2)
        assert figures["after"]["integrated"] == pytest.approx(i, abs=0.2)
        assert figures["gain_db"] == pytest.approx(target.integrated - src_i, abs=0.3)
        streams = ffprobe(out)["streams"]
        audio = next(s for s in streams if s["codec_type"] == "audio")
        assert (audio["codec_name"], int(audio["sample_rate"]), audio["channels"]) == ("aac", 48000, 2)
        video = next(s for s in streams if s["codec_type"] == "video")
        assert int(video["nb_read_frames"]) == 48  # the video is copied, frame for frame


def test_silence_stays_silent_and_a_missing_track_becomes_silence(tmp_path):
    from ray32.loudness import measure, normalise_file

    target = get_target("meta-reels").loudness
    silent = tone_clip(tmp_path / "silent.mp4", level_db=None)
    figures = normalise_file(silent, tmp_path / "silent_out.mp4", target)
    assert figures["gain_db"] is None and "silent" in figures["note"]
    assert measure(tmp_path / "silent_out.mp4").silent
    mute = tone_clip(tmp_path / "mute.mp4", audio=False)
    figures = normalise_file(mute, tmp_path / "mute_out.mp4", target, add_silence=True)
    after = measure(tmp_path / "mute_out.mp4")
    assert after is not None and after.silent and "silent track" in figures["note"]


# ------------------------------------------------------------------------------------------------ read back

@pytest.fixture(scope="module")
def demo_deliveries(tmp_path_factory):
    """The first 36 frames of the demo shot delivered to meta-feed-4x5 and ctv-16x9 (truth tracks). The demo
    campaign's own deliveries (master, meta-reels, ctv-16x9 on the whole shot) are in test_demo_deliveries.py."""
    from flows.pipeline import check_deliveries
    from qa.delivery import black_freeze
    from ray32.deliver import close_targets, open_targets, tee
    from ray32.shot import open_shot, read_chunks

    out = tmp_path_factory.mktemp("deliver")
    shot = open_shot(DEMO_SHOT, end="36f", detect_cuts=False)
    truth = json.loads(TRUTH.read_text())
    quads = np.array(truth["label_corners"])[:36]
    faces = np.array(truth["face_boxes"])[:36]
    names = ["meta-feed-4x5", "ctv-16x9"]
    plans, writers = open_targets(names, out, stem="demo", source=shot, width=960, height=540, label_quads=quads,
                                  face_boxes=faces, preset="ultrafast")
    for _ in tee(read_chunks(shot), writers.values()):
        pass
    records = close_targets(plans, writers, {}, out)
    check_deliveries(records, plans, out, shot, quads, faces, black_freeze(DEMO_SHOT, duration=1.5))
    return out, records, plans


def test_delivered_files_read_back_meet_their_targets(demo_deliveries):
    out, records, _ = demo_deliveries
    for name in ("meta-feed-4x5", "ctv-16x9"):
        t = get_target(name)
        path = out / name / records[name]["file"]
        info = ffprobe(path)
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
        assert (video["width"], video["height"]) == t.size and video["codec_name"] == "h264"
        assert Fraction(video["r_frame_rate"]) == Fraction(video["avg_frame_rate"]) == 24
        assert int(video["nb_read_frames"]) == 36
        assert (int(audio["sample_rate"]), audio["channels"]) == (48000, 2)
        kbps = float(info["format"]["bit_rate"]) / 1000
        assert t.min_kbps * 0.95 <= kbps <= t.max_kbps * 1.05, (name, kbps)
        i, tp = ebur128(path)
        assert abs(i - t.loudness.integrated) <= t.loudness.tolerance and tp <= t.loudness.true_peak + 0.1
        rec = records[name]
        assert rec["loudness"]["before"]["integrated"] == pytest.approx(-20.0, abs=0.5)  # the demo's tone
        assert rec["loudness"]["after"]["integrated"] == pytest.approx(i, abs=0.2)
        assert rec["qa"]["metrics"]["delivery loudness"]["integrated_lufs"] == pytest.approx(i, abs=0.2)
    assert records["meta-feed-4x5"]["qa"]["verdict"] == "pass", records["meta-feed-4x5"]["qa"]["reasons"]
    # A 1.5 s clip is no CTV spot: that is the one reason it fails.
    assert records["ctv-16x9"]["qa"]["reasons"] == ["ctv-16x9: duration 1.50 s; ctv-16x9 takes spots of 15 or 30 s"]
    assert (out / "ctv-16x9.safe_zone.jpg").is_file()


# ------------------------------------------------------------------------------------------------ safe zones

RED = (230, 20, 20)


def tall_frames(n: int = 24, width: int = 360, height: int = 1200):
    """A tall source (9:30) with a tall red label low in it (y 560..810): a naive centre crop to 9:16 puts it
    under the Reels caption zone, and so does a crop that merely centres it (Reels' safe area sits above the
    middle). Returns (frames, label quads)."""
    frames = np.full((n, height, width, 3), 90, np.uint8)
    frames[:, :, :, 2] = np.linspace(60, 200, height, dtype=np.uint8)[None, :, None]
    quads = np.zeros((n, 4, 2))
    for i in range(n):
        x0 = 120 + 2 * i
        frames[i, 560:810, x0:x0 + 100] = RED
        quads[i] = [[x0, 560], [x0 + 100, 560], [x0 + 100, 810], [x0, 810]]
    return frames, quads


def red_rows(frame: np.ndarray) -> tuple[int, int]:
    mask = (frame[..., 0] > 170) & (frame[..., 1] < 80) & (frame[..., 2] < 80)
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[0]), int(rows[-1])


def test_tracked_reframe_keeps_the_label_clear_of_the_reels_caption_zone(tmp_path):
    import av

    from qa.checks.base import Clip
    from qa.checks.delivery import DeliveryFacts, safe_zone
    from qa.delivery import judge, map_tracks
    from ray32.deliver import DeliveryWriter, plan_delivery

    frames, quads = tall_frames()
    reels = get_target("meta-reels")
    plan = plan_delivery(reels, 360, 1200, Fraction(24), len(frames), label_quads=quads)
    assert plan.crop.height == 640 and plan.notes == [] and plan.crop.clear.all()
    with DeliveryWriter(plan, tmp_path, stem="tall", preset="ultrafast") as w:
        w.write(frames)
        rec = w.close()
    # Read the delivered frames back: the red label lies between the top bar and the caption zone on every one.
    with av.open(str(tmp_path / rec["file"])) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    assert len(got) == 24 and got[0].shape == (1920, 1080, 3)
    for f in got:
        top, bottom = red_rows(f)
        assert 0.14 * 1920 <= top and bottom <= 0.65 * 1920, (top, bottom)

    def judged(geometry):
        q, _ = map_tracks(geometry, quads, None)
        facts = DeliveryFacts(target=reels, file="x.mp4", probe={"width": 1080, "height": 1920},
                              source_fps=Fraction(24), source_frames=24, label_quads=q)
        result = safe_zone.CHECK.finish(None, Clip(facts=facts, fps=Fraction(24), output_fps=Fraction(24),
                                                   source_count=24, output_count=24))
        return result, judge(safe_zone, result, reels, facts)[0]

    result, reasons = judged(rec["geometry"])
    assert reasons == [] and result.summary["label_zone_frames"] == 0
    # A naive centre crop (y0 = 280) puts the label under the caption zone, and the check names the frame.
    naive = {"crop_size": [360, 640], "offsets": [[0, 280]] * 24, "out_size": [1080, 1920]}
    result, reasons = judged(naive)
    assert result.summary["label_zone_frames"] == 24
    assert len(reasons) == 1 and reasons[0].startswith("meta-reels: the label sits under")
    assert "'caption and call to action' zone on 24 of 24 frames" in reasons[0]
    assert re.search(r"worst at 00:00:00:\d\d \(frame \d+\): 46 % of it covered", reasons[0]), reasons


def test_a_label_the_crop_cannot_lift_is_said_at_reframe_and_named_by_the_check(caplog):
    """A 16:9 frame with the label low in it (as the demo shot had it before issue 14): a full-height 9:16 crop
    can only move sideways, so the plan says which frames it cannot keep clear (logged once, however many
    variants share the crop) and the check names the worst."""
    import logging

    from qa.checks.base import Clip
    from qa.checks.delivery import DeliveryFacts, safe_zone
    from qa.delivery import judge, map_tracks
    from ray32.deliver import plan_delivery

    reels = get_target("meta-reels")
    quads = np.array([[[200 + i, 250], [300 + i, 250], [300 + i, 330], [200 + i, 330]] for i in range(24)], float)
    with caplog.at_level(logging.WARNING, logger="ray32.deliver"):
        plan = plan_delivery(reels, 640, 360, Fraction(24), 24, label_quads=quads)
        again = plan_delivery(reels, 640, 360, Fraction(24), 24, label_quads=quads)
    assert again.notes == plan.notes and [r.getMessage() for r in caplog.records] == plan.notes
    assert plan.crop.height == 360 and not plan.crop.clear.any()
    assert len(plan.notes) == 1 and re.fullmatch(
        r"meta-reels: the 202x360 crop cannot keep the label/faces clear of the interface zones on 24 of 24 frames "
        r"\(first at 00:00:00:00, frame 0\): .*", plan.notes[0]), plan.notes
    q, _ = map_tracks(plan.geometry(), quads, None)
    facts = DeliveryFacts(target=reels, file="x.mp4", probe={"width": 1080, "height": 1920}, source_fps=Fraction(24),
                          source_frames=24, label_quads=q)
    result = safe_zone.CHECK.finish(None, Clip(facts=facts, fps=Fraction(24), output_fps=Fraction(24),
                                               source_count=24, output_count=24))
    reasons = judge(safe_zone, result, reels, facts)[0]
    assert len(reasons) == 1 and "the label sits under the 'caption and call to action' zone on 24 of 24" in reasons[0]


# ------------------------------------------------------------------------------------------------ packaging

def test_campaign_variant_is_packaged_per_target_with_spec_and_measured_values(tmp_path):
    import opentimelineio as otio

    from flows import manifest as mf
    from flows import pipeline
    from flows.campaign import plan_campaign
    from flows.package import package_run
    from tests.flow_util import tiny_campaign

    camp = tiny_campaign(tmp_path / "camp", lighting=("golden",), frames=24, deliver=("master", "meta-feed-4x5"))
    plan = plan_campaign(camp)
    ctx = pipeline.RunContext(campaign=plan.campaign, root=str(camp), source=str(camp / plan.source),
                              trim=plan.trim, runs_dir=str(tmp_path / "runs"), engine="composite", qa_samples=1,
                              cache_dir=str(tmp_path / "cache"), extra={"deliver_preset": "ultrafast"})
    v = plan.variants[0]
    assert v["deliver"] == ["master", "meta-feed-4x5"]
    record = pipeline.render_variant(ctx, v)
    assert set(record["deliveries"]) == {"master", "meta-feed-4x5"}
    run_dir = mf.campaign_dir(ctx.runs_dir, plan.campaign) / "r1"
    mf.save_manifest(run_dir, pipeline.new_manifest(plan, ctx, "r1"))
    pipeline.record_render(run_dir, v["slug"], record)

    def approve(m):
        m["variants"][v["slug"]].update(qa={"verdict": "pass", "reasons": []},
                                        approval={"state": "approved", "by": "test", "at": mf.now()})

    mf.update_manifest(run_dir, approve)
    assert pipeline.cached(ctx, v) is not None  # the deliveries are part of the cached render
    out = package_run(run_dir, ctx.runs_dir, tmp_path / "deliv")
    folder = out["folder"] / "de" / v["slug"]
    master = folder / "master" / f"{v['slug']}_draft.mp4"
    feed = folder / "meta-feed-4x5" / f"{v['slug']}_meta-feed-4x5.mp4"
    assert master.is_file() and feed.is_file()
    video = next(s for s in ffprobe(feed)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (1080, 1350)
    i, _ = ebur128(master)
    assert abs(i - get_target("master").loudness.integrated) <= 1.0
    vm = json.loads((folder / "manifest.json").read_text())
    d = vm["deliveries"]["meta-feed-4x5"]
    assert d["spec"]["size"] == [1080, 1350] and d["spec"]["source"].startswith("Meta Business Help Center")
    assert d["verdict"] == "pass" and d["measured"]["delivery format"]["width"] == 1080
    assert d["loudness"]["after"]["integrated"] == pytest.approx(-14, abs=1)
    assert f"meta-feed-4x5/{v['slug']}_meta-feed-4x5.mp4" in vm["files"]
    tl = otio.adapters.read_from_file(str(out["timeline"]))
    assert [t.name for t in tl.tracks] == ["de master", "de meta-feed-4x5"]
    clip = list(tl.tracks[1])[0]
    assert clip.metadata["ray32"]["target"] == "meta-feed-4x5" and clip.metadata["ray32"]["delivery_verdict"] == "pass"
    assert (out["folder"] / clip.media_reference.target_url).is_file()
    run = json.loads((out["folder"] / "manifest.json").read_text())
    assert run["variants"][v["slug"]]["deliveries"]["meta-feed-4x5"]["verdict"] == "pass"
    # The report: per target its verdict, the loudness figures and the zones drawn over the worst frame.
    import base64
    import io

    from PIL import Image

    html = pipeline.write_run_report(run_dir, ctx.runs_dir).read_text(encoding="utf-8")
    section = html[html.index('data-target="meta-feed-4x5"'):]
    section = section[:section.index("</section>")]
    assert 'data-verdict="pass"' in section and "-20.0 → -14.0 LUFS (target -14.0)" in section
    img = re.search(r'src="data:image/jpeg;base64,([^"]+)"', section).group(1)
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(img))).convert("RGB")).astype(int)
    assert overlay.shape[0] == 480 and overlay.shape[1] == 384  # 1080x1350 shown 480 high
    top, middle = overlay[:15].mean(axis=(0, 1)), overlay[200:280, 150:230].mean(axis=(0, 1))
    assert top[0] - top[2] > middle[0] - middle[2] + 30  # the margin zone is shaded red


# ------------------------------------------------------------------------------------------------ commands

def test_export_and_render_deliver_from_the_command_line(tmp_path, capsys):
    from flows.cli import main

    clip = tone_clip(tmp_path / "clip.mp4", level_db=-26, seconds=1.5)
    assert main(["export", str(clip), "--to", "draft", "--out", str(tmp_path / "exp"),
                 "--deliver", "meta-feed-4x5"]) == 0
    out = capsys.readouterr().out
    feed = tmp_path / "exp" / "meta-feed-4x5" / "clip_meta-feed-4x5.mp4"
    video = next(s for s in ffprobe(feed)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (1080, 1350) and int(video["nb_read_frames"]) == 36
    assert "meta-feed-4x5" in out and "delivery checks: pass" in out
    assert f"{ebur128(clip)[0]:.1f} -> -14.0 LUFS" in out
    # The composite render delivers in the same pass, following the tracked label.
    assert main(["render", str(DEMO_SHOT), "--end", "30f", "--label-art",
                 str(REPO / "campaigns" / "demo" / "labels" / "aqua500-de.png"), "--label-text", "AQUA FRISCH",
                 "--label-corners", "594.5,194.5,784.5,194.5,784.5,298.5,594.5,298.5@0", "--deliver", "youtube-shorts",
                 "--out-dir", str(tmp_path / "ren"), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "ren" / "demo_shot_composite.request.json").read_text())
    shorts = record["deliveries"]["youtube-shorts"]
    assert shorts["qa"]["verdict"] == "pass", shorts["qa"]["reasons"]
    offsets = np.array(shorts["geometry"]["offsets"])
    assert (offsets[:, 0] > 480).all()  # the 9:16 crop sits on the label (x 594..785), not the frame's centre
    assert (tmp_path / "ren" / "youtube-shorts" / "demo_shot_composite_youtube-shorts.mp4").is_file()
    assert "youtube-shorts" in out and "delivery checks: pass" in out


def test_an_unknown_target_on_the_command_line_is_an_input_error(tmp_path, capsys):
    from flows.cli import main

    clip = tone_clip(tmp_path / "clip.mp4", seconds=0.5)
    assert main(["export", str(clip), "--to", "draft", "--out", str(tmp_path / "o"), "--deliver", "reelz"]) == 2
    err = capsys.readouterr().err
    assert "unknown delivery target 'reelz'; known: master, meta-reels" in err and "Traceback" not in err


def test_black_and_frozen_stretches_beyond_the_source_fail(tmp_path):
    from qa.checks.base import Clip
    from qa.checks.delivery import DeliveryFacts, black_freeze as check
    from qa.delivery import black_freeze, judge

    clip = tmp_path / "black.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=1", "-f", "lavfi",
                    "-i", "color=black:s=320x180:r=24:d=2", "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)], check=True)
    found = black_freeze(clip)
    assert found["black"] == pytest.approx(2.0, abs=0.1) and found["freeze"] == pytest.approx(2.0, abs=0.15)
    reels = get_target("meta-reels")

    def reasons(source):
        facts = DeliveryFacts(target=reels, file="black.mp4", probe={}, source_fps=Fraction(24), source_frames=72,
                              black={"output": found["black"], "source": source["black"]},
                              freeze={"output": found["freeze"], "source": source["freeze"]})
        result = check.CHECK.finish(None, Clip(facts=facts, fps=Fraction(24), output_fps=Fraction(24),
                                               source_count=72, output_count=72))
        return judge(check, result, reels, facts)[0]

    got = reasons({"black": 0.0, "freeze": 0.0})
    assert len(got) == 2 and got[0].startswith("meta-reels: 1.9") and "more black picture than the source" in got[0]
    assert "more frozen picture" in got[1]
    assert reasons(found) == []  # the same black in the source: nothing added by the delivery
