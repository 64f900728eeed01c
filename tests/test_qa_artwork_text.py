"""Is the market given the right artwork? ``label_artwork_text_wrong`` compares what the artwork reads with the
market's label text. On a small dark label OCR can lose a line of the artwork through the product's
rectification (vtest.avi's window label under the neon preset reads 'AQUA' without '0,5 l'): the artwork file
itself, read at its own size, then decides, so a clean variant passes while a market given another artwork
still fails with the artwork's reading in the reason."""

from __future__ import annotations

import numpy as np
import pytest

from footage_util import FOOTAGE, LIGHTING, artwork, facts_for, open_trim, render, request
from qa.expectations import verdicts
from qa.metrics import measure
from qa.ocr import fold_confusables

VTEST_LABEL = [[330.0, 8.0], [450.0, 8.0], [450.0, 80.0], [330.0, 80.0]]
"""bench/qa_defects.py's label on the building's windows (score clip there; here a test clip, no bound is set)."""
TEXT = "AQUA\n0,5 l"


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    root = tmp_path_factory.mktemp("vtest")
    shot = open_trim(FOOTAGE / "vtest.avi", frames=12)
    art = artwork(root, ("AQUA", "0,5 l"), "de")
    req = request(art, TEXT, LIGHTING["neon"], corners=VTEST_LABEL)
    path, prep = render(shot, req, root, "neon", cache_dir=root / "cache")
    out = {}
    cache: dict = {}
    out["right"] = measure(shot, path, facts_for(req, "right"), label_track=prep.label_track, samples=2, cache=cache)
    other = request(art, "AQUA\n1,5 l", LIGHTING["neon"], corners=VTEST_LABEL)   # the market expects 1,5 l
    out["other"] = measure(shot, path, facts_for(other, "other"), label_track=prep.label_track, samples=2,
                           cache=cache)
    return out, verdicts(list(out.values()))


def test_artwork_that_ocr_half_reads_on_a_small_dark_label_is_the_right_artwork(window):
    out, v = window
    q = out["right"]
    # the case this guards: through the rectification OCR reads the artwork without its second line ...
    refs = q.frames["ref_text"].dropna()
    assert len(refs) and not any(t.replace(" ", "").lower().endswith("0,5l") for t in refs), list(refs)
    # ... and the artwork file, read at its own size, says it is the market's
    assert q.summary["label_artwork_text_wrong"] == 0
    own = q.frames["artwork_file_text"].dropna().tolist()
    assert len(own) == 1 and fold_confusables(own[0]) == fold_confusables("AQUA 0,5 l"), own   # OCR: l or 1
    assert v[q.variant].passed, v[q.variant].reasons


def test_a_market_given_another_artwork_still_fails_with_what_it_reads(window):
    out, v = window
    q = out["other"]
    assert q.summary["label_artwork_text_wrong"] == 1
    assert not v[q.variant].passed
    assert any("the market artwork reads 'AQUA 0,5" in r and "not the expected 'AQUA 1,5 l'" in r
               for r in v[q.variant].reasons), v[q.variant].reasons
