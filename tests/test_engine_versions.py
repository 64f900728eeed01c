"""The plan's static engine-version table (kept so planning never imports an engine) agrees with the engines."""

from flows.campaign.ids import ENGINE_VERSIONS
from ray32.engines import available_engines, get_engine


def test_plan_engine_versions_match_the_registry():
    names = [n for n in ENGINE_VERSIONS if n in available_engines()]
    assert "composite" in names
    for name in names:
        try:
            engine = get_engine(name)
        except Exception:  # an engine that cannot start here (no weights) still declares its version
            continue
        assert ENGINE_VERSIONS[name] == engine.version, name
