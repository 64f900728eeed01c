"""The source's audio in the video deliverables, on real footage, read back with FFmpeg.

Megamind.avi carries AC-3 whose first packet is cut short (729 of 768 bytes): FFmpeg's decoder refuses it. Renders
and exports of that clip used to fail in the audio pass ("Invalid data found when processing input"). Now a
packet the decoder refuses is silence of its own length and everything else keeps its place: the output's audio
must be the source's samples from the trim's time (as FFmpeg decodes them and cuts them with ``-ss``), as long
as the video.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from footage_util import FOOTAGE

MEGAMIND = FOOTAGE / "Megamind.avi"
RATE = 48_000
SYNC = 0.002  # seconds: the audio may sit this far from where the source has it (timestamp jitter, JITTER)


def probe(path: Path) -> dict[str, dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(path)], capture_output=True,
                         text=True, check=True)
    result = {}
    for s in json.loads(out.stdout)["streams"]:
        result.setdefault(s["codec_type"], s)
    return result


def first_video_time(path: Path) -> Fraction:
    """When FFmpeg shows the source's first video frame on the timeline it shares with the audio (Megamind.avi:
    frame pts 1 of 125/2997 s, 0.0417 s)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-frames:v", "1", "-c:v",
                          "rawvideo", "-s", "16x16", "-f", "framecrc", "-"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    tb = next(line.split(":", 1)[1] for line in out if line.startswith("#tb 0:"))
    pts = int(next(line for line in out if not line.startswith("#")).split(",")[2])
    return pts * Fraction(tb.strip())


def pcm(path: Path, *before: str, after: tuple[str, ...] = ()) -> np.ndarray:
    """The first audio stream as float stereo at 48 kHz, decoded by FFmpeg: (samples, 2)."""
    out = subprocess.run(["ffmpeg", "-v", "error", *before, "-i", str(path), *after, "-map", "0:a:0", "-ac", "2",
                          "-ar", str(RATE), "-f", "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(out.stdout, np.float32).reshape(-1, 2)


def best_lag(out: np.ndarray, ref: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag, correlation) maximising the normalised correlation of out[i] with ref[i + lag], both channels."""
    n = min(len(out), len(ref) - max_lag) - max_lag
    a = out[max_lag:max_lag + n].ravel()
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        b = ref[max_lag + lag:max_lag + lag + n].ravel()
        c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        if c > best[1]:
            best = (lag, c)
    return best


def assert_source_audio(src: Path, out: Path, start_frame: int, *, min_corr: float) -> None:
    """``out`` has audio as long as its video (within one frame), starting with it, holding the source's samples
    from the trim's time: the best alignment with FFmpeg's ``-ss`` cut is within SYNC, and it correlates."""
    s = probe(out)
    assert "audio" in s, f"{out.name} has no audio stream"
    v, a = s["video"], s["audio"]
    fps = Fraction(v["r_frame_rate"])
    assert abs(float(a["duration"]) - float(v["duration"])) <= 1 / fps
    assert float(a["start_time"]) == pytest.approx(float(v["start_time"]), abs=1e-3)
    t = first_video_time(src) + start_frame / fps
    ref = pcm(src, after=("-ss", f"{float(t):.6f}"))  # output-side -ss: decode from the top, cut at the exact time
    got = pcm(out)
    lag, corr = best_lag(got, ref, max_lag=RATE // 10)
    assert abs(lag) <= SYNC * RATE, f"{out.name}: audio is {lag / RATE * 1000:+.1f} ms off the source (corr {corr:.4f})"
    assert corr >= min_corr, f"{out.name}: audio correlates {corr:.4f} with the source's at its best lag {lag}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_render_of_megamind_trimmed_at_frame_2_keeps_its_ac3_audio_in_sync(tmp_path, cache):
    """The user's case: a lighting-only render of Megamind.avi from frame 2, through the command line."""
    from flows.cli import main

    assert main(["render", str(MEGAMIND), "--grade", "temperature=5200,exposure=0.2", "--start", "2f", "--end",
                 "12f", "--out", "draft,prores", "--out-dir", str(tmp_path), "--cache-dir", str(cache)]) == 0
    assert_source_audio(MEGAMIND, tmp_path / "Megamind_composite_prores.mov", 2, min_corr=0.999)  # PCM: exact
    assert_source_audio(MEGAMIND, tmp_path / "Megamind_composite_draft.mp4", 2, min_corr=0.99)    # AAC


@pytest.mark.parametrize("start,end", [(0, 8), (20, 28), (48, 56), (262, 270)],
                         ids=["from-0", "before-1s", "seek-2s", "to-the-end"])
def test_export_of_megamind_keeps_its_audio_for_other_trims(tmp_path, start, end):
    """From the first frame, inside the first second (decoded from the top), later (the decoder seeks first) and
    up to the clip's last frame."""
    from flows.cli import main

    assert main(["export", str(MEGAMIND), "--to", "prores", "--out", str(tmp_path), "--start", f"{start}f",
                 "--end", f"{end}f"]) == 0
    assert_source_audio(MEGAMIND, tmp_path / "Megamind_prores.mov", start, min_corr=0.999)


def noise_clip(path: Path) -> Path:
    """2 s of 64x48 video (MPEG-4) with stereo noise as AC-3 in an AVI."""
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=24:duration=2", "-f",
                    "lavfi", "-i", "anoisesrc=d=2:r=48000:amplitude=0.5:seed=1,aformat=channel_layouts=stereo",
                    "-c:v", "mpeg4", "-c:a", "ac3", "-b:a", "192k", str(path)], check=True)
    return path


def zero_audio_packets(src: Path, dest: Path, which=lambda t: True) -> Path:
    """A copy of ``src`` with the bytes of every audio packet whose time ``which`` accepts set to zero."""
    packets = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-select_streams", "a",
                                         "-show_entries", "packet=pts_time,pos,size", "-show_packets", str(src)],
                                        capture_output=True, text=True, check=True).stdout)["packets"]
    data = bytearray(src.read_bytes())
    hits = [p for p in packets if which(float(p["pts_time"]))]
    assert hits
    for p in hits:
        data[int(p["pos"]):int(p["pos"]) + int(p["size"])] = bytes(int(p["size"]))
    dest.write_bytes(bytes(data))
    return dest


def test_an_undecodable_packet_inside_the_span_is_silence_and_the_rest_stays_in_sync(tmp_path):
    """A 2 s clip with AC-3 noise; one audio packet at 0.96 s is zeroed (FFmpeg's decoder refuses it). A trim from
    0.5 s keeps every other sample where the clean clip has it: the refused span is silent, nothing is shifted."""
    from flows.cli import main

    clean = noise_clip(tmp_path / "clean.avi")
    broken = zero_audio_packets(clean, tmp_path / "broken.avi", lambda t: t == pytest.approx(0.96))

    assert main(["export", str(broken), "--to", "prores", "--out", str(tmp_path / "out"), "--start", "12f"]) == 0
    out = tmp_path / "out" / "broken_prores.mov"
    s = probe(out)
    assert float(s["audio"]["duration"]) == pytest.approx(float(s["video"]["duration"]), abs=1 / 24)
    got = pcm(out)
    ref = pcm(clean, after=("-ss", f"{float(first_video_time(clean) + Fraction(1, 2)):.6f}"))
    zeroed = round((0.96 - 0.5) * RATE)  # where the zeroed packet's samples go in the output
    silent = np.flatnonzero(np.abs(got).max(axis=1) == 0)
    assert len(silent), "no silence where the refused packet was: the audio after it has moved up"
    lo, hi = silent.min(), silent.max() + 1
    # FFmpeg's AC-3 parser hands the zeroed bytes to the decoder with the frame before (no sync word of their
    # own), so the decoder refuses that 1536-byte packet: two AC-3 frames (2 x 1536 samples) are silent.
    assert len(silent) == hi - lo, "the silence is not one run"
    assert lo <= zeroed and hi >= zeroed + 1536 and hi - lo <= 2 * 1536 and (lo - zeroed) % 1536 == 0, (lo, hi)
    after = hi + 1536  # the frame after a refused one decodes without its overlap: left out
    assert best_lag(got[:lo], ref[:lo], max_lag=200) == (0, pytest.approx(1.0, abs=1e-4))
    assert best_lag(got[after:], ref[after:len(got)], max_lag=200) == (0, pytest.approx(1.0, abs=1e-4))


def test_audio_that_decodes_nowhere_is_a_clear_error(tmp_path, capsys):
    """Every audio packet zeroed: the export stops with status 2 naming the file and what to do, writes nothing."""
    from flows.cli import main

    dead = zero_audio_packets(noise_clip(tmp_path / "clean.avi"), tmp_path / "dead.avi")
    assert main(["export", str(dead), "--to", "draft,prores", "--out", str(tmp_path / "out"), "--start", "12f"]) == 2
    err = capsys.readouterr().err
    assert f"{dead}: its audio could not be decoded" in err and "or drop it: ffmpeg -i" in err, err
    assert "Traceback" not in err and not list((tmp_path / "out").glob("*"))
