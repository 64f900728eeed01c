"""``ray32 review`` in a real headless Chromium (Selenium + Debian's chromium-driver), over a real run of four
variants (two of them fail QA): play and seek a video, comment at a timecode, approve, reject, refuse a QA-failed
approval without a reason; then the manifest, the packaged folders, the static report and the OpenTimelineIO
markers are read back. Also: hostile text stays text, the token on a non-loopback address, HTTP guards, two
reviewers at once, and the commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from review_util import (HOSTILE_SETTING, LiveServer, chrome, copy_run, free_port, review_campaign, wait_for)

from flows import manifest as mf
from flows.review import create_app

REPO = Path(__file__).resolve().parents[1]
REVIEWER = "Rita Reviewer"
GOLDEN, OVERCAST, FR_GOLDEN, FR_OVERCAST = ("de-aqua500-golden", "de-aqua500-overcast", "fr-aqua500-golden",
                                            "fr-aqua500-overcast")


@pytest.fixture(scope="module")
def made(prefect_api, tmp_path_factory):
    """One run of the review campaign (nothing approved), and a pristine copy of its runs folder."""
    from flows.run import run_campaign

    work = tmp_path_factory.mktemp("review")
    camp = review_campaign(work / "camp")
    result = run_campaign(camp, runs_dir=str(work / "runs"), deliverables_dir=str(work / "deliv"), run="r1",
                          cache_dir=str(work / "cache"), workers=2, qa_samples=3)
    run_dir = Path(result["run_dir"])
    m = mf.load_manifest(run_dir)
    assert {s: v["qa"]["verdict"] for s, v in m["variants"].items()} == {
        GOLDEN: "pass", OVERCAST: "pass", FR_GOLDEN: "fail", FR_OVERCAST: "fail"}
    shutil.copytree(work / "runs", work / "pristine")
    return {"work": work, "camp": camp, "run_dir": run_dir, "runs": work / "runs", "deliv": work / "deliv"}


def fresh(made, dest: Path) -> Path:
    """A copy of the untouched run for a test that changes it."""
    return copy_run(made["work"] / "pristine", made["work"] / "pristine" / made["run_dir"].relative_to(made["runs"]),
                    dest)


def severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def section(driver, slug: str):
    return driver.find_element("css selector", f'section.variant[data-slug="{slug}"]')


def msg_text(driver, slug: str) -> str:
    return section(driver, slug).find_element("css selector", ".msg").text


def video_state(driver, video) -> dict:
    return driver.execute_script("const v = arguments[0]; return {ready: v.readyState, width: v.videoWidth, "
                                 "time: v.currentTime, duration: v.duration, ended: v.ended, paused: v.paused};",
                                 video)


def test_review_in_chromium(made, tmp_path):
    run_dir, deliv = made["run_dir"], made["deliv"]
    app = create_app(run_dir, deliverables=deliv)
    with LiveServer(app) as srv:
        d = chrome(tmp_path / "profile")
        try:
            d.get(srv.url)
            assert d.title == "Review · demo / r1"
            assert [s.get_attribute("data-slug") for s in d.find_elements("css selector", "section.variant")] == \
                [GOLDEN, OVERCAST, FR_GOLDEN, FR_OVERCAST]
            counts = {k: d.find_element("id", f"n-{k}").text for k in ("all", "fail", "awaiting", "approved")}
            assert counts == {"all": "4", "fail": "2", "awaiting": "4", "approved": "0"}

            # Filters: failed QA, then market.
            d.find_element("css selector", '.filter[data-status="fail"]').click()
            visible = [s.get_attribute("data-slug") for s in d.find_elements("css selector", "section.variant")
                       if s.is_displayed()]
            assert visible == [FR_GOLDEN, FR_OVERCAST]
            d.find_element("css selector", '.filter[data-status="all"]').click()
            from selenium.webdriver.support.ui import Select

            Select(d.find_element("css selector", '.axis-filter[data-axis="lighting"]')).select_by_value("golden")
            assert d.find_element("id", "shown").text == "2 shown"
            Select(d.find_element("css selector", '.axis-filter[data-axis="lighting"]')).select_by_value("")

            # The reviewer types a name once.
            d.find_element("id", "reviewer").send_keys(REVIEWER)
            d.execute_script("document.getElementById('reviewer').dispatchEvent(new Event('change'))")

            # Play the draft (served with range requests) to its end; the source plays beside it.
            g = section(d, GOLDEN)
            draft = g.find_element("css selector", "video.draft")
            source = g.find_element("css selector", "video.source")
            st = wait_for(lambda: (s := video_state(d, draft))["ready"] >= 2 and s, what="the draft to load")
            assert st["width"] == 960 and abs(st["duration"] - 0.5) < 0.03
            assert wait_for(lambda: video_state(d, source)["ready"] >= 2, what="the source to load")
            d.execute_script("arguments[0].play()", draft)
            wait_for(lambda: video_state(d, draft)["ended"], what="the draft to play to its end")
            assert video_state(d, draft)["time"] > 0.45

            # Seek: a QA reason's timecode button on a failed variant ...
            fr = section(d, FR_GOLDEN)
            fr.find_element("css selector", "ul.reasons button.seek").click()
            frv = fr.find_element("css selector", "video.draft")
            wait_for(lambda: abs(video_state(d, frv)["time"] - 0.5 / 24) < 1e-3, what="the seek to the reason's frame")
            assert fr.find_element("css selector", ".now .tc").text == "00:00:00:00"
            # ... and to frame 7 of the golden variant, where the reviewer comments.
            d.execute_script("arguments[0].currentTime = 7.5 / 24", draft)
            wait_for(lambda: g.find_element("css selector", ".now .frame").text == "7", what="frame 7 shown")
            wait_for(lambda: abs(video_state(d, source)["time"] - 7.5 / 24) < 0.06, what="the source to follow")
            assert g.find_element("css selector", ".add-comment .tc").text == "00:00:00:07"
            g.find_element("css selector", ".comment-text").send_keys("label edge shimmers here")
            g.find_element("css selector", ".add-comment").click()
            wait_for(lambda: "comment at 00:00:00:07" in msg_text(d, GOLDEN), what="the comment to be stored")
            item = g.find_element("css selector", "ol.comments li")
            assert item.get_attribute("data-frame") == "7" and "label edge shimmers here" in item.text
            marker = g.find_element("css selector", ".timeline .marker")
            assert marker.get_attribute("data-frame") == "7"
            left = d.execute_script("return arguments[0].style.left", marker)
            assert abs(float(left.rstrip("%")) - 100 * 7.5 / 12) < 0.1

            # Approve golden, reject overcast with a note.
            g.find_element("css selector", ".note").send_keys("label reads well")
            g.find_element("css selector", ".approve").click()
            wait_for(lambda: "approved de-aqua500-golden" in msg_text(d, GOLDEN), 60, "the approval")
            assert "variant(s) packaged" in msg_text(d, GOLDEN)
            o = section(d, OVERCAST)
            o.find_element("css selector", ".reject").click()   # no note yet: asked for one, nothing sent
            assert "write a note" in msg_text(d, OVERCAST)
            o.find_element("css selector", ".note").send_keys("too cold for the summer launch")
            o.find_element("css selector", ".reject").click()
            wait_for(lambda: "rejected de-aqua500-overcast" in msg_text(d, OVERCAST), 60, "the rejection")

            # Approving a QA-failed variant asks for the override reason (in the page, and the server refuses too).
            fr.find_element("css selector", ".note").send_keys("looks fine to me")
            fr.find_element("css selector", ".approve").click()
            assert "failed QA" in msg_text(d, FR_GOLDEN) and "override reason" in msg_text(d, FR_GOLDEN)
            assert d.switch_to.active_element == fr.find_element("css selector", ".override")
            counts = {k: d.find_element("id", f"n-{k}").text for k in ("awaiting", "approved", "rejected")}
            assert counts == {"awaiting": "2", "approved": "1", "rejected": "1"}
            assert severe(d) == []

            # The README's screenshot: the page as a reviewer sees it after these steps.
            d.execute_script("window.scrollTo(0, 0)")
            shot = tmp_path / "review.png"
            d.set_window_size(1280, 1500)
            d.save_screenshot(str(shot))
        finally:
            d.quit()
    img = Image.open(shot)
    assert img.size[0] == 1280
    assert len(np.unique(np.asarray(img.convert("L").resize((64, 80))))) > 20   # a real page, not a blank one
    if os.environ.get("RAY32_REVIEW_SCREENSHOT"):   # RAY32_REVIEW_SCREENSHOT=docs/review.png refreshes the README's
        img.convert("RGB").quantize(colors=128).save(os.environ["RAY32_REVIEW_SCREENSHOT"], optimize=True)

    # The run's manifest: who, when, why; the comment with frame, timecode, reviewer, time.
    m = mf.load_manifest(run_dir)["variants"]
    a = m[GOLDEN]["approval"]
    assert (a["state"], a["by"], a["note"]) == ("approved", REVIEWER, "label reads well") and a["at"]
    assert m[OVERCAST]["approval"]["state"] == "rejected"
    assert m[OVERCAST]["approval"]["note"] == "too cold for the summer launch"
    assert "approval" not in m[FR_GOLDEN] and "approval" not in m[FR_OVERCAST]
    (c,) = m[GOLDEN]["comments"]
    assert (c["frame"], c["timecode"], c["text"], c["by"]) == (7, "00:00:00:07", "label edge shimmers here", REVIEWER)
    assert c["at"]
    # Packaged: only the approved variant; the comment in its manifest.json, the run's, and the timeline.
    dest = deliv / "demo" / "r1"
    assert sorted(p.name for p in (dest / "de").iterdir()) == [GOLDEN]
    assert not (dest / "fr").exists()
    vm = json.loads((dest / "de" / GOLDEN / "manifest.json").read_text())
    assert vm["comments"] == [c] and vm["approval"]["by"] == REVIEWER
    assert json.loads((dest / "manifest.json").read_text())["variants"][GOLDEN]["comments"] == [c]
    import opentimelineio as otio

    (clip,) = list(otio.adapters.read_from_file(str(dest / "timeline.otio")).tracks[0])
    (marker,) = clip.markers
    assert marker.name == "label edge shimmers here" and marker.marked_range.start_time.value == 7
    assert marker.metadata["ray32"]["by"] == REVIEWER
    # The static report shows the comment and the decisions.
    report = (run_dir / "qa_report.html").read_text(encoding="utf-8")
    assert "00:00:00:07 · frame 7 · Rita Reviewer" in report and "label edge shimmers here" in report
    assert "approved · Rita Reviewer" in report and "rejected · Rita Reviewer" in report


def test_hostile_text_stays_text(made, tmp_path):
    """A market value and a prompt from the spreadsheet, and a comment, carrying HTML: shown as text, never run."""
    run_dir = fresh(made, tmp_path)
    attr = '"><img src=x onerror=alert(1)>'

    def hostile(m):
        m["variants"][FR_GOLDEN]["axes"]["market"] = attr   # a market value that tries to leave its attribute
    mf.update_manifest(run_dir, hostile)
    assert HOSTILE_SETTING in mf.load_manifest(run_dir)["variants"][FR_GOLDEN]["prompt"]   # from the sheet
    app = create_app(run_dir, deliverables=tmp_path / "deliv", user="<b>eve</b>")
    payload = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
    with LiveServer(app) as srv:
        d = chrome(tmp_path / "profile")
        try:
            d.get(srv.url)
            fr = section(d, FR_GOLDEN)
            fr.find_element("css selector", ".comment-text").send_keys(payload)
            fr.find_element("css selector", ".add-comment").click()
            wait_for(lambda: "comment at" in msg_text(d, FR_GOLDEN), what="the comment")
            d.get(srv.url)   # and once more as the server renders it
            fr = section(d, FR_GOLDEN)
            assert d.title == "Review · demo / r1"
            assert [e.get_attribute("src") for e in d.find_elements("css selector", "script")] == \
                [srv.url + "static/review.js"]
            assert d.find_elements("css selector", "img") == []
            assert payload in fr.find_element("css selector", "ol.comments li .text").text
            assert fr.find_element("css selector", ".sub .axis").get_attribute("data-value") == attr
            assert attr in fr.find_element("css selector", ".sub").text
            fr.find_element("css selector", "details summary").click()
            assert HOSTILE_SETTING in fr.find_element("css selector", ".prompt").text
            assert d.find_element("id", "reviewer-fixed").text == "<b>eve</b>"
            assert attr in [o.get_attribute("value") for o in d.find_elements(
                "css selector", '.axis-filter[data-axis="market"] option')]
            assert severe(d) == []
        finally:
            d.quit()
    html = (run_dir / "qa_report.html").read_text(encoding="utf-8")   # the static report, too
    assert "<script" not in html.lower() and "&lt;script&gt;document.title" in html


def request(url: str, *, data: dict | None = None, headers: dict | None = None, method: str | None = None):
    """(status, headers, body text) of one HTTP request."""
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method=method, headers={
        **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as ex:
        return ex.code, dict(ex.headers), ex.read().decode("utf-8", "replace")


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_token_required_on_a_non_loopback_address(made, tmp_path):
    run_dir = fresh(made, tmp_path)
    app = create_app(run_dir, deliverables=tmp_path / "deliv", token="s3cret-token")
    with LiveServer(app, host="127.0.0.2") as srv:
        for path in ("", "media/de-aqua500-golden/draft", "static/review.js"):
            status, _, text = request(srv.url + path)
            assert status == 403 and "needs its token" in text, (path, status)
        assert request(srv.url + "?token=wrong")[0] == 403
        status, headers, page = request(srv.url + "?token=s3cret-token")
        assert status == 200 and "s3cret-token" in headers.get("set-cookie", "")
        cookie = {"Cookie": "ray32_review_token=s3cret-token"}
        assert request(srv.url + "media/de-aqua500-golden/draft", headers=cookie)[0] == 200
        data = {"variant": GOLDEN, "state": "approved", "note": "ok", "user": "kim"}
        status, _, text = request(srv.url + "api/decision", data=data, headers={"X-CSRF-Token": csrf_of(page)})
        assert status == 403 and "needs its token" in text
        status, _, text = request(srv.url + "api/decision", data=data,
                                  headers={"X-CSRF-Token": csrf_of(page), "X-Ray32-Token": "s3cret-token"})
        assert status == 200 and json.loads(text)["review"] == "approved"


def test_http_guards_and_bad_input(made, tmp_path):
    run_dir = fresh(made, tmp_path)
    app = create_app(run_dir, deliverables=tmp_path / "deliv")
    with LiveServer(app) as srv:
        status, headers, page = request(srv.url)
        assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
        csrf = {"X-CSRF-Token": csrf_of(page)}
        # Range requests for the video.
        status, headers, _ = request(srv.url + f"media/{GOLDEN}/draft", headers={"Range": "bytes=100-199"})
        size = (made["runs"] / "demo" / "renders").rglob(f"{GOLDEN}_draft.mp4").__next__().stat().st_size
        assert status == 206 and headers["content-range"] == f"bytes 100-199/{size}"
        assert request(srv.url + "media/source", headers={"Range": "bytes=0-9"})[0] == 206
        assert (run_dir / "review" / "source.mp4").is_file()
        status, headers, report = request(srv.url + "report")   # the static report, under its own policy
        assert status == 200 and "QA: campaign demo, run r1" in report
        assert headers["content-security-policy"].startswith("default-src 'none'; img-src data:")
        # Nothing outside the run's folders, whatever the path says.
        for path in ("media/..%2F..%2F..%2Fetc%2Fpasswd/draft", "media/../../manifest.json", "static/..%2Fapp.py",
                     "static/app.py", f"media/{GOLDEN}/prores", "media/nope/draft", "manifest.json"):
            status, _, text = request(srv.url + path)
            assert status == 404 and "root:" not in text and "import" not in text, path
        # A request addressed to another host name (DNS rebinding) is refused.
        assert request(srv.url, headers={"Host": "evil.example:80"})[0] == 421
        # POSTs: CSRF token, JSON, clear messages for bad input; no traceback.
        good = {"variant": GOLDEN, "state": "approved", "note": "fine", "user": "kim"}
        status, _, text = request(srv.url + "api/decision", data=good)
        assert status == 403 and "CSRF" in text
        status, _, text = request(srv.url + "api/decision", data=good,
                                  headers={**csrf, "Origin": "http://evil.example"})
        assert status == 403 and "another site" in text
        assert request(srv.url + "api/decision", method="GET")[0] == 405
        cases = [
            ({**good, "variant": "nope"}, 404, "has no variant 'nope'"),
            ({**good, "note": " "}, 400, "write a note"),
            ({**good, "user": ""}, 400, "type your name once"),
            ({**good, "state": "maybe"}, 400, "'state' must be 'approved' or 'rejected'"),
            ({**good, "variant": FR_GOLDEN}, 400, "failed QA (the market artwork reads"),
            ({**good, "stamp": "0123456789abcdef"}, 409, "rendered again since you loaded it; reload the page"),
        ]
        for body, code, words in cases:
            status, _, text = request(srv.url + "api/decision", data=body, headers=csrf)
            assert status == code and words in json.loads(text)["error"], (body, status, text)
            assert "Traceback" not in text
        comment = {"variant": GOLDEN, "text": "x", "user": "kim"}
        for body, code, words in [
            ({**comment, "frame": 12}, 400, "frame 12 is outside the clip of de-aqua500-golden: it has frames 0-11"),
            ({**comment, "time": "00:00:05:00"}, 400, "frame 120 is outside the clip"),
            ({**comment, "time": "soon"}, 400, "cannot read 'soon' as a time"),
            ({**comment, "frame": "3"}, 400, "'frame' must be a whole frame number"),
            ({**comment, "frame": 3, "text": ""}, 400, "write the comment first"),
            ({**comment}, 400, "a comment needs a time"),
        ]:
            status, _, text = request(srv.url + "api/comment", data=body, headers=csrf)
            assert status == code and words in json.loads(text)["error"], (body, status, text)
        req = urllib.request.Request(srv.url + "api/comment", data=b"{not json", method="POST",
                                     headers={"Content-Type": "application/json", **csrf})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 400 and "not valid JSON" in err.value.read().decode()
        assert "approval" not in mf.load_manifest(run_dir)["variants"][GOLDEN]   # nothing above was recorded
        # A page loaded before a re-render: its decision is refused with a message to reload.
        stamp = re.search(rf'data-slug="{GOLDEN}"[^>]*data-stamp="([0-9a-f]+)"', page).group(1)

        def rerender(m):
            m["variants"][GOLDEN]["timings"] = {"render_s": 9.9, "qa_s": 1.0}
        mf.update_manifest(run_dir, rerender)
        status, _, text = request(srv.url + "api/decision", data={**good, "stamp": stamp}, headers=csrf)
        assert status == 409 and "reload the page" in text

        # Two reviewers at once: every decision and comment is kept (the manifest's lock).
        results = []

        def post(path, body):
            results.append(request(srv.url + path, data=body, headers=csrf)[0])
        jobs = [("api/decision", {**good, "variant": OVERCAST, "user": "ana"}),
                ("api/decision", {**good, "variant": FR_GOLDEN, "user": "ben", "override": "client signed off"})] + \
               [("api/comment", {**comment, "frame": i, "user": f"r{i}"}) for i in range(4)]
        threads = [threading.Thread(target=post, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == [200] * len(jobs)
        m = mf.load_manifest(run_dir)["variants"]
        assert m[OVERCAST]["approval"]["by"] == "ana"
        assert m[FR_GOLDEN]["approval"]["by"] == "ben" and m[FR_GOLDEN]["approval"]["override"] == "client signed off"
        assert sorted(c["frame"] for c in m[GOLDEN]["comments"]) == [0, 1, 2, 3]
        assert sorted(p.name for p in (tmp_path / "deliv" / "demo" / "r1").glob("*/*")) == [OVERCAST, FR_GOLDEN]


def ray32(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY32_USER="")
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=kwargs.get("cwd"), start_new_session=True)


def url_from(proc: subprocess.Popen, timeout: float = 180) -> tuple[str, list[str]]:
    lines: list[str] = []
    found: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("review: http"):
                found.append(line.split()[1])
                return
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    if not found:
        proc.kill()
        raise AssertionError("no review URL printed:\n" + "".join(lines)[-3000:])
    return found[0], lines


def stop(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_review_command(made, tmp_path):
    """``ray32 review`` on a run with failed variants: on 127.0.0.2 it makes a token and prints the URL with it."""
    run_dir = fresh(made, tmp_path)
    port = free_port("127.0.0.2")
    proc = ray32("review", str(run_dir), "--host", "127.0.0.2", "--port", str(port), "--deliverables",
                 str(tmp_path / "deliv"))
    try:
        url, _ = url_from(proc)
        assert url.startswith(f"http://127.0.0.2:{port}/?token=") and len(url.split("=", 1)[1]) >= 20
        assert request(url.split("?")[0])[0] == 403
        status, _, page = request(url)
        assert status == 200 and f'data-slug="{FR_GOLDEN}" data-qa="fail"' in page
        assert 'id="reviewer"' in page   # no --user, no $RAY32_USER: the page asks for the name
        # The port is taken now: a second server says so, without a traceback.
        busy = subprocess.run([sys.executable, "-m", "flows.cli", "review", str(run_dir), "--host", "127.0.0.2",
                               "--port", str(port)], env=dict(os.environ, PYTHONPATH=str(REPO)),
                              capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and f"cannot listen on 127.0.0.2:{port}" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        stop(proc)
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "review", "nope/latest", "--runs-dir", str(tmp_path)],
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no run 'nope/latest'" in bad.stderr


def test_campaign_run_review_prints_the_url(made, tmp_path):
    """``ray32 campaign run --review``: the run (all cached here), then the review page is served at the URL
    it prints."""
    port = free_port()
    proc = ray32("campaign", "run", str(made["camp"]), "--runs-dir", str(made["runs"]), "--deliverables",
                 str(tmp_path / "deliv"), "--run", "r2", "--review", "--review-port", str(port))
    try:
        url, lines = url_from(proc)
        assert url == f"http://127.0.0.1:{port}/"
        assert any(line.startswith("review:       ray32 review ") for line in lines)
        status, _, page = request(url)
        assert status == 200 and "Review · demo / r2" in page
    finally:
        stop(proc)
