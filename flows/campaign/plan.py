"""Planning a campaign: campaign.yaml + matrix sheets + prompt template -> the list of planned variants.

Example:
    >>> plan = plan_campaign("campaigns/demo")            # doctest: +SKIP
    >>> plan.variants[0]["slug"], plan.variants[0]["variant_id"]   # doctest: +SKIP
    ('de-aqua500-golden', '3f0c...')
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from flows.campaign import expand as expansion
from flows.campaign import files, ids, prompts
from flows.campaign.errors import CampaignError, Problems
from flows.campaign.sheets import Table, axis_columns, read_tables, rules_columns
from flows.campaign.spec import SPEC_FILE, CampaignSpec, Matrix, _load, _yaml_node_line, resolve_asset
from flows.campaign.validate import validate_tables

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """A planned campaign.

    Attributes:
        campaign: the campaign name.
        root: the campaign folder.
        source: the source shot, relative to the campaign folder.
        source_hash: its content hash (``ray32.shot.content_hash``).
        trim: ``{"start", "end"}`` as written, or None.
        engine, engine_version: what renders it. model_dir: campaign.yaml's ``engine.model_dir`` made absolute
            (None: not given).
        axes: the axis names in expansion order.
        variants: the planned variants (plain dicts: variant_id, slug, axes, prompt, request, engine,
            engine_version, outputs, qa_overrides, lint).
        warnings: prompt lint warnings, one line per kind.
        excluded: combinations removed by the rules.
        schedule: ``{"cron", "timezone"}`` or None.
        checks: how many sheets were checked with Great Expectations and how many came from the cache.
        input_warnings: what the files and the engine suggest is a mistake without being an error (an artwork
            far from its label's shape, a control the engine does not use), one line each.
    """

    campaign: str
    root: Path
    source: str
    source_hash: str
    trim: dict | None
    engine: str
    engine_version: str
    axes: list[str]
    variants: list[dict]
    warnings: list[str] = field(default_factory=list)
    excluded: int = 0
    schedule: dict | None = None
    checks: dict = field(default_factory=dict)
    input_warnings: list[str] = field(default_factory=list)
    model_dir: str | None = None

    def to_dict(self) -> dict:
        return {"campaign": self.campaign, "root": str(self.root), "source": self.source,
                "source_hash": self.source_hash, "trim": self.trim, "engine": self.engine,
                "engine_version": self.engine_version, "axes": self.axes, "excluded": self.excluded,
                "schedule": self.schedule, "warnings": self.warnings, "input_warnings": self.input_warnings,
                "variants": self.variants}


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _spec_assets(spec: CampaignSpec) -> list[tuple[tuple, str]]:
    """Every asset path campaign.yaml names, with its key path."""
    out = []
    for p, prod in spec.products.items():
        for m, art in prod.labels.items():
            out.append((("products", p, "labels", m, "artwork"), art.artwork))
    for k, preset in spec.lighting.items():
        if preset.grade is not None and preset.grade.lut:
            out.append((("lighting", k, "grade", "lut"), preset.grade.lut))
    for i, kf in enumerate(spec.keyframes):
        if kf.guide:
            out.append((("keyframes", i, "guide"), kf.guide))
    for i, lk in enumerate(spec.locks):
        if lk.reference:
            out.append((("locks", i, "reference"), lk.reference))
    return out


def _key_text(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _matrix_source(spec_matrix: Matrix, root: Path, matrix: str | os.PathLike | None, problems: Problems):
    """(workbook, csv_dir) relative to the campaign folder: campaign.yaml's, or the ``matrix`` override."""
    if matrix is None:
        return spec_matrix.workbook, spec_matrix.csv
    p = Path(matrix)
    target = (p if p.is_absolute() else Path.cwd() / p).resolve()
    if not target.exists():
        target = (root / p).resolve()
    if not target.exists() or not target.is_relative_to(root.resolve()):
        problems.add(str(matrix), "the matrix must be an .xlsx file or a folder of .csv files inside the campaign "
                                  "folder", f"give a path inside {root}")
        return None, None
    rel = target.relative_to(root.resolve()).as_posix()
    return (None, rel) if target.is_dir() else (rel, None)


def _check_sheets(root: Path, spec_matrix: Matrix, matrix_override, problems: Problems, *, products: dict | None,
                  lighting: dict | None, use_cache: bool):
    """Read the sheets, bind their headers and check their rows. ``products`` / ``lighting`` (campaign.yaml's)
    give the allowed keys; None when campaign.yaml is broken and they are not known.

    Returns:
        (tables, axis -> bound table, the rules table or None, check statistics).
    """
    workbook, csv_dir = _matrix_source(spec_matrix, root, matrix_override, problems)
    sheet_names = list(dict.fromkeys(list(spec_matrix.axes.values()) +
                                     ([spec_matrix.rules] if spec_matrix.rules else [])))
    tables: dict[str, Table] = {}
    if workbook or csv_dir:
        tables = read_tables(root, workbook=workbook, csv_dir=csv_dir, sheets=sheet_names, problems=problems)
    label_markets = sorted({m for p in (products or {}).values() for m in p.labels})
    to_check = []
    bound_axes = {}
    for axis, sheet in spec_matrix.axes.items():
        table = tables.get(sheet)
        if table is None:
            continue
        cols = list(axis_columns(axis))
        allowed, fix = None, ""
        if axis == "market" and label_markets:
            allowed, fix = label_markets, ("add the market's label under products.<product>.labels in "
                                           "campaign.yaml, or correct the code")
        elif axis == "product" and products:
            allowed, fix = sorted(products), "add the product under products: in campaign.yaml, or correct it"
        elif axis == "lighting" and lighting is not None:
            allowed, fix = sorted(lighting), "add the preset under lighting: in campaign.yaml, or correct it"
        if allowed is not None:
            cols[0] = replace(cols[0], allowed=tuple(allowed), allowed_fix=fix)
        cols = tuple(cols)
        table.bind(cols, problems)
        to_check.append((table, cols))
        bound_axes[axis] = table
    rules_table = tables.get(spec_matrix.rules) if spec_matrix.rules else None
    if rules_table is not None:
        keys = {a: [t.value(c, "key") for _, c in bound_axes[a].rows if t.value(c, "key")] if a in bound_axes
                else None for a in spec_matrix.axes for t in [bound_axes.get(a)]}
        cols = rules_columns(keys)
        rules_table.bind(cols, problems, allow_unknown=False)
        to_check.append((rules_table, cols))
    checks = validate_tables(to_check, root, problems, use_cache=use_cache) if to_check else {}
    return tables, bound_axes, rules_table, checks


def _sheet_problems_despite_spec(root: Path, matrix_override, use_cache: bool) -> list:
    """When campaign.yaml has problems but its ``matrix`` part is sound, the sheets' problems too (without the
    allowed keys that come from the broken file), so that one run reports everything it can."""
    import yaml

    try:
        data = yaml.safe_load((root / SPEC_FILE).read_text(encoding="utf-8"))
        spec_matrix = Matrix.model_validate(data["matrix"])
    except Exception:  # the YAML problems already say what is wrong with it
        return []
    problems = Problems()
    _check_sheets(root, spec_matrix, matrix_override, problems, products=None, lighting=None, use_cache=use_cache)
    return problems.items


def plan_campaign(campaign_dir: str | os.PathLike, *, matrix: str | os.PathLike | None = None,
                  engine_version: str | None = None, use_cache: bool = True) -> Plan:
    """Load, validate and expand a campaign into planned variants. Imports no engine (no torch).

    Args:
        campaign_dir: the campaign folder (holds campaign.yaml).
        matrix: read the matrix from this .xlsx file or CSV folder instead of campaign.yaml's (must be inside
            the campaign folder).
        engine_version: the engine version for the ids (default: campaign.yaml's, else the engine registry's).
        use_cache: skip the Great Expectations check of sheets whose cells already passed the same checks.

    Returns:
        The ``Plan``.

    Raises:
        CampaignError: every problem found in campaign.yaml, the sheets and the template, together.
    """
    root = Path(campaign_dir)
    try:
        spec, node = _load(root)
    except CampaignError as ex:
        more = _sheet_problems_despite_spec(root, matrix, use_cache) if (root / SPEC_FILE).is_file() else []
        raise CampaignError(ex.problems + more, campaign=ex.campaign) from None
    problems = Problems(spec.name)

    def yaml_problem(loc: tuple, message: str, fix: str, value=None):
        problems.add(SPEC_FILE, message, fix, key=_key_text(loc), row=_yaml_node_line(node, loc), value=value)

    # 1. Files campaign.yaml names: inside the campaign folder, and present.
    src_path, src_rel, why = resolve_asset(root, spec.source.path)
    if src_path is None:
        yaml_problem(("source", "path"), f"source shot '{spec.source.path}': {why}",
                     "put the shot inside the campaign folder (like source/shot.mp4) and give its path relative "
                     "to the folder", spec.source.path)
    assets: dict[str, str] = {}
    located = []
    for loc, value in _spec_assets(spec):
        path, rel, why = resolve_asset(root, value)
        if path is None:
            yaml_problem(loc, f"file '{value}': {why}", "put the file inside the campaign folder and give its "
                         "path relative to the folder", value)
        else:
            assets[value] = rel
            located.append((loc, value, path))
    from ray32.engines import ENGINES

    if spec.engine.name not in ENGINES and not (engine_version or spec.engine.version):
        log.info("engine %r is not in the engine registry; its version is taken as '0'", spec.engine.name)
    # ... and what they hold: a video within the limits, times inside it, images that decode, LUTs that parse.
    from ray32.engines import EngineError, engine_class

    input_warnings = files.check_assets(spec, located, yaml_problem)
    shot = files.check_source(spec, src_path, yaml_problem) if src_path is not None else None
    try:
        engine_cls = engine_class(spec.engine.name)
    except EngineError as ex:
        engine_cls = None
        yaml_problem(("engine", "name"), str(ex), "name one of those engines", spec.engine.name)

    # 2. Sheets: read, bind headers, check rows (Great Expectations).
    tables, bound_axes, rules_table, checks = _check_sheets(root, spec.matrix, matrix, problems,
                                                            products=spec.products, lighting=spec.lighting,
                                                            use_cache=use_cache)
    label_markets = sorted({m for p in spec.products.values() for m in p.labels})

    # 3. Cross-checks between the sheets and campaign.yaml.
    axis_rows: dict[str, list[expansion.AxisRow]] = {}
    luts_seen: dict = {}
    for axis, table in bound_axes.items():
        rows = []
        for num, values in table.records():
            if values.get("key") is None:
                continue
            where = f"{table.file} sheet '{table.name}' row {num}"
            if values.get("lut"):
                path, rel, _ = resolve_asset(root, values["lut"])
                if rel:
                    assets[values["lut"]] = rel
                    files.check_sheet_lut(table, num, values["lut"], path, problems, luts_seen)
            try:
                ov = expansion.parse_overrides(values)
            except ValueError:
                ov = {}  # reported by the sheet checks
            rows.append(expansion.AxisRow(axis, values["key"], values, ov, where))
        axis_rows[axis] = rows
    if shot is not None:
        files.check_times(spec, shot, yaml_problem, lighting={r.key for r in axis_rows.get("lighting", [])},
                          products={r.key for r in axis_rows.get("product", [])})
    if "product" in axis_rows and "market" in axis_rows:
        for prow in axis_rows["product"]:
            prod = spec.products.get(prow.key)
            if prod is None or not prod.labels:
                continue
            for mrow in axis_rows["market"]:
                if mrow.key in label_markets and mrow.key not in prod.labels:
                    yaml_problem(("products", prow.key, "labels"),
                                 f"no label for market '{mrow.key}' ({mrow.where})",
                                 f"add labels.{mrow.key}: {{artwork, text}} to product '{prow.key}'")
    if "market" in axis_rows:  # a market of the sheet, or one campaign.yaml has a label for (a sheet may be cut down)
        known = {r.key for r in axis_rows["market"]} | set(label_markets)
        for i, d in enumerate(spec.deliver):
            for m in [] if isinstance(d, str) or d.markets is None else d.markets:
                if m not in known:
                    yaml_problem(("deliver", i, "markets"), f"unknown market '{m}' for delivery target '{d.target}'",
                                 f"use a market code of the markets sheet: {', '.join(sorted(known))}", m)
    rules = []
    if rules_table is not None:
        for num, values in rules_table.records():
            match = {a: values.get(a) for a in bound_axes if values.get(a) not in (None, "*")}
            try:
                ov = expansion.parse_overrides(values)
            except ValueError:
                ov = {}
            rules.append(expansion.Rule(values.get("action") or "", match, ov,
                                        f"{rules_table.file} sheet '{rules_table.name}' row {num}"))
    problems.raise_if_any()

    # 4. The template.
    env = prompts.environment(prompts.template_dirs(root))
    template_name = f"prompt_templates/{spec.prompt_template}"
    try:
        template = prompts.load_template(env, spec.prompt_template)
        template_name = prompts.template_file(env, spec.prompt_template)
    except Exception as ex:
        problems.extend([prompts.template_problem(ex, spec.prompt_template, template_name)])
        yaml_problem(("prompt_template",), f"cannot use template '{spec.prompt_template}'",
                     "fix the template or name another one in prompt_templates/", spec.prompt_template)
        problems.raise_if_any()

    # 5. Expand.
    from ray32.shot import content_hash

    source_hash = content_hash(src_path)
    asset_hashes = {rel: _file_hash(root / rel) for rel in set(assets.values())}
    trim = spec.source.trim.model_dump() if spec.source.trim else None
    if "reframe" not in axis_rows and spec.reframe:
        axis_rows["reframe"] = expansion.reframe_rows(spec)
    version = ids.engine_version(spec.engine.name, engine_version or spec.engine.version)
    result = expansion.expand(spec, axis_rows, rules, template=template, template_name=template_name,
                              source_hash=source_hash, trim=trim, engine_version=version, assets=assets,
                              asset_hashes=asset_hashes)
    problems.extend(result.problems)
    if engine_cls is not None:
        input_warnings += files.check_engine(spec, engine_cls, result.variants, yaml_problem)
    problems.raise_if_any()
    if not result.variants:
        problems.add(spec.matrix.rules and tables[spec.matrix.rules].file or SPEC_FILE,
                     f"the rules exclude every combination ({result.excluded})",
                     "relax the include/exclude rules", sheet=spec.matrix.rules)
        problems.raise_if_any()
    return Plan(campaign=spec.name, root=root, source=src_rel, source_hash=source_hash, trim=trim,
                engine=spec.engine.name, engine_version=version, axes=list(axis_rows), variants=result.variants,
                warnings=result.warnings, excluded=result.excluded,
                schedule=spec.schedule.model_dump() if spec.schedule else None, checks=checks,
                input_warnings=input_warnings,
                model_dir=str((root / Path(spec.engine.model_dir).expanduser()).resolve()) if spec.engine.model_dir
                else None)


__all__ = ["Plan", "plan_campaign", "CampaignError"]
