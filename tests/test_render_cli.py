"""``ray32 render`` end to end on the demo shot: the exported draft carries the new label (read back by OCR from
the file), the source's timing; bad options give one message and exit status 2."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from flows.cli import main
from ray32.demo_shot import load_truth, make_demo_shot, make_label_art


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "composite_demo"  # shared with test_engine_composite in one session
    d = make_demo_shot(root)
    art = root / "art_fr.png"
    Image.fromarray(make_label_art(("BRISE MARINE", "50 cl"))).save(art)
    return d, load_truth(d.truth_path), art, root / "cache"


def corners_arg(truth, frame=0):
    return ",".join(f"{v:g}" for v in truth.label_corners[frame].ravel()) + f"@{frame}"


def test_render_swaps_the_label_in_the_exported_draft(demo, tmp_path, capsys):
    from rapidocr import RapidOCR

    from ray32.shot import open_shot, read_chunks

    d, truth, art, cache = demo
    out = tmp_path / "out"
    rc = main(["render", str(d.path), "--engine", "composite", "--label-art", str(art), "--label-text",
               "BRISE MARINE", "--label-corners", corners_arg(truth), "--grade", "exposure=0.1",
               "--out", "draft", "--out-dir", str(out), "--stem", "fr", "--cache-dir", str(cache)])
    assert rc == 0, capsys.readouterr().err
    draft = out / "fr_draft.mp4"
    assert f"draft    {draft}" in capsys.readouterr().out
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames,r_frame_rate,width,height", "-of", "json", str(draft)],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (int(probe["nb_read_frames"]), Fraction(probe["r_frame_rate"]), probe["width"], probe["height"]) == \
        (72, Fraction(24), 960, 540)
    record = json.loads((out / "fr.request.json").read_text())
    assert record["request"]["label_swap"]["text"] == "BRISE MARINE" and record["engine"] == "composite"
    # The one render path (ray32.render.render_to_files, as a campaign's render task): the outputs' sha256.
    import hashlib

    assert record["checksums"] == {"fr_draft.mp4": hashlib.sha256(draft.read_bytes()).hexdigest()}

    ocr = RapidOCR(params={"Det.limit_type": "max", "Det.limit_side_len": 960, "Global.log_level": "critical"})
    shot = open_shot(draft, detect_cuts=False)
    for i in (0, 35, 71):
        frame = next(read_chunks(shot.info, start=f"{i}f", end=f"{i + 1}f")).frames[0]
        c = truth.label_corners[i]
        x0, y0 = np.floor(c.min(axis=0)).astype(int) - 30
        x1, y1 = np.ceil(c.max(axis=0)).astype(int) + 30
        text = " ".join(ocr(np.ascontiguousarray(frame[y0:y1, x0:x1])).txts or ())
        assert "BRISE" in text and "MARINE" in text and "AQUA" not in text, (i, text)


def test_render_reframe_writes_the_crop_size_in_every_format(demo, tmp_path, capsys):
    d, truth, art, cache = demo
    rc = main(["render", str(d.path), "--reframe", "9:16", "--end", "12f", "--out-dir", str(tmp_path),
               "--stem", "vertical", "--out", "draft,exr", "--cache-dir", str(cache)])
    assert rc == 0, capsys.readouterr().err
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", str(tmp_path / "vertical_draft.mp4")],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert probe == "304,540"
    exrs = sorted((tmp_path / "vertical_exr").glob("*.exr"))
    assert len(exrs) == 12
    import OpenEXR

    with OpenEXR.File(str(exrs[0])) as f:
        assert f.header()["dataWindow"][1].tolist() == [303, 539]


@pytest.mark.parametrize("args, message", [
    (["--label-art", "a.png", "--label-corners", "1,2,3@0"], "--label-corners needs 8 numbers"),
    (["--label-corners", "1,2,3,4,5,6,7,8"], "a label swap needs --label-art as well"),
    (["--grade", "warmth=3"], "--grade: unknown key 'warmth'"),
    (["--grade", "temperature=hot"], "--grade temperature: 'hot' is not a number"),
    (["--grade", "tint=3"], "grade.tint: Input should be less than or equal to 1"),
    (["--reframe", "3:2"], "reframe.aspect: Input should be '9:16'"),
    (["--out", "gif"], "unknown export format(s) 'gif'"),
    (["--engine", "magic"], "unknown engine 'magic'"),
    (["--grade-key", "9:exposure=1"], "grade key 1 at '9' is frame 216, outside the shot"),
])
def test_bad_options_give_one_message_and_status_2(demo, tmp_path, capsys, args, message):
    d, _, _, cache = demo
    rc = main(["render", str(d.path), "--out-dir", str(tmp_path), "--cache-dir", str(cache), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_missing_source_is_one_message(tmp_path, capsys):
    rc = main(["render", str(tmp_path / "nope.mp4"), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.mp4: does not exist" in err
