import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_shot(tmp_path_factory):
    """The synthetic demo shot and its ground truth, made once per test session."""
    from ray32.demo_shot import make_demo_shot

    return make_demo_shot(tmp_path_factory.mktemp("demo"))


# --- flows (issue 7): one real `prefect server start` for every test_flow_* file, stopped at the end -------------
@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A Prefect server on 127.0.0.1 and a free port (temp PREFECT_HOME); in-process flows (in any thread) and
    subprocesses (through ``PREFECT_API_URL`` in the environment) talk to it. Yields the API URL.

    As ``prefect.testing.utilities.prefect_test_harness`` does: the server is also made the process-global
    setting, because a flow run in a new thread (test_flow_review) does not see ``temporary_settings`` and
    would boot a temporary server inside pytest, whose stop at exit then writes to pytest's closed stderr
    ("--- Logging error ---"); and Prefect's API log and event workers are drained before the server stops, or
    what they still hold is sent at exit to a dead server ("--- Error logging to API ---")."""
    from flow_util import drain_prefect, start_server, stop_server
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = tmp_path_factory.mktemp("prefect_home")
    proc, url = start_server(home)
    old = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(home))
    refresh_global_settings_context()
    try:
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
            yield url
            drain_prefect()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        refresh_global_settings_context()
        stop_server(proc)
