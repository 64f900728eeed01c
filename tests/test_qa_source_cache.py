"""QA's source-side measurements are made once per shot and kept on disk next to the prepared shot: a second
measure (a new process: a fresh in-memory cache) reads them back and measures the same numbers, and a changed
shot (another trim, another place for the label) gets an entry of its own."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from footage_util import artwork, facts_for, open_trim, render, request
from qa.metrics import measure

FRAMES = 12


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    root = tmp_path_factory.mktemp("srccache")
    shot = open_trim(frames=FRAMES)
    req = request(artwork(root, ("AQUA", "0,5 l"), "right"), "AQUA\n0,5 l")
    path, prep = render(shot, req, root, "v", cache_dir=root / "prep")
    return shot, path, prep, facts_for(req, "v"), root


def _measure(variant, folder, shot=None, track=None):
    s, path, prep, facts, _ = variant
    return measure(shot or s, path, facts, label_track=track or prep.label_track, samples=2, cache={},
                   source_cache=folder)


def test_source_cache_is_written_read_back_and_used(variant):
    folder = variant[4] / "qa1"
    first = _measure(variant, folder)
    files = list(folder.glob("qa-source-*.pkl"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    assert "source cache write" in first.timings
    again = _measure(variant, folder)  # a fresh in-memory cache: what a second process sees
    assert "source cache write" not in again.timings  # nothing new to write: everything came from disk
    assert files[0].stat().st_mtime_ns == stamp
    assert again.summary.keys() == first.summary.keys()
    for k, v in first.summary.items():
        assert (v != v and again.summary[k] != again.summary[k]) or v == again.summary[k], k
    pd.testing.assert_frame_equal(first.frames.drop(columns=["ocr_text", "ref_text"], errors="ignore"),
                                  again.frames.drop(columns=["ocr_text", "ref_text"], errors="ignore"))
    # The numbers really come from the file: a source warp residual planted there is what QA reports.
    data = pickle.loads(files[0].read_bytes())
    warp = [k for k in data if isinstance(k, tuple) and k[0] == "src_warp"]
    assert warp
    for k in warp:
        data[k] = 77.0
    files[0].write_bytes(pickle.dumps(data))
    planted = _measure(variant, folder)
    assert planted.summary["source_warp_noise"] == pytest.approx(77.0)
    assert first.summary["source_warp_noise"] < 20


def test_a_changed_shot_gets_a_new_entry(variant):
    folder = variant[4] / "qa2"
    base = _measure(variant, folder)
    assert len(list(folder.glob("qa-source-*.pkl"))) == 1
    shorter = open_trim(frames=FRAMES - 1)  # another trim of the same file
    _measure(variant, folder, shot=shorter)
    assert len(list(folder.glob("qa-source-*.pkl"))) == 2
    prep = variant[2]
    moved = {i: np.asarray(q) + 3.0 for i, q in enumerate(prep.label_track.corners)}  # the label elsewhere
    other = _measure(variant, folder, track=moved)
    assert len(list(folder.glob("qa-source-*.pkl"))) == 3
    assert other.summary["source_warp_noise"] != base.summary["source_warp_noise"] or \
        other.summary["source_edge_noise"] != base.summary["source_edge_noise"]


def test_a_new_entry_inside_a_nested_dict_is_written(tmp_path):
    """What a variant adds inside the cache's nested dicts (the graded source's faces, one set per grade) is
    written too, so the next process with that grade reuses it: only a new top-level entry or a new source face
    used to count as something new to write."""
    from fractions import Fraction

    from qa.checks.base import Check, CheckResult, frame_table
    from qa.facts import Facts
    from qa.metrics import measure_frames

    def fill(batch):
        grade = repr(sorted(batch.clip.grade.items()))
        batch.clip.cache.setdefault("graded_faces", {}).setdefault((grade, 0), ("face", grade))
        return frame_table([], [])

    check = Check(name="nested", needs=frozenset({"frames"}), metrics=(), measure=fill,
                  finish=lambda t, c: CheckResult("nested", t, {}))
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 48, 3), np.uint8)
    folder = tmp_path / "cache"

    def run(grade):
        facts = Facts(variant=f"v-{grade}", grade={"exposure": grade})
        return measure_frames([frames], [frames], facts, fps=Fraction(24), source_count=4, output_count=4,
                              checks=[check], cache={}, source_cache=folder, source_key="shot", parallel=False)

    run(0.5)
    run(-0.5)  # a fresh in-memory cache: what a second process with another grade sees
    (path,) = folder.glob("qa-source-*.pkl")
    graded = pickle.loads(path.read_bytes())["graded_faces"]
    assert sorted(v[1] for v in graded.values()) == sorted([repr([("exposure", 0.5)]), repr([("exposure", -0.5)])])


def test_the_source_side_pass_leaves_a_variants_qa_nothing_to_measure_of_the_source(variant):
    """``measure_source`` (the campaign run's prepare step) makes every source-side measurement a variant's QA
    needs: the QA after it writes nothing to the cache and measures the same numbers as a QA without it; a second
    pass finds the measurements and measures nothing."""
    from qa.metrics import measure_source

    s, path, prep, facts, root = variant
    without = _measure(variant, root / "qa-nopass")
    folder = root / "qa-pass"
    cache: dict = {}
    done = measure_source(s, facts, label_track=prep.label_track, samples=2, cache=cache, source_cache=folder)
    assert done["measured"] and done["entries"] > 0
    assert len(list(folder.glob("qa-source-*.pkl"))) == 1
    after = measure(s, path, facts, label_track=prep.label_track, samples=2, cache=cache, source_cache=folder)
    assert "source cache write" not in after.timings  # nothing of the source was left to measure
    for k, v in without.summary.items():
        assert (v != v and after.summary[k] != after.summary[k]) or v == after.summary[k], k
    pd.testing.assert_frame_equal(without.frames, after.frames)
    file = next(folder.glob("qa-source-*.pkl"))
    stamp = file.stat().st_mtime_ns
    # a new process: the disk's measurements are read, not made again (only the swapped label, kept in memory)
    again = measure_source(s, facts, label_track=prep.label_track, samples=2, cache={}, source_cache=folder)
    assert again["entries"] == done["entries"] and file.stat().st_mtime_ns == stamp
    # this process again (a resumed run): nothing new at all
    assert not measure_source(s, facts, label_track=prep.label_track, samples=2, cache=cache,
                              source_cache=folder)["measured"]


def test_the_swapped_label_is_kept_for_the_markets_next_variant_and_used(variant):
    """The label check's reference crops with the artwork swapped in are kept in the process's cache for the
    market's next variant (another grade): it measures the same numbers with them, and they are what it uses."""
    s, path, prep, facts, root = variant
    cache: dict = {}

    def qa():
        return measure(s, path, facts, label_track=prep.label_track, samples=2, cache=cache)

    first = qa()
    swaps = [v for k, v in cache.items() if k[0] == "qa-swaps"]
    assert len(swaps) == 1 and len(swaps[0]) == first.summary["label_frames"] > 0
    assert swaps[0].nbytes == sum(v.nbytes for v in swaps[0].values())
    again = qa()
    cols = [c for c in first.frames if c.startswith("label_") or c in ("drift_px", "artwork_similarity")]
    pd.testing.assert_frame_equal(first.frames[cols], again.frames[cols])
    # the market's next variant under another grade: the kept (ungraded) crops graded its way, as a fresh QA does
    from footage_util import LIGHTING

    graded = facts.model_copy(update={"grade": LIGHTING["golden"]})
    kept = measure(s, path, graded, label_track=prep.label_track, samples=2, cache=cache)
    fresh = measure(s, path, graded, label_track=prep.label_track, samples=2, cache={})
    pd.testing.assert_frame_equal(fresh.frames[cols], kept.frames[cols])
    assert not fresh.frames[cols].equals(first.frames[cols])  # the grade changed the reference
    for k in swaps[0]:  # planted: a black label in every kept crop
        swaps[0][k] = np.zeros_like(swaps[0][k])
    planted = qa()
    assert first.summary["label_similarity_min"] > 0.8
    assert planted.summary["label_similarity_min"] < 0.5


def test_the_swap_cache_keeps_no_more_than_its_budget_for_the_whole_process(monkeypatch):
    """One budget for every shot's and market's swapped labels in a process: a new market's crops empty the least
    recently filled market's first; a collected cache gives its bytes back."""
    import gc

    import qa.metrics as qm

    monkeypatch.setattr(qm, "SWAP_CACHE_MB", 1)
    a, b = qm.Swaps(), qm.Swaps()
    for i in range(3):
        a.put(i, np.zeros((300, 300, 3), np.uint8))  # 0.26 MB each
    assert len(a) == 3 and qm.Swaps.total <= 2**20
    for i in range(3):
        b.put(i, np.zeros((300, 300, 3), np.uint8))
    assert len(b) == 3 and len(a) == 0 and qm.Swaps.total == b.nbytes
    a.put(9, np.zeros((2000, 2000, 3), np.uint8))  # larger than the whole budget: not kept
    assert 9 not in a
    del b
    gc.collect()
    assert qm.Swaps.total == 0
def test_the_source_side_pass_covers_every_grade_and_market_of_the_run(variant):
    """Given the facts of every variant to be QA'd (the campaign run's prepare step), the pass also makes what a
    grade or a market adds -- the graded source's faces, the market's swapped label and its match where the track
    is lost -- so another market's variant under another grade measures nothing of the source either, and
    ``flows.pipeline.source_side_variants`` picks one variant per grade and artwork for it."""
    from flows.pipeline import source_side_variants
    from footage_util import LIGHTING
    from qa.metrics import measure_source

    s, path, prep, facts, root = variant
    req_us = request(artwork(root, ("AQUA", "0,33 l"), "us"), "AQUA\n0,33 l", grade=LIGHTING["overcast"])
    path_us, _ = render(s, req_us, root, "us", cache_dir=root / "prep")
    facts_us = facts_for(req_us, "us")
    folder, cache = root / "qa-every", {}
    done = measure_source(s, [facts, facts_us], label_track=prep.label_track, samples=2, cache=cache,
                          source_cache=folder)
    assert done["passes"] == 2
    assert len([k for k in cache if k[0] == "qa-swaps"]) == 2  # one per market
    after = measure(s, path_us, facts_us, label_track=prep.label_track, samples=2, cache=cache,
                    source_cache=folder)
    assert "source cache write" not in after.timings
    alone = measure(s, path_us, facts_us, label_track=prep.label_track, samples=2, cache={})
    pd.testing.assert_frame_equal(alone.frames, after.frames)

    def v(grade, art, n):
        return {"slug": n, "request": {"grade": grade, "label_swap": {"artwork": art, "text": "x"}}}

    many = [v(g, a, f"{g}-{a}-{k}") for k in range(3) for g in ("warm", "cold") for a in ("de", "us", "fr")]
    assert [x["slug"] for x in source_side_variants(many)] == [f"{g}-{a}-0" for g in ("warm", "cold")
                                                               for a in ("de", "us", "fr")]


def test_a_short_sources_frames_are_decoded_once_and_held_for_the_next_variants(variant, monkeypatch):
    """A source that fits ``SOURCE_FRAMES_MB`` is decoded once per process: the next variant's QA measures the held
    frames (read-only), with the same numbers; a source too large is decoded every time."""
    import qa.metrics as qm

    s, path, prep, facts, root = variant

    def qa():
        return measure(s, path, facts, label_track=prep.label_track, samples=2, cache={})

    monkeypatch.setattr(qm, "_held", {})
    first = qa()
    held = qm._held.get("chunks")
    assert held and sum(len(c.frames) for c in held) == s.frame_count
    assert not held[0].frames.flags.writeable
    again = qa()
    pd.testing.assert_frame_equal(first.frames, again.frames)
    # planted: the held frames are what the next QA measures (a source 60 grey levels brighter: the output no
    # longer matches it)
    for c in held:
        c.frames = np.clip(c.frames.astype(int) + 60, 0, 255).astype(np.uint8)
    planted = qa()
    assert planted.summary["colour_shift_max"] > 3 * first.summary["colour_shift_max"]
    monkeypatch.setattr(qm, "_held", {})
    monkeypatch.setattr(qm, "SOURCE_FRAMES_MB", 1)
    qa()
    assert qm._held == {}  # too large to hold: decoded again next time
