"""Helpers for the review tests: a tiny run with QA-failed variants, a live server in a thread, headless Chromium
driven by Selenium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

from flow_util import tiny_campaign

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE_MARKET = "<img src=x onerror=alert(1)>"
HOSTILE_SETTING = "a café <script>alert(2)</script> by the sea"


def review_campaign(dest: Path) -> Path:
    """The tiny campaign with markets de and fr, lighting golden and overcast (4 variants, 12 frames). France's
    label is given Germany's artwork, so both fr variants fail QA (the label reads 'AQUA FRISCH'); France's
    market sheet row carries an HTML payload in its name and setting (the setting reaches the prompt)."""
    camp = tiny_campaign(dest, lighting=("golden", "overcast"), markets=("de", "fr"), frames=12)
    y = (camp / "campaign.yaml").read_text(encoding="utf-8")
    y = y.replace("fr: {artwork: labels/aqua500-fr.png", "fr: {artwork: labels/aqua500-de.png", 1)
    (camp / "campaign.yaml").write_text(y, encoding="utf-8")
    sheet = camp / "matrix" / "csv" / "markets.csv"
    lines = sheet.read_text(encoding="utf-8").splitlines()
    lines = [f"fr,{HOSTILE_MARKET},fr,{HOSTILE_SETTING}" if ln.startswith("fr,") else ln for ln in lines]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return camp


def copy_run(runs: Path, run_dir: Path, dest: Path) -> Path:
    """A copy of the runs folder (renders + run) under ``dest``; returns the copied run folder."""
    shutil.copytree(runs, dest / "runs")
    return dest / "runs" / run_dir.relative_to(runs)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on ``host`` and a free port, in a thread (``with LiveServer(app) as url:``)."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        self.host, self.port = host, free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("review server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def chrome(profile: Path, width: int = 1280, height: int = 1000):
    """Headless Chromium under Selenium, with a fresh profile and the browser console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


def wait_for(predicate, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
