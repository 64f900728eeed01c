"""QA in two threads measures exactly what QA on one thread does (issue 11, item 8: the speed comes from running
the next batch's decoding, reference and flows beside the checks, and the label's checks beside the whole-frame
checks, not from measuring less), errors in either thread reach the caller, and the masked means that replaced
gathering the judged pixels agree with numpy. The speed itself is measured by ``bench/qa_speed.py``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from qa.checks.base import Check
from qa.checks.geometry import masked_mean, masked_share
from qa.facts import Facts
from qa.metrics import measure_frames
from qa.registry import CHECKS
from tests.footage_util import LIGHTING
from tests.qa_data import MARKET, build, frames

N = 14


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = build(tmp_path_factory.getbasetemp() / "qa_demo")
    d["src"], d["out"] = frames(d["source"])[:N], frames(d["good"])[:N]
    d["art"] = np.asarray(Image.open(d["artwork"]).convert("RGB"))
    return d


def _run(d, out, parallel, checks=CHECKS, source=None):
    facts = Facts(variant="t", label={"text": " ".join(MARKET), "track": None}, grade=LIGHTING["golden"])
    return measure_frames(source if source is not None else [d["src"]], out if isinstance(out, list) else [out],
                          facts, fps=Fraction(24),
                          source_count=N, output_count=N, label_track={i: d["track"][i] for i in range(N)},
                          artwork=d["art"], samples=3, chunk_frames=4, parallel=parallel, checks=checks)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_two_threads_measure_exactly_what_one_does(data):
    # a flicker on frames 6-7 (inside the third batch of 4) so that the figures are not all quiet
    out = data["out"].copy()
    out[6:8] = np.clip(out[6:8].astype(int) + 18, 0, 255).astype(np.uint8)
    one, two = _run(data, out, False), _run(data, out, True)
    assert one.summary.keys() == two.summary.keys()
    assert [k for k in one.summary if not _same(one.summary[k], two.summary[k])] == []
    assert one.frames.equals(two.frames)
    assert one.thumbs == two.thumbs and one.notes == two.notes
    assert one.summary["flicker_max"] > 5           # the flicker was measured, on both
    assert one.summary["label_frames"] == N         # every frame's label judged
    assert "label" in two.cpu_timings and "decode+reference" in two.timings


def test_batches_taken_across_decoded_chunks_are_views_and_measure_what_whole_chunks_do(data):
    """At 1080p a clip is decoded in chunks smaller than a batch (``decode_chunk``): the batch's full-size frames
    are views of those chunks (``FrameSeq``, no copy) and the numbers are those of whole batches."""
    from qa.metrics import FrameSeq, _Frames

    src, out = data["src"], data["out"]
    taken = _Frames([src[0:3], src[3:6]]).take(4)
    assert isinstance(taken, FrameSeq) and taken.shape == (4, *src.shape[1:])
    assert all(np.shares_memory(f, src) for f in taken) and np.array_equal(np.stack(taken), src[:4])
    whole = _run(data, out, False)
    split = _run(data, [out[i:i + 5] for i in range(0, N, 5)], True, source=[src[i:i + 3] for i in range(0, N, 3)])
    assert [k for k in whole.summary if not _same(whole.summary[k], split.summary[k])] == []
    assert whole.frames.equals(split.frames) and whole.thumbs == split.thumbs


def _boom(batch):
    raise RuntimeError("check exploded")


BOOM = Check(name="boom", needs=frozenset({"frames"}), metrics=(), finish=lambda t, c: None, measure=_boom)


@pytest.mark.parametrize("parallel", [False, True])
def test_an_error_in_a_check_or_in_decoding_reaches_the_caller(data, parallel):
    with pytest.raises(RuntimeError, match="check exploded"):   # a whole-frame check: the second thread
        _run(data, data["out"], parallel, checks=(*CHECKS, BOOM))

    def broken():
        yield data["src"][:4]
        raise OSError("source went away")

    with pytest.raises(OSError, match="source went away"):      # decoding: the batch thread
        _run(data, data["out"], parallel, source=broken())


def test_masked_means_agree_with_numpy():
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = rng.integers(20, 300, 2)
        g = rng.integers(0, 256, (h, w), dtype=np.uint8)
        keep = rng.random((h, w)) > rng.random()
        if not keep.any():
            continue
        assert masked_mean(g, keep) == float(g[keep].mean())                   # exact for uint8
        assert masked_share(g > 200, keep) == float((g > 200)[keep].mean())    # exact
        f = (rng.random((h, w)) * 40).astype(np.float32)
        assert masked_mean(f, keep) == pytest.approx(float(f[keep].mean()), rel=1e-6)
    assert math.isnan(masked_mean(g, np.zeros_like(keep))) and math.isnan(masked_share(g > 0, np.zeros_like(keep)))


def test_only_whole_clip_checks_chosen_runs_on_two_threads_too(data):
    """No streamed check selected (timing alone): the two-thread path has no group of checks to run per batch."""
    from qa.checks import timing

    one = _run(data, data["out"], False, checks=(timing.CHECK,))
    two = _run(data, data["out"], True, checks=(timing.CHECK,))
    assert one.summary == two.summary and two.summary["frame_count_delta"] == 0


def test_a_variant_qa_pickled_before_newer_fields_loads_with_their_defaults(data):
    """A render's QA file in the cache, pickled by an older version (no label_reads, no cpu_timings), loads and
    renders in the report."""
    import pickle

    from qa.expectations import verdicts
    from qa.report import render_report

    qa = _run(data, data["out"], False)
    state = dict(qa.__dict__)
    del state["label_reads"], state["cpu_timings"]
    old = object.__new__(type(qa))
    old.__dict__.update(state)
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.label_reads == {} and loaded.cpu_timings == {}
    assert "label_reads={}" in repr(loaded)                     # repr reads every field
    assert "data-variant=\"t\"" in render_report([loaded], verdicts([loaded]))


def test_checks_are_balanced_between_the_two_threads_by_their_last_cost():
    from qa.metrics import balanced

    checks = [c for c in CHECKS if c.streamed]
    took = {c.name: 0.01 for c in checks}
    took["label"] = 0.5  # one check costlier than all the others together: alone in its group
    groups = balanced(checks, took)
    assert len(groups) == 2
    assert sorted(c.name for g in groups for c in g) == sorted(c.name for c in checks)  # each once
    assert [c.name for c in groups[0]] == ["label"]
    took = {c.name: 0.1 for c in checks}  # equal costs: groups differ by at most one check
    a, b = balanced(checks, took)
    assert abs(len(a) - len(b)) <= 1


def test_flow_lengths_are_in_px_at_the_calibrated_size_whatever_the_analysis_size():
    """The motion check's px bounds were calibrated with flow at 512 px: flow measured at another analysis size
    is reported in px at 512 (a 640x480 clip at 256 px: 2 px at 512 per px measured)."""
    from qa.checks.base import Clip
    from qa.checks.motion import PX_SIDE, px_unit

    clip = Clip(facts=Facts(variant="x"), fps=Fraction(24), output_fps=Fraction(24), source_count=2, output_count=2)
    clip.full_size, clip.analysis_size = (640, 480), (256, 192)
    assert PX_SIDE == 512 and px_unit(clip) == pytest.approx(2.0)
    clip.analysis_size = (512, 384)
    assert px_unit(clip) == pytest.approx(1.0)
    clip.full_size, clip.analysis_size = (320, 240), (256, 192)  # never enlarged: 320 px is the calibrated size
    assert px_unit(clip) == pytest.approx(320 / 256)


def test_the_ocr_thread_reads_what_reading_at_the_end_reads(data, monkeypatch):
    """With two threads and the OCR engine built (a campaign worker's case), the intended label's first full read
    and the sampled frames' reads of the output at its lines run in the OCR thread while the frames are measured;
    the texts and figures are those read at the end on one thread, a wrong market's label included (its reading
    must not stand in for the intended one's)."""
    import threading

    import qa.checks.label as label
    from qa.ocr import _engine

    _engine()
    wrong = frames(data["wrong"])[:N]
    ahead, real = [], label._read_ahead

    def read_ahead(*args):
        ahead.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(label, "_read_ahead", read_ahead)
    one = _run(data, wrong, False)
    assert ahead == []
    two = _run(data, wrong, True)
    assert "label.ocr thread" in two.cpu_timings and "label.ocr thread" not in one.cpu_timings
    assert len(ahead) >= 2 and all(name.startswith("qa-ocr") for name in ahead)
    assert [k for k in one.summary if not _same(one.summary[k], two.summary[k])] == []
    assert one.frames.equals(two.frames)
    assert two.summary["label_text_wrong_frames"] >= 1 and two.frames.loc[0, "text_match"] is False
    assert two.frames.loc[0, "ref_text"].startswith("AQUA") and not two.frames.loc[0, "ocr_text"].startswith("AQUA")


def test_a_failed_read_in_the_ocr_thread_is_read_again_at_the_end(data, monkeypatch):
    """An error in the OCR thread (the intended label's read, or a sampled frame's) does not fail QA: the frame
    is read at the end instead, and the texts are those of one thread."""
    import qa.checks.label as label
    from qa.ocr import _engine

    _engine()
    wrong = frames(data["wrong"])[:N]
    one = _run(data, wrong, False)
    real = label._read_ahead

    def broken(*args):
        raise RuntimeError("ONNX Runtime failed")

    monkeypatch.setattr(label, "_read_ahead", broken)
    two = _run(data, wrong, True)
    assert one.frames.equals(two.frames)
    monkeypatch.setattr(label, "_read_ahead", real)
    monkeypatch.setattr(label, "_timed", lambda fn, *a: (_ for _ in ()).throw(RuntimeError("ONNX Runtime failed")))
    three = _run(data, wrong, True)
    assert one.frames.equals(three.frames)


@pytest.mark.parametrize("parallel", [False, True])
def test_a_damaged_output_fails_qa_with_the_decoders_error_and_stops_its_threads(tmp_path, parallel):
    """With each clip decoded ahead in a thread of its own, a decoding error in the output still reaches the
    caller as the clip's error (which file, which frame), and no QA thread is left running."""
    import threading

    from qa.metrics import measure
    from ray32.shot import ShotError
    from tests.clips import write_clip

    src, out = tmp_path / "src.mp4", tmp_path / "out.mp4"
    write_clip(src, frames=48)
    write_clip(out, frames=48)
    data = bytearray(out.read_bytes())  # the middle fifth of the file overwritten: decoding fails part-way
    n = len(data)
    data[n * 2 // 5:n * 3 // 5] = np.random.default_rng(0).integers(0, 256, n * 3 // 5 - n * 2 // 5, np.uint8).tobytes()
    out.write_bytes(bytes(data))
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ShotError) as err:
        measure(src, out, Facts(variant="x"), parallel=parallel)
    assert "out.mp4" in str(err.value) and "frame" in str(err.value)
    left = {t.name for t in threading.enumerate()} - before
    assert not [n for n in left if n.startswith("qa-")]


def test_the_thread_ahead_answers_again_after_its_end_or_error_without_waiting():
    """Asking a finished (or failed) run-ahead iterator again gives the same end (or error) at once: a caller that
    takes once more must not block the batch thread forever."""
    from qa.metrics import _Ahead

    a = _Ahead(iter([1, 2]))
    assert list(a) == [1, 2]
    assert next(a, "end") == "end" and next(a, "end") == "end"
    a.close()

    def failing():
        yield 1
        raise ValueError("damaged")

    b = _Ahead(failing())
    assert next(b) == 1
    for _ in range(2):
        with pytest.raises(ValueError):
            next(b)
    b.close()
