"""Bad input, the way people give it: a corpus of broken files, sheets and options, each run through the real
command line (``flows.cli.main``; a few in a fresh interpreter). Every case must exit with status 2, print a message
that names the thing and says what to do, print no traceback, and write or change nothing.

The messages below were read one by one as a user would; the ``todo`` of each case is the part that says what to
do, so a message that loses it fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.cli import EXIT_BUG, main
from campaign_util import REPO, copy_demo, edit_csv, edit_yaml

FOOTAGE = REPO / "tests" / "data" / "footage"
CORNERS = "594.5,194.5,784.5,194.5,784.5,298.5,594.5,298.5@0"


# ------------------------------------------------------------------------------------------------ helpers

def snapshot(root: Path) -> dict:
    """Every file and folder under ``root``: size, modification time and content hash (folders: mtime)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        if p.is_dir():
            out[p.relative_to(root).as_posix() + "/"] = st.st_mtime_ns
        else:
            out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns,
                                                   hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def png(path: Path, w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def text_file(path: Path, text: str = "this is not a picture\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def truncated(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


@dataclass
class Case:
    """One bad input: ``setup(work)`` builds it under ``work`` and returns the arguments of ``ray32``."""

    id: str
    setup: object
    names: list[str]                 # what the message must name (file, key, option, value)
    todo: str                        # the part of the message that says what to do
    rc: int = 2


def camp(work: Path) -> Path:
    c = work / "camp"
    if not c.exists():
        copy_demo(c, csv=True)
    return c


def plan(work: Path) -> list[str]:
    return ["campaign", "plan", str(camp(work))]


def run_campaign_with(*args: str, setup):
    """``ray32 campaign run`` of the campaign ``setup`` breaks, runs and deliverables inside the working folder."""
    def run(work):
        setup(work)
        return ["campaign", "run", str(camp(work)), "--runs-dir", str(work / "runs"), "--deliverables",
                str(work / "deliverables"), *args]
    return run


def yaml_case(old: str, new: str, prepare=None):
    def setup(work):
        c = camp(work)
        if prepare:
            prepare(c)
        edit_yaml(c, old, new)
        return plan(work)
    return setup


def file_case(prepare):
    def setup(work):
        prepare(camp(work))
        return plan(work)
    return setup


def render(*args: str, source: str = "camp/source/demo_shot.mp4", prepare=None):
    def setup(work):
        camp(work)
        if prepare:
            prepare(work)
        return ["render", str(work / source), "--out-dir", str(work / "out"), *args]
    return setup


def lut_rows_removed(c: Path) -> None:
    p = c / "luts" / "golden.cube"
    p.write_text("\n".join(p.read_text().splitlines()[:-10]) + "\n")


def latin1_csv(c: Path) -> None:
    (c / "matrix" / "csv" / "markets.csv").write_bytes("code,name\nde,Deutschland\nfr,Fran\xe7e\n".encode("latin-1"))


KEYFRAME = "keyframes: []"

CASES = [
    # ---- the source shot campaign.yaml names
    Case("source-still-image", yaml_case("path: source/demo_shot.mp4", "path: source/still.png",
                                         lambda c: png(c / "source" / "still.png")),
         ["source.path", "source/still.png", "is a still image (png), not a video shot"],
         "give the clip the image was taken from"),
    Case("source-missing", yaml_case("path: source/demo_shot.mp4", "path: source/demo-shot.mp4"),
         ["source.path", "source/demo-shot.mp4", "file not found"], "put the shot inside the campaign folder"),
    Case("source-not-a-video", yaml_case("path: source/demo_shot.mp4", "path: source/notes.mp4",
                                         lambda c: text_file(c / "source" / "notes.mp4")),
         ["source.path", "source/notes.mp4", "is not a video FFmpeg can read"], "export it as MP4 or MOV"),
    Case("source-truncated", yaml_case("path: source/demo_shot.mp4", "path: source/half.mp4",
                                       lambda c: truncated(c / "source" / "demo_shot.mp4", c / "source" / "half.mp4")),
         ["source.path", "source/half.mp4", "truncated"], "copy the complete file again"),
    Case("source-too-long", yaml_case("path: source/demo_shot.mp4", "path: source/vtest.avi",
                                      lambda c: (c / "source" / "vtest.avi").write_bytes(
                                          (FOOTAGE / "vtest.avi").read_bytes())),
         ["source.path", "source/vtest.avi", "79.50 s long", "at most 20 s"],
         "trim it under source: with 'trim: {start: 0, end: 20}'"),
    Case("trim-start-outside", yaml_case("path: source/demo_shot.mp4",
                                         "path: source/demo_shot.mp4\n  trim: {start: 10}"),
         ["source.trim.start", "source.trim.start 10 (frame 240) is outside the clip", "72 frames"],
         "use a start below 00:03.00"),
    Case("trim-end-before-start", yaml_case("path: source/demo_shot.mp4",
                                            "path: source/demo_shot.mp4\n  trim: {start: 2, end: 1}"),
         ["source.trim.end", "source.trim.end 1 (frame 24) must come after source.trim.start 2"],
         "give an end later than the start"),
    # ---- times inside the (trimmed) source
    Case("keyframe-outside-shot", yaml_case(KEYFRAME, "keyframes:\n  - {time: 5, prompt: sun behind the bottle}"),
         ["keyframes[0].time", "keyframe at 5 is frame 120, outside the shot", "frames 0..71"],
         "move it inside the shot or remove it"),
    Case("keyframe-outside-trim", yaml_case(KEYFRAME, "keyframes:\n  - {time: 2, prompt: sun behind the bottle}",
                                            lambda c: edit_yaml(c, "path: source/demo_shot.mp4",
                                                                "path: source/demo_shot.mp4\n  trim: {end: 1}")),
         ["keyframes[0].time", "keyframe at 2 is frame 48, outside the shot (frames 0..23"],
         "move it inside the shot or remove it"),
    Case("grade-key-outside-shot", yaml_case('{time: "2.5", exposure: -0.3}', '{time: "9", exposure: -0.3}'),
         ["lighting.neon.grade.keyframes[1].time", "grade key at '9' is frame 216, outside the shot"],
         "move it inside the shot or remove it"),
    Case("label-frame-outside-shot", yaml_case("      frame: 0", "      frame: 500"),
         ["products.aqua500.label.frame", "label frame 500 is outside the shot's frames 0..71"],
         "give a frame inside the trimmed source"),
    # ---- images and LUTs campaign.yaml names
    Case("artwork-not-an-image", file_case(lambda c: text_file(c / "labels" / "aqua500-de.png")),
         ["products.aqua500.labels.de.artwork", "label artwork 'labels/aqua500-de.png' is not an image"],
         "export it again as PNG or JPEG"),
    Case("artwork-truncated", file_case(lambda c: truncated(c / "labels" / "aqua500-fr.png",
                                                            c / "labels" / "aqua500-fr.png")),
         ["products.aqua500.labels.fr.artwork", "label artwork 'labels/aqua500-fr.png' cannot be decoded"],
         "export it again as PNG or JPEG"),
    Case("artwork-too-small", file_case(lambda c: png(c / "labels" / "aqua1l-us.png", 4, 3)),
         ["products.aqua1l.labels.us.artwork", "'labels/aqua1l-us.png' is only 4x3 pixels"], "export it larger"),
    Case("guide-missing", yaml_case(KEYFRAME, "keyframes:\n  - {time: 1, guide: guides/sunset.png}"),
         ["keyframes[0].guide", "file 'guides/sunset.png': file not found"], "put the file inside the campaign folder"),
    Case("guide-not-an-image", yaml_case(KEYFRAME, "keyframes:\n  - {time: 1, guide: guides/sunset.png}",
                                         lambda c: text_file(c / "guides" / "sunset.png")),
         ["keyframes[0].guide", "keyframe guide 'guides/sunset.png' is not an image"], "export it again as PNG"),
    Case("lock-reference-not-an-image", yaml_case("  - kind: face", "  - kind: face\n    reference: refs/face.jpg",
                                                  lambda c: text_file(c / "refs" / "face.jpg", "GIF89a")),
         ["locks[0].reference", "lock reference 'refs/face.jpg' is not an image"], "export it again as PNG"),
    Case("lut-not-a-cube", file_case(lambda c: text_file(c / "luts" / "golden.cube", "<xml>look</xml>\n")),
         ["lighting.golden.grade.lut", "LUT 'luts/golden.cube' line 1", "is not three numbers"], "export it again"),
    Case("lut-truncated", file_case(lut_rows_removed),
         ["lighting.golden.grade.lut", "has 115 rows of values but LUT_3D_SIZE 5 needs 125"], "export it again"),
    Case("sheet-lut-not-a-cube", file_case(lambda c: (text_file(c / "luts" / "night.cube", "LUT_3D_SIZE 2\n1 2\n"),
                                                      edit_csv(c, "lighting", "neon,Neon night,",
                                                               "neon,Neon night,luts/night.cube"))),
         ["matrix/csv/lighting.csv, sheet 'lighting', row 4, column C (lut)", "LUT 'luts/night.cube' line 2"],
         "export it again"),
    # ---- keys and values of campaign.yaml
    Case("unknown-top-level-key", yaml_case("outputs: [draft]", "outptus: [draft]"),
         ["key 'outptus'", "unknown key; the keys known here are name, description, source", "outputs"],
         "correct its spelling or remove it"),
    Case("unknown-nested-key", yaml_case("    name: Aqua 500 ml", "    name: Aqua 500 ml\n    lock_lable: false"),
         ["key 'products.aqua500.lock_lable'", "the keys known here are name, label, labels, lock_label"],
         "correct its spelling or remove it"),
    Case("unknown-key-in-list-item", yaml_case(KEYFRAME, "keyframes:\n  - {time: 1, prompt: sunset, guid: a.png}"),
         ["key 'keyframes[0].guid'", "the keys known here are time, guide, prompt"], "correct its spelling"),
    Case("unknown-engine", yaml_case("  name: composite", "  name: comp0site"),
         ["engine.name", "unknown engine 'comp0site'; available here: composite, wan-vace"],
         "name one of those engines"),
    Case("unknown-engine-option", yaml_case("  name: composite",
                                            "  name: composite\n  options: {reframe_subjct: label}"),
         ["engine.options.reframe_subjct", "unknown option for engine 'composite'; the options it knows are "
          "reframe_subject, reframe_smooth_seconds"], "correct its spelling or remove it"),
    Case("outpaint-on-composite", yaml_case("outputs: [draft]", "outputs: [draft]\nreframe:\n"
                                            "  - {aspect: '9:16', method: outpaint}"),
         ["reframe[0].method", "the composite engine reframes by crop only, not 'outpaint'"],
         "use reframe method 'crop', or a generative engine (wan-vace)"),
    Case("run-with-an-engine-that-cannot", run_campaign_with(
        "--engine", "composite", setup=yaml_case("  name: composite", "  name: wan-vace", lambda c: edit_yaml(
            c, "outputs: [draft]", "outputs: [draft]\nreframe:\n  - {aspect: '1:1', method: outpaint}"))),
         ["17 variant(s) cannot be rendered; nothing was rendered", "de-aqua500-golden-1x1-outpaint, "
          "de-aqua500-overcast-1x1-outpaint, de-aqua500-neon-1x1-outpaint and 14 more: the composite engine reframes "
          "by crop only, not 'outpaint'"], "use reframe method 'crop'"),
    Case("template-missing", yaml_case("prompt_template: target_state.j2", "prompt_template: target.j2"),
         ["prompt_template", "target.j2"], "name another one in prompt_templates/"),
    Case("campaign-folder-missing", lambda work: ["campaign", "plan", str(work / "campaing")],
         ["campaing", "campaign folder not found"], "give the folder that holds campaign.yaml"),
    Case("campaign-yaml-missing", file_case(lambda c: (c / "campaign.yaml").unlink()),
         ["campaign.yaml not found"], "copy campaigns/demo/campaign.yaml as a start"),
    Case("campaign-yaml-not-yaml", yaml_case("name: demo", "name: demo\n  broken: [x"),
         ["campaign.yaml", "not valid YAML"], "fix the YAML syntax"),
    # ---- the sheets
    Case("sheet-unknown-market", file_case(lambda c: edit_csv(c, "markets", "us,United States",
                                                              "xx,Nowhere,en,a room\nus,United States")),
         ["matrix/csv/markets.csv, sheet 'markets', row 4, column A (code)", "unknown market code 'xx'"],
         "add the market's label under products.<product>.labels"),
    Case("sheet-not-utf8", file_case(latin1_csv),
         ["1 problem found", "matrix/csv/markets.csv", "not UTF-8 text: byte 0xe7 at line 3"],
         "save the file as 'CSV UTF-8'"),
    Case("workbook-not-xlsx", yaml_case("csv: matrix/csv", "workbook: matrix/csv/markets.csv"),
         ["matrix/csv/markets.csv", "not an .xlsx workbook"], "save it as an Excel workbook (.xlsx)"),
    Case("matrix-option-outside", lambda work: plan(work) + ["--matrix", str(FOOTAGE)],
         [str(FOOTAGE), "the matrix must be an .xlsx file or a folder of .csv files inside the campaign folder"],
         "give a path inside"),
    # ---- ray32 render
    Case("render-still-source", render(source="still.jpg", prepare=lambda w: Image.fromarray(
        np.zeros((96, 128, 3), np.uint8)).save(w / "still.jpg")),
         ["still.jpg", "is a still image (mjpeg), not a video shot"], "give the clip the image was taken from"),
    Case("render-artwork-not-an-image", render("--label-art", "camp/source/demo_shot.truth.json", "--label-corners",
                                               CORNERS),
         ["--label-art", "demo_shot.truth.json", "is not an image"], "export it again as PNG or JPEG"),
    Case("render-artwork-missing", render("--label-art", "labels/de.png", "--label-corners", CORNERS),
         ["label artwork (--label-art) 'labels/de.png' does not exist"], "check the path"),
    Case("render-prompt-on-composite", render("--prompt", "the same shot at golden hour"),
         ["--prompt: the composite engine does not use prompt"], "leave it out, or choose an engine that uses it"),
    Case("render-missing-guide-on-composite", render("--keyframe", "1=guides/missing.png"),
         ["2 problems found", "--keyframe: the composite engine does not use keyframes",
          "keyframe guide (--keyframe) 'guides/missing.png' does not exist"], "leave it out"),
    Case("render-guide-missing", render("--engine", "wan-vace", "--keyframe", "1=guides/one.png"),
         ["keyframe guide (--keyframe) 'guides/one.png' does not exist"], "check the path"),
    Case("render-keyframe-outside", render("--engine", "wan-vace", "--keyframe", "4=camp/labels/aqua500-de.png"),
         ["keyframe 1 at '4' is frame 96, outside the shot"], "move it inside the shot or remove it"),
    Case("render-lut-not-a-cube", render("--grade", "lut=camp/labels/aqua500-de.png"),
         ["grade.lut", "lut must be a .cube file, got 'camp/labels/aqua500-de.png'"], "export the LUT as .cube"),
    Case("render-lut-damaged", render("--grade", "lut=bad.cube",
                                      prepare=lambda w: text_file(w / "bad.cube", "1 2 3\n")),
         ["LUT 'bad.cube' has no LUT_3D_SIZE"], "export it again as .cube"),
    Case("render-request-unknown-key", render("--request", "req.json", prepare=lambda w: (w / "req.json").write_text(
        json.dumps({"promt": "golden hour"}))),
         ["--request 'req.json'", "promt: unknown key; known keys here: prompt, keyframes, motion_adherence"],
         "check the spelling"),
    Case("render-request-unknown-nested-key", render("--request", "req.json", prepare=lambda w: (w / "req.json")
                                                     .write_text(json.dumps({"grade": {"temprature": 3200}}))),
         ["grade.temprature: unknown key; known keys here: temperature, tint, exposure"], "check the spelling"),
    Case("render-request-unknown-engine-option", render(
        "--engine", "wan-vace", "--request", "req.json", prepare=lambda w: (w / "req.json").write_text(
            json.dumps({"prompt": "golden hour", "engine_options": {"step": 8}}))),
         ["engine_options.step: unknown option for the wan-vace engine; the options it knows are ", "steps"],
         "check the spelling"),
    Case("render-request-not-json", render("--request", "req.json", prepare=lambda w: text_file(w / "req.json",
                                                                                                "prompt: x\n")),
         ["--request 'req.json' cannot be read as JSON"], "write it as a JSON object of request fields"),
    Case("render-outpaint-on-composite", render("--reframe", "9:16", "--reframe-method", "outpaint"),
         ["the composite engine reframes by crop only, not 'outpaint'"], "use reframe method 'crop'"),
    Case("render-start-outside", render("--start", "10"),
         ["demo_shot.mp4", "--start 10 (frame 240) is outside the clip"], "use a start below 00:03.00"),
    Case("render-unknown-engine", render("--engine", "wan"),
         ["unknown engine 'wan'; available here: composite, wan-vace"], "available here"),
    Case("render-unknown-format", render("--out", "draft,mov"),
         ["unknown export format(s) 'mov'; available: draft"], "available: draft"),
    Case("render-two-problems-at-once", render("--prompt", "golden hour", "--label-art", "de.png",
                                               "--label-corners", CORNERS),
         ["2 problems found", "--prompt", "'de.png' does not exist"], "check the path"),
    Case("render-bad-mode", render("--mode", "bold"),
         ["--mode", "invalid choice: 'bold'", "adhere"], "choose from"),
    # ---- ray32 probe / export
    Case("probe-still-image", lambda work: ["probe", str(png(work / "frame.png"))],
         ["frame.png", "is a still image (png), not a video shot"], "give the clip the image was taken from"),
    Case("probe-missing", lambda work: ["probe", str(work / "shot.mov")],
         ["shot.mov", "does not exist"], "check the path"),
    Case("export-still-image", lambda work: ["export", str(png(work / "frame.png")), "--to", "draft", "--out",
                                             str(work / "out")],
         ["frame.png", "is a still image"], "give the clip the image was taken from"),
    Case("export-unknown-format", lambda work: ["export", str(camp(work) / "source" / "demo_shot.mp4"), "--to",
                                                "mp4", "--out", str(work / "out")],
         ["unknown export format 'mp4'", "available: draft"], "available: draft"),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the corpus: sheets that passed stay cached across cases (a prepared shot would be a failure)."""
    return tmp_path_factory.mktemp("bad-inputs-cache")


def run_case(case: Case, tmp_path: Path, cache_dir: Path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RAY32_CACHE_DIR", str(cache_dir))
    argv = case.setup(work)
    capsys.readouterr()
    before = snapshot(work)
    try:
        rc = main(argv)
    except SystemExit as ex:  # argparse's own errors
        rc = ex.code
    out, err = capsys.readouterr()
    return rc, out, err, before, snapshot(work)


def test_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, cache_dir, monkeypatch, capsys):
    rc, out, err, before, after = run_case(case, tmp_path, cache_dir, monkeypatch, capsys)
    assert rc == case.rc, (rc, err)
    for needle in case.names:
        assert needle in err, f"{needle!r} not in:\n{err}"
    assert case.todo in err, f"{case.todo!r} not in:\n{err}"
    assert "Traceback" not in err + out and 'File "' not in err
    assert after == before, "something under the working folder was written or changed"
    assert not (cache_dir / "prepared").exists(), "a shot was prepared for a bad input"
    assert not (cache_dir / "crashes").exists()


# ------------------------------------------------------------------------------------------------ the holes

def test_artwork_far_from_label_shape_is_a_warning(tmp_path, monkeypatch, capsys):
    """A label artwork whose aspect is far from the label quad's plans, with a warning naming it."""
    monkeypatch.setenv("RAY32_CACHE_DIR", str(tmp_path / "cache"))
    c = copy_demo(tmp_path / "c", csv=True)
    png(c / "labels" / "aqua500-de.png", 100, 400)   # tall; the label quad is 220 x 120 (aspect 1.83)
    assert main(["campaign", "plan", str(c)]) == 0
    err = capsys.readouterr().err
    assert ("ray32: warning: label artwork 'labels/aqua500-de.png' (campaign.yaml products.aqua500.labels.de) is "
            "100x400 (aspect 0.25) but the label's corners make a quad of aspect 1.83: it will be stretched 7.3x")\
        in err
    assert err.count("label artwork") == 1          # the others match their label


def test_composite_warns_about_controls_it_does_not_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY32_CACHE_DIR", str(tmp_path / "cache"))
    c = copy_demo(tmp_path / "c", csv=True)
    png(c / "guides" / "sunset.png", 128, 72)
    edit_yaml(c, KEYFRAME, "keyframes:\n  - {time: 1, guide: guides/sunset.png}")
    assert main(["campaign", "plan", str(c)]) == 0
    err = capsys.readouterr().err
    assert ("engine 'composite' does not use 'keyframes[0].guide' (set in campaign.yaml 'keyframes'; 17 of 17 "
            "variants): it changes no pixels") in err
    assert "engine 'composite' does not use 'motion_adherence'" in err
    edit_yaml(c, "  name: composite", "  name: wan-vace")
    assert main(["campaign", "plan", str(c)]) == 0
    assert "does not use" not in capsys.readouterr().err


def test_request_file_fields_unused_by_the_engine_warn(tmp_path, monkeypatch, capsys, demo_shot):
    """A prompt in a request file is a warning for the composite engine (an error as --prompt: see the corpus);
    the render goes on."""
    monkeypatch.setenv("RAY32_CACHE_DIR", str(tmp_path / "cache"))
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"prompt": "golden hour", "grade": {"exposure": 0.5}}))
    rc = main(["render", str(demo_shot.path), "--request", str(req), "--end", "6f", "--out-dir", str(tmp_path / "o")])
    assert rc == 0
    assert "ray32: warning: the composite engine does not use the request's 'prompt'" in capsys.readouterr().err
    assert (tmp_path / "o" / "demo_shot_composite_draft.mp4").is_file()


def test_render_warns_about_artwork_far_from_the_label_shape(tmp_path):
    from ray32.inputs import check_request_inputs
    from ray32.request import RenderRequest

    art = png(tmp_path / "wide.png", 400, 40)
    corners = [[0, 0], [100, 0], [100, 100], [0, 100]]
    request = RenderRequest(label_swap={"artwork": art, "text": "AQUA", "corners": corners})
    warnings = check_request_inputs(request, "composite", options={"label_swap.artwork": "--label-art"})
    assert warnings == [f"label artwork '{art}' (--label-art) is 400x40 (aspect 10.00) but the label's corners make "
                        "a quad of aspect 1.00: it will be stretched 10.0x; export the artwork at the label's shape "
                        "or check the corners"]
    square = png(tmp_path / "square.png", 120, 100)
    assert check_request_inputs(request.model_copy(update={"label_swap": request.label_swap.model_copy(
        update={"artwork": square})}), "composite") == []


def test_plan_time_and_run_time_agree_on_times(tmp_path):
    """The run refuses what the plan refuses: a keyframe past the trimmed source fails both, with the same words."""
    from flows.campaign import CampaignError, plan_campaign
    from ray32.request import RenderRequest, RequestError
    from ray32.shot import open_shot

    c = copy_demo(tmp_path / "c", csv=True)
    edit_yaml(c, KEYFRAME, "keyframes:\n  - {time: 2, prompt: sun}")
    edit_yaml(c, "path: source/demo_shot.mp4", "path: source/demo_shot.mp4\n  trim: {end: 1}")
    with pytest.raises(CampaignError) as plan_err:
        plan_campaign(c)
    shot = open_shot(c / "source" / "demo_shot.mp4", end=1, detect_cuts=False)
    with pytest.raises(RequestError) as run_err:
        RenderRequest(keyframes=[{"time": 2, "prompt": "sun"}]).check_times(shot.fps, shot.frame_count)
    assert "is frame 48, outside the shot (frames 0..23" in str(plan_err.value)
    assert "is frame 48, outside the shot (frames 0..23" in str(run_err.value)


# ------------------------------------------------------------------------------------------------ a real process

def _ray32(*args: str, cwd: Path, code: str | None = None, env_extra: dict | None = None):
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "flows.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("source-still-image", "render-prompt-on-composite",
                                                               "render-request-unknown-key")],
                         ids=lambda c: c.id)
def test_bad_input_in_a_real_process(case: Case, tmp_path, cache_dir):
    work = tmp_path / "work"
    work.mkdir()
    argv = case.setup(work)
    before = snapshot(work)
    proc = _ray32(*argv, cwd=work, env_extra={"RAY32_CACHE_DIR": str(cache_dir)})
    assert proc.returncode == case.rc, proc.stderr
    assert all(n in proc.stderr for n in case.names) and case.todo in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert snapshot(work) == before


BUG = ("import sys, ray32.shot as shot\n"
       "def probe(path):\n"
       "    return {}['colour']  # a bug: a KeyError nobody translated\n"
       "shot.probe = probe\n"
       "from flows.cli import main\n"
       "sys.exit(main(sys.argv[1:]))\n")


def test_unexpected_failure_prints_one_line_and_keeps_the_traceback(tmp_path):
    """A bug inside a command: one line naming the error and the file with the traceback; status 70."""
    work = tmp_path / "work"
    work.mkdir()
    cache = tmp_path / "cache"
    proc = _ray32("probe", str(FOOTAGE / "cup.mp4"), cwd=work, code=BUG, env_extra={"RAY32_CACHE_DIR": str(cache)})
    assert proc.returncode == EXIT_BUG == 70
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ray32: internal error: KeyError: 'colour' (at <string>:3). This is a bug in ray32, "
                               "not a problem with your input; the full traceback is in ")
    report = Path(lines[0].split("the full traceback is in ")[1].split(" (attach")[0])
    assert report.parent == cache / "crashes"
    text = report.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'colour'" in text
    assert f"command: ray32 probe {FOOTAGE / 'cup.mp4'}" in text
    assert list(work.iterdir()) == []
    verbose = _ray32("-v", "probe", str(FOOTAGE / "cup.mp4"), cwd=work, code=BUG,
                     env_extra={"RAY32_CACHE_DIR": str(cache)})
    assert verbose.returncode == 70
    assert "Traceback (most recent call last)" in verbose.stderr and "line 3, in probe" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("ray32: internal error: KeyError")


def test_unexpected_failure_in_process(tmp_path, monkeypatch, capsys):
    """The same handler in-process, for a library error raised deep inside a command (not a Ray32Error)."""
    import ray32.shot

    monkeypatch.setenv("RAY32_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ray32.shot, "probe", lambda path: np.linalg.inv(np.zeros((2, 2))))
    assert main(["probe", str(FOOTAGE / "cup.mp4")]) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.startswith("ray32: internal error: LinAlgError: Singular matrix (at ") and err.count("\n") == 1
    assert len(list((tmp_path / "cache" / "crashes").iterdir())) == 1
