"""The campaign run's prepare step measures QA's source side once for the variants it will render
(``flows.pipeline.measure_source``): one pass per grade and artwork on each variant's own prepared shot, kept next
to it; and a pass that fails for any reason is logged and never fails the run (it only saves time)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flows import pipeline
from flows.campaign import plan_campaign
from tests.flow_util import tiny_campaign


def _ctx(plan, camp: Path, tmp: Path, name: str) -> pipeline.RunContext:
    return pipeline.RunContext(campaign=plan.campaign, root=str(camp), source=str(camp / plan.source),
                               trim=plan.trim, runs_dir=str(tmp / f"runs-{name}"), engine="composite",
                               qa_samples=2, cache_dir=str(tmp / f"cache-{name}"))


def test_the_prepare_steps_source_pass_is_kept_and_a_failing_one_never_fails_the_run(tmp_path, monkeypatch, caplog):
    camp = tiny_campaign(tmp_path / "camp", lighting=("golden", "overcast"), frames=12)
    plan = plan_campaign(camp)
    reps = pipeline.source_side_variants(plan.variants)
    assert len(reps) == 2  # one market, two grades
    ctx = _ctx(plan, camp, tmp_path, "a")
    exr_only = dataclasses.replace(ctx, formats=["exr"])
    assert pipeline.source_side_variants(plan.variants, exr_only) == []  # nothing QA decodes: no pass
    done = pipeline.measure_source(ctx, reps)
    assert len(done) == 1 and done[0]["passes"] == 2 and done[0]["measured"]
    assert list(Path(ctx.cache_dir).rglob("qa-source-*.pkl"))

    import qa.metrics

    def boom(*a, **k):
        raise RuntimeError("the OCR models are broken")

    monkeypatch.setattr(qa.metrics, "measure_source", boom)
    ctx = _ctx(plan, camp, tmp_path, "b")
    with caplog.at_level("WARNING", logger="flows.pipeline"):
        assert pipeline.measure_source(ctx, reps) == []
    assert "source-side pass stopped (RuntimeError: the OCR models are broken)" in caplog.text
    record = pipeline.render_variant(ctx, plan.variants[0])  # the variant's own QA measures the source side
    assert record["qa_summary"] and record["outputs"]
