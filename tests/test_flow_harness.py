"""The test suite's Prefect server (conftest's ``prefect_api``) ends a session cleanly.

A pytest session of its own (a subprocess) runs two tiny flows against the fixture's server: one in a new thread
(as test_flow_review runs the campaign) and one that ends with 200 log lines for Prefect's API log worker.
Before: the thread's flow did not see the fixture's settings and booted a temporary Prefect server inside pytest,
whose stop at exit wrote to pytest's closed stderr ("--- Logging error --- ... Stopping temporary server"), and
the log lines still queued when the fixture stopped its server were sent at exit to a dead server ("--- Error
logging to API --- All connection attempts failed"). Both printed after the summary, with exit status 0.
"""

from __future__ import annotations

import subprocess
import sys

from flow_util import REPO, prefect_env

INNER = '''
import threading

from conftest import prefect_api  # noqa: F401  the session fixture under test
from prefect import flow, get_run_logger


@flow
def tiny(n: int):
    from prefect.settings import get_current_settings

    log = get_run_logger()
    for i in range(n):
        log.warning("tiny line %d", i)
    return str(get_current_settings().api.url)


def test_tiny_flows_here_and_in_a_thread_use_the_server(prefect_api):
    out = {}
    th = threading.Thread(target=lambda: out.update(url=tiny(3)))
    th.start()
    th.join(180)
    here = tiny(200)  # ends with 200 lines for Prefect's API log worker to send as the session ends
    assert (out.get("url"), here) == (prefect_api, prefect_api)
'''


def test_a_session_with_the_prefect_server_ends_without_logging_errors(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    env = prefect_env(tmp_path / "home")
    env["PYTHONPATH"] = f"{REPO}:{REPO / 'tests'}"
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"  # so a wrongly booted server fails the assert
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "1 passed" in out, out[-3000:]
    for bad in ("Logging error", "Error logging to API", "Traceback", "Stopping temporary server"):
        assert bad not in out, f"{bad!r} printed by the session:\n{out[-3000:]}"
