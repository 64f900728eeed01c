"""The engine registry is the one home of an engine's version and needs; the engines and flows/ read it there."""

from flows.campaign.ids import engine_version
from ray32.engines import ENGINES, available_engines, engine_info, get_engine


def test_engine_classes_carry_the_registry_version():
    names = [n for n in ("composite", "wan-vace") if n in available_engines()]   # (tests register others)
    assert "composite" in names
    for name in names:
        assert get_engine(name).version == ENGINES[name].version, name   # constructing loads no weights
        assert engine_version(name) == ENGINES[name].version
    assert engine_version("nope") == "0" and engine_version("composite", "7") == "7"


def test_registry_says_which_engines_want_a_gpu_and_weights():
    assert engine_info("wan-vace").gpu and engine_info("wan-vace").weights
    assert not engine_info("composite").gpu and not engine_info("composite").weights


def test_flows_keep_no_copy_of_engine_facts():
    """No engine-version table or GPU-engine list in flows/ (an `ltx` that did not exist lived in both)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "flows"
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "ENGINE_VERSIONS" not in text and "GPU_ENGINES" not in text and '"ltx"' not in text, path
