"""Variant ids are stable and change exactly when something that changes a variant's pixels changes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from campaign_util import copy_demo, edit_csv, edit_yaml
from flows.campaign import plan_campaign
from flows.campaign.ids import canonical_json, variant_id


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RAY32_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def camp(tmp_path):
    return copy_demo(tmp_path / "camp", csv=True)


def ids(folder, **kwargs) -> dict[str, str]:
    return {v["slug"]: v["variant_id"] for v in plan_campaign(folder, **kwargs).variants}


def changed(before: dict, after: dict) -> set[str]:
    assert set(before) == set(after)
    return {s for s in before if before[s] != after[s]}


def test_ids_are_stable(camp):
    assert ids(camp) == ids(camp)


def test_editing_one_row_changes_exactly_the_variants_it_touches(camp):
    before = ids(camp)
    edit_csv(camp, "markets", "a sunny Parisian café", "a sunny Lyon bistro")          # the fr row
    assert changed(before, ids(camp)) == {s for s in before if s.startswith("fr-")}
    before = ids(camp)
    edit_csv(camp, "products", "a tall blue bottle", "a tall green bottle")            # the aqua1l row
    assert changed(before, ids(camp)) == {s for s in before if "-aqua1l-" in s}
    before = ids(camp)
    edit_csv(camp, "lighting", "overcast,Soft overcast,", "overcast,Soft overcast,luts/golden.cube")
    assert changed(before, ids(camp)) == {s for s in before if s.endswith("-overcast")}
    before = ids(camp)
    edit_csv(camp, "rules", "override,fr,*,golden,7,", "override,fr,*,golden,8,")      # one rules row
    assert changed(before, ids(camp)) == {"fr-aqua500-golden", "fr-aqua1l-golden"}


def test_a_notes_column_does_not_change_ids_but_a_used_cell_does(camp):
    before = ids(camp)
    edit_csv(camp, "markets", "code,name,language,setting", "code,name,language,setting,notes")
    assert changed(before, ids(camp)) == set()   # an extra column no template uses changes no pixels
    edit_csv(camp, "markets", "code,name,language,setting,notes", "code,name,language,setting")
    assert ids(camp) == before


def test_editing_an_asset_image_changes_the_ids_that_use_it(camp):
    before = ids(camp)
    path = camp / "labels" / "aqua500-fr.png"
    img = np.asarray(Image.open(path)).copy()
    img[10:20, 10:20] = 0
    Image.fromarray(img).save(path)
    assert changed(before, ids(camp)) == {"fr-aqua500-golden", "fr-aqua500-overcast", "fr-aqua500-neon"}
    before = ids(camp)
    (camp / "luts" / "golden.cube").write_text((camp / "luts" / "golden.cube").read_text() + "\n")
    assert changed(before, ids(camp)) == {s for s in before if s.endswith("-golden")}


def test_source_engine_and_yaml_changes(camp):
    before = ids(camp)
    assert changed(before, ids(camp, engine_version="2")) == set(before)
    edit_yaml(camp, "  name: composite", "  name: composite\n  version: '7'")
    assert changed(before, ids(camp)) == set(before)
    edit_yaml(camp, "  version: '7'\n", "")
    assert ids(camp) == before
    with open(camp / "source" / "demo_shot.mp4", "ab") as fh:   # other source bytes: every id
        fh.write(b"\0")
    assert changed(before, ids(camp)) == set(before)


def test_outputs_do_not_change_ids_but_the_grade_does(camp):
    before = ids(camp)
    edit_yaml(camp, "outputs: [draft]", "outputs: [draft, exr]")
    assert changed(before, ids(camp)) == set()
    edit_yaml(camp, "temperature: 7200", "temperature: 7000")
    assert changed(before, ids(camp)) == {s for s in before if s.endswith("-overcast")}


def test_variant_id_function():
    args = dict(source_hash="ab" * 32, trim=None, engine="composite", engine_version="1",
                request={"prompt": "p", "seed": 0, "outputs": ["draft"]}, assets={"a.png": "cd" * 32})
    a = variant_id(**args)
    assert len(a) == 16 and a == variant_id(**args)
    assert variant_id(**{**args, "request": {"prompt": "p", "seed": 0, "outputs": ["exr"]}}) == a
    assert variant_id(**{**args, "request": {"prompt": "p", "seed": 1, "outputs": ["draft"]}}) != a
    assert variant_id(**{**args, "assets": {"a.png": "ce" * 32}}) != a
    assert variant_id(**{**args, "trim": {"start": "1", "end": None}}) != a
    assert canonical_json({"b": 1, "a": "Î"}) == '{"a":"Î","b":1}'
