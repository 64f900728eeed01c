"""`ray32 qa` end to end on demo renders, and the HTML report opened in real headless Chromium: no console
errors, a screenshot, a card per variant in the DOM, and hostile variant names / label texts escaped."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from flows.cli import main
from qa.expectations import verdicts
from qa.facts import parse_facts
from qa.metrics import measure
from qa.report import write_report
from tests.qa_data import MARKET, build, frames

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build(tmp_path_factory.getbasetemp() / "qa_demo")


def write_facts(data, path: Path, **extra) -> Path:
    facts = {"variant": "es-aqua", "market": "es", "mode": "adhere",
             "label": {"text": " ".join(MARKET), "artwork": str(data["artwork"]), "truth": str(data["truth"])},
             **extra}
    path.write_text(json.dumps(facts, ensure_ascii=False))
    return path


def test_cli_passes_the_clean_swap(data, tmp_path, capsys):
    # The label's place given as corners on one frame: QA tracks it through the source (ray32.label_track).
    facts = write_facts(data, tmp_path / "facts.json", label={
        "text": " ".join(MARKET), "artwork": str(data["artwork"]), "corners": data["track"][5].tolist(), "frame": "5f"})
    rc = main(["qa", str(data["source"]), str(data["good"]), "--facts", str(facts), "--out", str(tmp_path / "r"),
               "--samples", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "es-aqua: QA pass" in out
    verdict = json.loads((tmp_path / "r" / "verdict.json").read_text())
    assert (verdict["variant"], verdict["verdict"], verdict["reasons"], verdict["notes"]) == ("es-aqua", "pass", [], [])
    assert verdict["judged_against"]["reference"] == "the market artwork swapped onto the source's label"
    assert "label" in verdict["judged_against"] and "keyframes" not in verdict["judged_against"]  # no guide images
    html = (tmp_path / "r" / "qa_report.html").read_text()
    assert 'data-variant="es-aqua"' in html and 'data-verdict="pass"' in html
    metrics = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("variant,mode,label_") and metrics[1].startswith("es-aqua,adhere,")


def test_cli_fails_the_wrong_market_with_a_reason(data, tmp_path, capsys):
    facts = write_facts(data, tmp_path / "facts.json")
    rc = main(["qa", str(data["source"]), str(data["wrong"]), "--facts", str(facts), "--out", str(tmp_path / "r"),
               "--samples", "3"])
    out = capsys.readouterr().out
    assert rc == 1
    assert ("label read as 'EAU FRAÎCHE 50 cl' at 00:00.00 where the market artwork reads 'AQUA FRESCA 500 ml' "
            "(expected 'AQUA FRESCA 500 ml'") in out
    assert "label does not look like the market artwork" in out


def test_cli_bad_input_is_one_message(data, tmp_path, capsys):
    assert main(["qa", str(data["source"]), str(tmp_path / "none.mp4")]) == 2
    assert f"{tmp_path / 'none.mp4'}: does not exist; check the path" in capsys.readouterr().err
    facts = write_facts(data, tmp_path / "f.json", label={"text": "X"})
    assert main(["qa", str(data["source"]), str(data["good"]), "--facts", str(facts)]) == 2
    assert "label needs 'corners'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def report(data, tmp_path_factory):
    """A run of three variants, one of them with a hostile name and label text."""
    out = tmp_path_factory.mktemp("report")
    common = {"artwork": str(data["artwork"]), "truth": str(data["truth"])}
    runs = [("es-aqua", data["good"], " ".join(MARKET)), ("fr-wrong", data["wrong"], " ".join(MARKET)),
            (f"x{HOSTILE}", data["good"], f"AQUA {HOSTILE}")]
    guide = out / "guide.png"
    Image.fromarray(frames(data["good"])[12]).save(guide)   # the output must hit this at 0.5 s (frame 12)
    results = [measure(data["source"], clip, parse_facts({"variant": name, "market": "es",
                                                                "label": {"text": text, **common},
                                                                "keyframes": [{"time": "0.5", "guide": str(guide)}]}),
                             samples=3)
               for name, clip, text in runs]
    assert results[0].summary["keyframe_ssim_min"] > 0.95
    v = verdicts(results)
    path = write_report(results, v, out, title=f"Run {HOSTILE}", approvals={"es-aqua": {"state": "approved",
                                                                                         "by": "kim"}})
    return path, v


def chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_console_check_catches_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    res = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert any("boom" in m for m in console_messages(res.stderr)), res.stderr[-2000:]


def test_report_in_chromium(report, tmp_path):
    path, v = report
    assert [x.state for x in v.values()] == ["pass", "fail", "fail"]
    dom = chromium(["--dump-dom", path.as_uri()], tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    html = dom.stdout
    cards = re.findall(r'<article class="card (\w+)" data-variant="([^"]*)"', html)
    assert cards == [("pass", "es-aqua"), ("fail", "fr-wrong"), ("fail", "x&lt;script&gt;alert(1)&lt;/script&gt;")]
    assert "<script" not in html.lower()                      # escaped everywhere: no script element at all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html      # ... and shown as text
    assert "approved · kim" in html and "awaiting review" in html
    assert "keyframe · frame 12 · 00:00:00:12 (00:00.50)" in html
    assert html.count("data:image/jpeg;base64,") >= 3 * 9     # source, output, reference at first / middle / last
    assert html.count('alt="reference frame') >= 9
    assert "judged against the market artwork swapped onto the source" in html
    assert html.count("<svg") >= 3                           # the plots over time
    assert "label read as 'EAU FRAÎCHE 50 cl'" in html
    assert "not the expected 'AQUA &lt;script&gt;alert(1)&lt;/script&gt;'" in html
    shot = tmp_path / "report.png"
    res = chromium([f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", path.as_uri()],
                   tmp_path / "p2")
    assert res.returncode == 0 and shot.stat().st_size > 50_000
    img = Image.open(shot)
    assert img.size == (1280, 2000)
    import numpy as np

    assert len(np.unique(np.asarray(img.convert("L").resize((64, 100))))) > 20   # a real page, not a blank one


def test_ray32_qa_checks_a_trimmed_render_against_the_same_part_of_the_source(tmp_path, capsys):
    # `ray32 render --start 4f --end 20f` renders 16 of cup.mp4's 217 frames; its record keeps the trim, so
    # `ray32 qa` on the output compares it with those frames of the source, not with the whole clip (which failed
    # it: "output has 16 frames, the source 217: frames were dropped (201)")
    from footage_util import CUP_LABEL, artwork

    cup = Path(__file__).parent / "data" / "footage" / "cup.mp4"
    art = artwork(tmp_path, ("AQUA", "0,5 l"), "right")
    corners = ",".join(f"{v:g}" for xy in CUP_LABEL for v in xy)
    assert main(["render", str(cup), "--label-art", str(art), "--label-text", "AQUA 0,5 l", "--label-corners",
                 f"{corners}@0", "--grade", "temperature=3800", "--start", "4f", "--end", "20f",
                 "--out-dir", str(tmp_path / "out"), "--stem", "cup"]) == 0
    record = json.loads((tmp_path / "out" / "cup.request.json").read_text())
    assert record["trim"] == {"start": "4f", "end": "20f"}
    capsys.readouterr()
    rc = main(["qa", str(cup), str(tmp_path / "out" / "cup_draft.mp4"), "--out", str(tmp_path / "r"),
               "--samples", "2"])
    out = capsys.readouterr().out
    assert "source: frames 4-19 of cup.mp4" in out
    assert rc == 0 and "cup: QA pass" in out, out


def test_report_shows_the_label_as_ocr_read_it(report, tmp_path):
    """Close-ups of the rectified label (output beside the intended artwork) at the frames OCR read, with both
    readings: a reviewer sees the letters, and a wrong reading comes first, marked."""
    import base64
    import io

    import numpy as np

    path, v = report
    html = path.read_text()
    cards = html.split('<article class="card ')[1:]
    good, wrong = cards[0], cards[1]
    assert "Label as read (output · intended)" in good
    caps = re.findall(r"<figcaption>(frame \d+ · [^<]*output reads[^<]*)</figcaption>", good)
    assert caps and all("reads like the artwork" in c for c in caps)
    assert all("output reads “AQUA FRESCA 500 ml” · artwork reads “AQUA FRESCA 500 ml”" in c for c in caps)
    first = re.findall(r"<figcaption>(frame \d+ · [^<]*output reads[^<]*)</figcaption>", wrong)[0]
    assert "output reads “EAU FRAÎCHE 50 cl” · artwork reads “AQUA FRESCA 500 ml” · reads differently" in first

    def pair(card):   # the first close-up's output and intended label, decoded
        i = card.index('alt="output label frame')
        imgs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', card[i - 200:i + 200_000])[:2]
        return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("L"), np.float32) for b in imgs]

    o, r = pair(good)
    assert o.shape == r.shape and o.shape[1] >= 150 and np.abs(o - r).mean() < 6     # the same label
    o, r = pair(wrong)
    assert np.abs(o - r).mean() > 15                                                  # another label
