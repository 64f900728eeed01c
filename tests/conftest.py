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
