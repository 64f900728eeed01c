"""ray32.shot: probe fields against what was written, frame-exact trimming, VFR, rotation, limits, cuts,
working geometry, and every broken-input case with its message."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import code_frame, read_code, write_clip
from ray32 import shot as S


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    out = {}
    out["h264"] = write_clip(d / "h264.mp4", frames=48, fps=Fraction(24), color=(1, 1, 1), audio=True)
    out["ntsc"] = write_clip(d / "ntsc.mov", frames=30, fps=Fraction(30000, 1001))
    out["pq"] = write_clip(d / "pq.mp4", frames=12, codec="libx265", pix_fmt="yuv420p10le", color=(9, 16, 9),
                           fps=Fraction(25))
    out["hlg"] = write_clip(d / "hlg.mp4", frames=12, codec="libx265", pix_fmt="yuv420p10le", color=(9, 18, 9),
                            fps=Fraction(50))
    out["rot"] = write_clip(d / "rot.mp4", frames=6, rotation=90)
    pts, t = [], 0
    for i in range(30):  # alternating 33 ms / 50 ms frames: a phone-style variable rate
        pts.append(t)
        t += 33 if i % 2 == 0 else 50
    out["vfr"] = write_clip(d / "vfr.mp4", frames=30, pts=pts, time_base=Fraction(1, 1000))
    out["vfr_pts_ms"] = pts
    return out


# ------------------------------------------------------------------------------------------------- probe

def test_probe_reports_what_was_written(clips):
    info = S.probe(clips["h264"])
    assert info.codec == "h264" and info.container.startswith("mov")
    assert (info.width, info.height) == (160, 96)
    assert info.fps == Fraction(24) and isinstance(info.fps, Fraction)
    assert info.frame_count == 48
    assert info.duration == Fraction(2)
    assert info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert (info.color_primaries, info.color_transfer, info.color_matrix) == ("bt709", "bt709", "bt709")
    assert info.dynamic_range == "SDR"
    assert info.rotation == 0 and not info.vfr
    assert len(info.audio) == 1
    a = info.audio[0]
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 48000, 2)


def test_probe_exact_ntsc_rate(clips):
    info = S.probe(clips["ntsc"])
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 30
    assert info.duration == Fraction(30 * 1001, 30000)
    assert info.container.startswith("mov") and info.audio == ()


@pytest.mark.parametrize("key,transfer,dynamic,fps", [("pq", "smpte2084", "PQ", 25), ("hlg", "arib-std-b67", "HLG", 50)])
def test_probe_hdr_ten_bit(clips, key, transfer, dynamic, fps):
    info = S.probe(clips[key])
    assert info.codec == "hevc" and info.profile == "Main 10"
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10
    assert info.color_primaries == "bt2020" and info.color_matrix == "bt2020nc"
    assert info.color_transfer == transfer and info.dynamic_range == dynamic
    assert info.fps == fps and info.frame_count == 12


def test_probe_agrees_with_ffprobe(clips):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                          "stream=codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt,color_transfer",
                          "-of", "json", str(clips["pq"])], capture_output=True, text=True, check=True)
    ff = json.loads(out.stdout)["streams"][0]
    info = S.probe(clips["pq"])
    assert ff["codec_name"] == info.codec
    assert (ff["width"], ff["height"]) == (info.width, info.height)
    assert Fraction(ff["r_frame_rate"]) == info.fps
    assert int(ff["nb_read_frames"]) == info.frame_count
    assert ff["pix_fmt"] == info.pix_fmt and ff["color_transfer"] == info.color_transfer


# ------------------------------------------------------------------------------------------ decode + trim

def decoded_indices(shot, **kw):
    return [read_code(f) for _, f in S.iter_frames(shot, **kw)]


def test_decode_gives_every_frame_in_order(clips):
    shot = S.open_shot(clips["h264"], detect_cuts=False)
    chunks = list(S.read_chunks(shot, chunk_frames=10))
    assert [len(c.frames) for c in chunks] == [10, 10, 10, 10, 8]
    assert [c.first for c in chunks] == [0, 10, 20, 30, 40]
    assert chunks[0].frames.dtype == np.uint8 and chunks[0].frames.shape[1:] == (96, 160, 3)
    assert decoded_indices(shot) == list(range(48))


@pytest.mark.parametrize("start,end,first,stop", [
    ("0.5", "1.5", 12, 36),          # seconds
    ("00:00:00:13", "40f", 13, 40),  # timecode and frame number
    ("00:01.25", None, 30, 48),      # clock time to the end
    ("#1", "2f", 1, 2),              # a single frame
    (None, "47f", 0, 47),
])
def test_trim_is_frame_exact(clips, start, end, first, stop):
    shot = S.open_shot(clips["h264"], start=start, end=end, detect_cuts=False)
    assert (shot.first, shot.stop, shot.frame_count) == (first, stop, stop - first)
    assert decoded_indices(shot) == list(range(first, stop))


def test_trim_at_ntsc_rate_after_seek(clips):
    # 1 s at 30000/1001 fps is frame 29.97 -> 30; the seek must not lose or repeat a frame.
    assert S.open_shot(clips["ntsc"], end="1", detect_cuts=False).stop == 30
    shot = S.open_shot(clips["ntsc"], start="0.5", detect_cuts=False)
    assert shot.first == 15
    assert decoded_indices(shot) == list(range(15, 30))


@pytest.mark.parametrize("start,end,message", [
    ("5", None, "--start 5 (frame 120) is outside the clip, which has 48 frames (00:02.00)"),
    (None, "3", "--end 3 (frame 72) is past the end of the clip, which has 48 frames"),
    ("1.5", "1", "--end 1 (frame 24) must come after --start 1.5 (frame 36)"),
    ("soon", None, "cannot read 'soon' as a time"),
])
def test_bad_trim_is_explained(clips, start, end, message):
    with pytest.raises(S.ShotError) as err:
        S.open_shot(clips["h264"], start=start, end=end, detect_cuts=False)
    assert message in str(err.value)
    assert str(clips["h264"]) in str(err.value)


def test_variable_frame_rate_is_normalised(clips):
    info = S.probe(clips["vfr"])
    assert info.vfr
    span_ms = clips["vfr_pts_ms"][-1] + 50  # last frame lasts one more step
    assert info.fps == Fraction(24)  # 30 frames over 1.2 s -> nearest common rate
    assert info.frame_count == round(Fraction(span_ms, 1000) * info.fps)
    shot = S.open_shot(clips["vfr"], detect_cuts=False)
    assert any("variable frame rate" in w and f"{info.frame_count} frames" in w for w in shot.warnings)
    got = decoded_indices(shot)
    assert len(got) == info.frame_count
    # Each output frame shows the latest source picture at or before its time (+ half a frame).
    pts = clips["vfr_pts_ms"]
    for i, idx in enumerate(got):
        t = Fraction(i) / info.fps + Fraction(1, 2) / info.fps
        expected = max(k for k, p in enumerate(pts) if Fraction(p, 1000) <= t)
        assert idx == expected, (i, idx, expected)


def test_rotation_is_applied_like_ffmpeg(clips):
    info = S.probe(clips["rot"])
    assert info.rotation == 90
    assert (info.width, info.height) == (96, 160) and (info.coded_width, info.coded_height) == (160, 96)
    ours = next(S.iter_frames(S.open_shot(clips["rot"], detect_cuts=False)))[1]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips["rot"]), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(ours.shape)  # ffmpeg autorotates by default
    assert np.abs(theirs.astype(int) - ours).mean() < 1.0


def test_working_geometry_pads_to_multiple_and_restores(clips):
    shot = S.open_shot(clips["h264"], detect_cuts=False)
    g = S.working_geometry(shot.width, shot.height, max_side=100, multiple=16)
    assert (g.scaled_width, g.scaled_height) == (100, 60)
    assert (g.width, g.height) == (112, 64) and g.width % 16 == 0 and g.height % 16 == 0
    chunk = next(S.read_chunks(shot, geometry=g, chunk_frames=4))
    assert chunk.frames.shape == (4, 64, 112, 3)
    restored = g.restore(chunk.frames)
    assert restored.shape == (4, 96, 160, 3)
    assert [read_code(f) for f in restored] == [0, 1, 2, 3]
    pts = np.array([[0.0, 0.0], [159.0, 95.0], [80.0, 48.0]])
    np.testing.assert_allclose(g.to_source(g.to_working(pts)), pts, atol=1e-9)


def test_linear_output_goes_through_ocio(clips):
    from ray32 import color

    shot = S.open_shot(clips["h264"], detect_cuts=False)
    lin = next(S.read_chunks(shot, output="linear", chunk_frames=2)).frames
    code = next(S.read_chunks(shot, chunk_frames=2)).frames
    assert lin.dtype == np.float32
    cpu = color.processor("Gamma 2.4 Encoded Rec.709", "Linear Rec.709 (sRGB)")
    expect = color.apply(cpu, code.astype(np.float32) / 255)
    np.testing.assert_allclose(lin, expect, atol=1e-5)
    assert 0.0 <= lin.min() and lin.max() <= 1.0


def test_cancel_stops_decoding(clips):
    shot = S.open_shot(clips["h264"], detect_cuts=False)
    seen = []
    for chunk in S.read_chunks(shot, chunk_frames=4, cancel=lambda: len(seen) >= 2):
        seen.append(chunk)
    assert len(seen) == 2


# ------------------------------------------------------------------------------------------ limits + cuts

def test_over_twenty_seconds_says_how_to_trim(tmp_path):
    path = write_clip(tmp_path / "long.mp4", frames=210, fps=Fraction(10), width=32, height=32)
    with pytest.raises(S.ShotError) as err:
        S.open_shot(path, detect_cuts=False)
    msg = str(err.value)
    assert "is 21.00 s long (210 frames)" in msg and "at most 20 s" in msg
    assert "--start 00:00.00 --end 00:20.00" in msg
    shot = S.open_shot(path, start="0.5", end="20.5", detect_cuts=False)
    assert shot.frame_count == 200


def test_cuts_inside_a_clip_are_listed(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 80, (72, 128, 3), dtype=np.uint8)
    b = rng.integers(150, 255, (72, 128, 3), dtype=np.uint8)
    imgs = [np.roll(a, i, axis=1) for i in range(20)] + [np.roll(b, i, axis=1) for i in range(16)]
    path = write_clip(tmp_path / "cut.mp4", width=128, height=72, images=imgs)
    shot = S.open_shot(path)
    assert [c.frame for c in shot.cuts] == [20]
    assert any("cut(s) inside the clip at 00:00:00:20" in w for w in shot.warnings)


def test_demo_shot_is_one_take_and_matches_its_truth(demo_shot):
    from ray32.demo_shot import DEMO_LABEL, load_truth

    shot = S.open_shot(demo_shot.path)
    truth = load_truth(demo_shot.truth_path)
    assert shot.cuts == () and shot.warnings == ()
    assert shot.frame_count == truth.frame_count == 72 and shot.fps == truth.fps
    assert truth.label_text == DEMO_LABEL
    assert shot.info.audio and shot.info.audio[0].channels == 2
    # The truth quad sits on the label (cream paper) and the product body around it is blue.
    import cv2

    for i, frame in S.iter_frames(shot):
        if i % 23:
            continue
        quad = truth.label_corners[i]
        centre = quad.mean(axis=0)
        inner = (quad - centre) * 0.5 + centre
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, np.round(inner).astype(np.int32), 1)
        paper = frame[mask.astype(bool)].mean(axis=0)
        assert paper.min() > 150, (i, paper)
        below = np.round(quad[[2, 3]].mean(axis=0) + [0, 25]).astype(int)
        r, g, b = frame[below[1], below[0]].astype(int)
        assert b > r + 40, (i, (r, g, b))
    # The camera really moves: the label's corners travel.
    assert np.linalg.norm(truth.label_corners[-1] - truth.label_corners[0], axis=1).min() > 20


def test_demo_face_box_matches_a_face_detector(demo_shot):
    import dlib

    from ray32.demo_shot import load_truth

    truth = load_truth(demo_shot.truth_path)
    detector = dlib.get_frontal_face_detector()
    shot = S.open_shot(demo_shot.path, detect_cuts=False)
    for i, frame in S.iter_frames(shot):
        if i not in (0, 71):
            continue
        faces = detector(frame, 0)
        assert len(faces) >= 1
        f = max(faces, key=lambda r: r.area())
        box = np.array([f.left(), f.top(), f.right(), f.bottom()], float)
        t = truth.face_boxes[i]
        ix = max(0, min(box[2], t[2]) - max(box[0], t[0])) * max(0, min(box[3], t[3]) - max(box[1], t[1]))
        union = (box[2] - box[0]) * (box[3] - box[1]) + (t[2] - t[0]) * (t[3] - t[1]) - ix
        assert ix / union > 0.6, (i, box, t)


def test_demo_shot_is_deterministic(tmp_path, demo_shot):
    from ray32.demo_shot import render_frames

    a = next(render_frames())
    b = next(render_frames())
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# ------------------------------------------------------------------------------------------ broken input

def _broken(tmp_path, clips, kind) -> Path:
    good = Path(clips["h264"]).read_bytes()
    p = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":          # index ('moov') at the end: it never got written
        p.write_bytes(good[: len(good) // 2])
    elif kind == "truncated_faststart":  # index at the front, media data cut short
        fs = write_clip(tmp_path / "fs.mp4", frames=48, faststart=True)
        data = fs.read_bytes()
        p.write_bytes(data[: int(len(data) * 0.6)])
    elif kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("this is a shot list, not a shot\n" * 40)
    elif kind == "audio_only":
        import av

        p = tmp_path / "voice.m4a"
        with av.open(str(p), "w") as c:
            a = c.add_stream("aac", rate=48000)
            for k in range(0, 48000, 1024):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, k
                for pk in a.encode(af):
                    c.mux(pk)
            for pk in a.encode():
                c.mux(pk)
    elif kind == "corrupt":            # damage inside frame 24's packet
        import av

        src = write_clip(tmp_path / "noisy.mp4", frames=48,
                         images=(np.random.default_rng(i).integers(0, 255, (96, 160, 3), dtype=np.uint8)
                                 for i in range(48)))
        with av.open(str(src)) as c:
            packets = sorted((pk.pts, pk.pos, pk.size) for pk in c.demux(video=0) if pk.size)
        _, pos, size = packets[24]
        data = bytearray(src.read_bytes())
        for k in range(pos + 20, pos + size - 8, 7):
            data[k] = (data[k] * 37 + 11) & 255
        p.write_bytes(bytes(data))
    elif kind == "missing":
        p = tmp_path / "nowhere.mp4"
    return p


@pytest.mark.parametrize("kind,message", [
    ("empty", "is empty (0 bytes)"),
    ("truncated", "is truncated"),
    ("truncated_faststart", "is truncated"),
    ("text", "is not a video FFmpeg can read"),
    ("audio_only", "has no video stream (audio only)"),
    ("missing", "does not exist"),
])
def test_broken_input_raises_one_clear_error(tmp_path, clips, kind, message):
    path = _broken(tmp_path, clips, kind)
    with pytest.raises(S.ShotError) as err:
        shot = S.open_shot(path, detect_cuts=False)
        for _ in S.read_chunks(shot):
            pass
    assert message in str(err.value)
    assert str(err.value).startswith(str(path))


def test_corrupt_frame_mid_stream_names_the_frame(tmp_path, clips):
    path = _broken(tmp_path, clips, "corrupt")
    shot = S.open_shot(path, detect_cuts=False)  # the packet index is intact: probing succeeds
    assert shot.frame_count == 48
    with pytest.raises(S.ShotError) as err:
        for _ in S.read_chunks(shot):
            pass
    assert err.value.frame == 24
    assert "a frame is corrupt" in str(err.value) and "at frame 24 (00:01.00)" in str(err.value)


@pytest.mark.parametrize("kind,message", [("truncated", "is truncated"), ("audio_only", "audio only"),
                                          ("corrupt", "at frame 24")])
def test_cli_prints_the_message_not_a_traceback(tmp_path, clips, kind, message):
    path = _broken(tmp_path, clips, kind)
    r = subprocess.run([sys.executable, "-m", "flows.cli", "probe", str(path)], capture_output=True, text=True,
                       cwd=Path(__file__).parent.parent, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "av.error" not in r.stderr
    assert r.stderr.startswith("ray32: error: ") and message in r.stderr
    assert r.stdout == ""


def test_cli_probe_table_and_json(clips):
    root = Path(__file__).parent.parent
    r = subprocess.run([sys.executable, "-m", "flows.cli", "probe", str(clips["ntsc"])], capture_output=True,
                       text=True, cwd=root, check=True, timeout=120)
    assert "frame rate     30000/1001 (29.970)" in r.stdout and "frames         30" in r.stdout
    assert "cuts           none (one take)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "flows.cli", "probe", "--json", "--start", "10f", str(clips["h264"])],
                       capture_output=True, text=True, cwd=root, check=True, timeout=120)
    d = json.loads(r.stdout)
    assert d["fps"] == "24" and d["frame_count"] == 48 and d["trim"]["frame_count"] == 38
    assert d["audio"][0]["codec"] == "aac" and d["within_limits"] is True
