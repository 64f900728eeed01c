"""Helpers shared by the test_flow_* files: a tiny two-variant campaign and a Prefect server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "campaigns" / "demo"
PY = sys.executable


def tiny_campaign(dest: Path, *, lighting=("golden", "overcast"), markets=("de",), frames: int = 24,
                  deliver: tuple[str, ...] = ()) -> Path:
    """A copy of the demo campaign reduced to ``markets``, one product and ``lighting`` (2 variants by default),
    reading the CSV sheets, on the first ``frames`` frames of the demo shot, delivering to ``deliver`` (none by
    default: the flat per-variant layout)."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns("demo.xlsx"))
    text = (dest / "campaign.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^deliver:.*?(?=^\S)", f"deliver: [{', '.join(deliver)}]\n", text, count=1)
    text = text.replace("workbook: matrix/demo.xlsx", "csv: matrix/csv", 1)
    text = text.replace("  path: source/demo_shot.mp4\n",
                        f"  path: source/demo_shot.mp4\n  trim: {{end: {frames}f}}\n", 1)
    (dest / "campaign.yaml").write_text(text, encoding="utf-8")
    csv = dest / "matrix" / "csv"
    keep_rows(csv / "markets.csv", list(markets))
    keep_rows(csv / "products.csv", ["aqua500"])
    keep_rows(csv / "lighting.csv", list(lighting))
    (csv / "rules.csv").unlink()
    text = (dest / "campaign.yaml").read_text(encoding="utf-8").replace("  rules: rules\n", "", 1)
    (dest / "campaign.yaml").write_text(text, encoding="utf-8")
    return dest


def keep_rows(path: Path, keys: list[str]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in keys]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None = None) -> dict:
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_LOGGING_LEVEL="WARNING", PYTHONPATH=str(REPO))
    if api_url:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
    return env


def start_server(home: Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """``prefect server start`` on 127.0.0.1 and a free port; returns (process, api url) once it answers."""
    import urllib.request

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(Path(PY).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=prefect_env(home), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError("prefect server did not answer in time")


def drain_prefect(timeout: float = 30) -> None:
    """Send what Prefect's API log and event workers of this process still hold, and wait for it: before the
    server they talk to stops (Prefect's own order, ``prefect_test_harness``)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout, at_exit=False)


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
