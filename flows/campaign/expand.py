"""Expansion: the cartesian product of the axes, filtered by the rules, each combination resolved into a
planned variant (slug, id, prompt, request). Pure: values in, values out; no file reading here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from flows.campaign import ids, prompts
from flows.campaign.errors import Problem
from flows.campaign.spec import CampaignSpec

REQUEST_FIELDS = ("prompt", "keyframes", "motion_adherence", "structure_adherence", "locks", "mode", "reframe",
                  "grade", "label_swap", "seed", "outputs", "engine_options")
"""The RenderRequest field names (CONTRACTS.md): a planned request has exactly these keys."""

GRADE_VALUES = ("temperature", "tint", "exposure", "contrast", "saturation")
OVERRIDE_FIELDS = ("seed", "motion_adherence", "structure_adherence", "mode", "extra_prompt")


@dataclass(frozen=True)
class AxisRow:
    """One row of an axis sheet: its key, where it came from, its cells (by field) and its overrides."""

    axis: str
    key: str
    values: dict
    overrides: dict = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class Rule:
    """One row of the rules sheet: include / exclude / override, matching axis keys (None = any)."""

    action: str
    match: dict
    overrides: dict
    where: str = ""

    def matches(self, keys: dict) -> bool:
        return all(keys.get(a) == k for a, k in self.match.items())


def parse_overrides(values: dict) -> dict:
    """The override cells of a row as typed values (cells already validated as text)."""
    out = {}
    for f in OVERRIDE_FIELDS:
        v = values.get(f)
        if v is None:
            continue
        out[f] = int(v) if f == "seed" else float(v) if f.endswith("adherence") else v
    return out


def reframe_rows(spec: CampaignSpec) -> list[AxisRow]:
    """The reframe targets of campaign.yaml as rows of an implicit last axis ``reframe``."""
    rows = []
    for r in spec.reframe:
        key = r.aspect.replace(":", "x") + ("-outpaint" if r.method == "outpaint" else "")
        rows.append(AxisRow("reframe", key, {"key": key, "aspect": r.aspect, "method": r.method},
                            where="campaign.yaml reframe"))
    return rows


def _grade(g, lut_cell: str | None, assets: dict[str, str]) -> dict | None:
    """The request's grade for a lighting preset (``g``, may be None) and its sheet row's ``lut`` cell."""
    if g is None and not lut_cell:
        return None
    values = g.model_dump() if g is not None else {"temperature": 6500.0, "tint": 0.0, "exposure": 0.0,
                                                      "contrast": 1.0, "saturation": 1.0, "lut": None,
                                                      "keyframes": []}
    lut = lut_cell or values["lut"]
    values["lut"] = assets[lut] if lut else None
    # A grade keyframe is a whole grade: values it leaves out are the preset's.
    values["keyframes"] = [{**{k: values[k] for k in GRADE_VALUES}, **{k: v for k, v in key.items() if v is not None}}
                           for key in values["keyframes"]]
    return {k: values[k] for k in (*GRADE_VALUES, "lut", "keyframes")}


@dataclass
class Expansion:
    variants: list[dict]
    problems: list[Problem]
    warnings: list[str]
    excluded: int = 0


def expand(spec: CampaignSpec, axes: dict[str, list[AxisRow]], rules: list[Rule], *, template, template_name: str,
           source_hash: str, trim: dict | None, engine_version: str, assets: dict[str, str],
           asset_hashes: dict[str, str]) -> Expansion:
    """Expand the matrix into planned variants, in a deterministic order (axes in campaign.yaml order, rows in
    sheet order).

    Args:
        spec: the campaign.
        axes: axis -> its rows (the implicit ``reframe`` axis included when targets are given).
        rules: the rules sheet's rows, in order.
        template: the loaded jinja template.
        template_name: its file as shown in messages.
        source_hash: the source's content hash.
        trim: the source trim, or None.
        engine_version: the engine version for the ids.
        assets: every asset path as written in campaign.yaml or a sheet -> the path relative to the campaign.
        asset_hashes: relative path -> content hash.

    Returns:
        ``Expansion(variants, problems, warnings, excluded)``; problems are template errors (one per kind).
    """
    names = list(axes)
    includes = [r for r in rules if r.action == "include"]
    excludes = [r for r in rules if r.action == "exclude"]
    overrides = [r for r in rules if r.action == "override"]
    d = spec.defaults
    base_overrides = {"seed": d.seed, "motion_adherence": d.motion_adherence,
                      "structure_adherence": d.structure_adherence, "mode": d.mode}
    keyframes = [{"time": k.time, "guide": assets[k.guide] if k.guide else None, "prompt": k.prompt}
                 for k in spec.keyframes]
    locks = [{"kind": lk.kind, "polygon": lk.polygon, "reference": assets[lk.reference] if lk.reference else None}
             for lk in spec.locks]
    engine_options = dict(spec.engine.options)
    if d.steps is not None:
        engine_options["steps"] = d.steps
    outputs = list(spec.outputs)
    fixed_assets = {p for p in [*(k["guide"] for k in keyframes), *(lk["reference"] for lk in locks)] if p}

    variants, problems, warnings = [], {}, {}
    excluded = 0
    seen_slugs: dict[str, tuple] = {}
    label_cache: dict[tuple, tuple] = {}   # (product, market) -> (label_swap, locks): shared by its variants
    grade_cache: dict[tuple, dict | None] = {}
    reframe_cache: dict[str, dict] = {}
    memo: dict = {}                        # serialised shared sub-objects, for the ids
    for combo in itertools.product(*(axes[n] for n in names)):
        keys = {row.axis: row.key for row in combo}
        if (includes and not any(r.matches(keys) for r in includes)) or any(r.matches(keys) for r in excludes):
            excluded += 1
            continue
        o = dict(base_overrides)
        extra = []
        for row in combo:
            for k, v in row.overrides.items():
                if k == "extra_prompt":
                    extra.append(v)
                else:
                    o[k] = v
        for r in overrides:
            if r.matches(keys):
                for k, v in r.overrides.items():
                    if k == "extra_prompt":
                        extra.append(v)
                    else:
                        o[k] = v
        by_axis = {row.axis: row for row in combo}
        market = by_axis.get("market")
        product_row = by_axis.get("product")
        lighting_row = by_axis.get("lighting")
        product = spec.products.get(product_row.key) if product_row else None
        label_key = (product_row.key if product_row else None, market.key if market else None)
        if label_key not in label_cache:
            label_swap = None
            if product is not None and product.labels and market is not None and market.key in product.labels:
                art = product.labels[market.key]
                label_swap = {"artwork": assets[art.artwork], "text": art.text, "corners": product.label.corners,
                              "frame": product.label.frame}
            label_locks = locks + ([{"kind": "label", "polygon": label_swap["corners"],
                                     "reference": label_swap["artwork"]}]
                                   if label_swap is not None and product.lock_label else [])
            label_cache[label_key] = (label_swap, label_locks)
        label_swap, variant_locks = label_cache[label_key]
        lighting_prompt = None
        grade = None
        if lighting_row is not None:
            lighting_prompt = spec.lighting[lighting_row.key].prompt
            grade_key = (lighting_row.key, lighting_row.values.get("lut"))
            if grade_key not in grade_cache:
                grade_cache[grade_key] = _grade(spec.lighting[lighting_row.key].grade, lighting_row.values.get("lut"),
                                                assets)
            grade = grade_cache[grade_key]
        reframe_row = by_axis.get("reframe")
        reframe = None
        if reframe_row is not None:
            reframe = reframe_cache.setdefault(reframe_row.key, {"aspect": reframe_row.values["aspect"],
                                                                 "method": reframe_row.values["method"]})
        context = {
            "campaign": {"name": spec.name, "description": spec.description},
            "style": spec.style,
            "must_stay": list(spec.must_stay),
            "axes": {a: r.values for a, r in by_axis.items()},
            "extra_prompt": " ".join(extra),
            "mode": o["mode"],
            "reframe": reframe,
        }
        if market is not None:
            context["market"] = market.values
        if product_row is not None:
            context["product"] = product_row.values
        if lighting_row is not None:
            context["lighting"] = dict(lighting_row.values, prompt=lighting_prompt)
        if label_swap is not None:
            context["label"] = {"text": label_swap["text"], "lines": label_swap["text"].split("\n")}
        for a, r in by_axis.items():
            context.setdefault(a, r.values)
        try:
            prompt = prompts.render(template, context)
        except Exception as ex:  # jinja's errors: turned into one Problem per distinct message
            p = prompts.template_problem(ex, template_name.rsplit("/", 1)[-1], template_name)
            problems.setdefault(p.message, p)
            continue
        lint = prompts.lint(prompt, spec.must_stay)
        slug = "-".join(row.key for row in combo)
        request = {
            "prompt": prompt,
            "keyframes": keyframes,
            "motion_adherence": o["motion_adherence"],
            "structure_adherence": o["structure_adherence"],
            "locks": variant_locks,
            "mode": o["mode"],
            "reframe": reframe,
            "grade": grade,
            "label_swap": label_swap,
            "seed": o["seed"],
            "outputs": outputs,
            "engine_options": engine_options,
        }
        used = set(fixed_assets)
        if label_swap is not None:
            used.add(label_swap["artwork"])
        if grade is not None and grade["lut"]:
            used.add(grade["lut"])
        vid = ids.fast_variant_id(source_hash=source_hash, trim=trim, engine=spec.engine.name,
                                  engine_version=engine_version, request=request,
                                  assets={p: asset_hashes[p] for p in sorted(used)}, memo=memo)
        if slug in seen_slugs:
            problems.setdefault(f"slug {slug}", Problem(
                file="campaign.yaml", message=f"two combinations give the same slug '{slug}' "
                                              f"({seen_slugs[slug]} and {tuple(keys.values())})",
                fix="rename a key so that keys joined with '-' stay distinct (avoid '-' inside keys)"))
        seen_slugs[slug] = tuple(keys.values())
        for w in lint:
            warnings.setdefault(w, []).append(slug)
        variants.append({
            "variant_id": vid, "slug": slug, "axes": keys, "prompt": prompt, "request": request,
            "engine": spec.engine.name, "engine_version": engine_version, "outputs": outputs,
            "deliver": spec.deliver_for(keys.get("market")), "qa_overrides": dict(spec.qa), "lint": lint,
        })
    warning_lines = [f"{w} ({len(s)} variant{'s' if len(s) != 1 else ''}: {', '.join(s[:3])}"
                     f"{', ...' if len(s) > 3 else ''})" for w, s in warnings.items()]
    return Expansion(variants, list(problems.values()), warning_lines, excluded)
