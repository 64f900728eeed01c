"""One model per worker: a campaign run loads a generative engine's weights once and reuses the engine (and its
prompt cache) for every variant; a campaign names its weights (campaign.yaml ``engine.model_dir``, ``--model-dir``,
``$RAY32_MODEL_DIR``) and a missing or incomplete folder is reported before Prefect starts."""

from __future__ import annotations

import shutil

import pytest
from flow_util import tiny_campaign

from flows import pipeline
from flows.run import run_campaign
from ray32 import engines
from ray32.engines import wan_vace


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from ray32.engines.tiny_models import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("w") / "tiny-wan-vace")


def wan_campaign(dest, model_dir: str | None, frames: int = 5):
    camp = tiny_campaign(dest, lighting=("golden",), markets=("de", "fr", "us"), frames=frames)
    text = (camp / "campaign.yaml").read_text(encoding="utf-8")
    engine = "engine:\n  name: wan-vace\n  options: {steps: 1, guidance: 1.0, max_side: 64}\n"
    if model_dir is not None:
        engine += f"  model_dir: {model_dir}\n"
    (camp / "campaign.yaml").write_text(text.replace("engine:\n  name: composite\n", engine, 1), encoding="utf-8")
    return camp


def test_a_three_variant_run_loads_the_model_once(prefect_api, weights, tmp_path, monkeypatch):
    shutil.copytree(weights, tmp_path / "camp-weights")
    camp = wan_campaign(tmp_path / "camp", "../camp-weights")      # relative to the campaign folder
    loads, prompts = [], []
    real_load, real_encode = wan_vace.load_pipeline, wan_vace.WanVaceEngine.encode_prompt

    def counting_load(*a, **k):
        loads.append(a[0] if a else k.get("model_dir"))
        return real_load(*a, **k)

    def counting_encode(self, prompt, *a, **k):
        prompts.append((id(self), prompt, prompt in {p.split(":", 1)[1] for p in self._prompts}))
        return real_encode(self, prompt, *a, **k)

    monkeypatch.setattr(wan_vace, "load_pipeline", counting_load)
    monkeypatch.setattr(wan_vace.WanVaceEngine, "encode_prompt", counting_encode)
    monkeypatch.setattr(engines, "_SHARED", {})
    monkeypatch.setattr(pipeline, "_MEMO", {})
    result = run_campaign(camp, runs_dir=str(tmp_path / "runs"), deliverables_dir=str(tmp_path / "deliv"),
                          cache_dir=str(tmp_path / "cache"), workers=3, package=False)
    assert result["variants"] == 3 and result["rendered"] == 3 and not result["failed"], result["failed"]
    assert len(loads) == 1 and str(loads[0]) == str((tmp_path / "camp-weights").resolve())
    assert len({engine for engine, _, _ in prompts}) == 1                 # one engine served every variant
    assert len(prompts) == 3 and len({p for _, p, _ in prompts}) == 3     # three prompts, encoded once each


def test_missing_weights_are_named_before_prefect_starts(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    camp = wan_campaign(tmp_path / "camp", "weights")
    started = []
    monkeypatch.setattr("flows.run.campaign_flow.with_options", lambda *a, **k: started.append(1) or 1 / 0)
    rc = main(["campaign", "run", str(camp), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and not started and "Traceback" not in err
    assert f"no Wan2.1-VACE model in {camp / 'weights'} (does not exist)" in err and "hf download" in err


def test_an_incomplete_model_folder_says_what_is_missing(weights, tmp_path, monkeypatch):
    from ray32.engines import check_weights
    from ray32.errors import Ray32Error

    broken = tmp_path / "broken"
    shutil.copytree(weights, broken)
    for f in (broken / "transformer").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(Ray32Error, match=r"incomplete: missing transformer/\*\.safetensors"):
        check_weights("wan-vace", broken)
    # --model-dir beats campaign.yaml; $RAY32_MODEL_DIR is the fallback (a cluster's workers)
    monkeypatch.setenv(engines.MODEL_DIR_ENV, str(weights))
    assert check_weights("wan-vace") == weights
    assert engines.resolve_model_dir("wan-vace", broken) == broken
    assert engines.resolve_model_dir("composite") is None
    with pytest.raises(Ray32Error, match="a model folder is for engines that take weights \\(wan-vace\\), not "
                                         "'composite'"):
        check_weights("composite", weights)
