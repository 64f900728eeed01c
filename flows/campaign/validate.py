"""Row rules for matrix sheets, checked with Great Expectations: required values, uniqueness, patterns, allowed
values, numeric ranges and referenced files inside the campaign folder.

Importing Great Expectations takes several seconds, so a sheet that passed is remembered by the hash of its
cells and of the rules it was checked against (``RAY32_CACHE_DIR``, default ``~/.cache/ray32``): an unchanged
matrix is not checked again, and any edit, to the sheet or to the allowed values, checks it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

from flows.campaign.errors import Problems
from flows.campaign.sheets import Column, Table

log = logging.getLogger(__name__)

VALIDATOR_VERSION = 1


def cache_dir() -> Path:
    """Where passed sheet checks are remembered: ``$RAY32_CACHE_DIR/sheet-checks`` or ``~/.cache/ray32/...``."""
    base = os.environ.get("RAY32_CACHE_DIR") or Path.home() / ".cache" / "ray32"
    return Path(base) / "sheet-checks"


def _file_values(table: Table, col: Column, campaign_dir: Path) -> tuple[dict[int, str | None], list[str]]:
    """Per row: the path normalised inside the campaign folder (or the text as written when it is not);
    and the list of those that are existing files inside the folder."""
    from flows.campaign.spec import resolve_asset

    values, ok = {}, []
    for num, cells in table.rows:
        v = table.value(cells, col.field)
        if v is None:
            values[num] = None
            continue
        path, rel, _ = resolve_asset(campaign_dir, v)
        values[num] = rel if rel is not None else v
        if rel is not None:
            ok.append(rel)
    return values, sorted(set(ok))


def _plan_checks(table: Table, columns: tuple[Column, ...], campaign_dir: Path):
    """The data frame columns (as dicts) and the expectation list for one table: [(kind, field, kwargs)]."""
    data: dict[str, dict[int, str | None]] = {}
    checks = []
    rows = [n for n, _ in table.rows]
    for col in columns:
        if col.field not in table.fields:
            continue
        data[col.field] = {n: table.value(c, col.field) for n, c in table.rows}
        if col.nonempty:
            checks.append(("nonempty", col.field, {"column": col.field}))
        if col.unique:
            checks.append(("unique", col.field, {"column": col.field}))
        if col.pattern:
            checks.append(("pattern", col.field, {"column": col.field, "regex": col.pattern}))
        if col.allowed is not None:
            checks.append(("allowed", col.field, {"column": col.field, "value_set": sorted(col.allowed)}))
        if col.number is not None:
            nums = {}
            for n in rows:
                v = data[col.field][n]
                try:
                    nums[n] = float(v) if v is not None else None
                except ValueError:
                    nums[n] = None  # the pattern check reports it
            data[f"__num_{col.field}"] = nums
            checks.append(("number", col.field, {"column": f"__num_{col.field}", "min_value": col.number[0],
                                                 "max_value": col.number[1]}))
        if col.file:
            values, ok = _file_values(table, col, campaign_dir)
            data[f"__file_{col.field}"] = values
            checks.append(("file", col.field, {"column": f"__file_{col.field}", "value_set": ok}))
    if len(table.fields) > 1:
        fields = sorted(table.fields)
        checks.append(("duplicate", None, {"column_list": fields}))
    return data, checks


def _cache_key(table: Table, data: dict, checks: list) -> str:
    payload = {"v": VALIDATOR_VERSION, "table": table.name, "file": table.file, "headers": table.headers,
               "rows": [n for n, _ in table.rows], "data": {k: sorted(v.items()) for k, v in data.items()},
               "checks": checks}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


_GX_TYPES = {
    "nonempty": "ExpectColumnValuesToNotBeNull",
    "unique": "ExpectColumnValuesToBeUnique",
    "pattern": "ExpectColumnValuesToMatchRegex",
    "allowed": "ExpectColumnValuesToBeInSet",
    "number": "ExpectColumnValuesToBeBetween",
    "file": "ExpectColumnValuesToBeInSet",
    "duplicate": "ExpectCompoundColumnsToBeUnique",
}


def _gx():
    """Import Great Expectations quietly (no analytics, no progress bars) and give back a context."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return gx, context


def _run_gx(context, gx, table: Table, data: dict, checks: list):
    """Validate one table; returns [(kind, field, kwargs, unexpected row numbers)] for the failed checks."""
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = [n for n, _ in table.rows]
    df = pd.DataFrame({k: pd.Series([v[n] for n in rows], index=rows, dtype="object") for k, v in data.items()})
    df.index.name = "__row"
    name = f"t{abs(hash((table.file, table.name))) % 10**9}-{len(context.data_sources.all())}"
    batch = (context.data_sources.add_pandas(name).add_dataframe_asset("sheet")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df}))
    suite = gx.ExpectationSuite(name=name)
    for i, (kind, fld, kwargs) in enumerate(checks):
        suite.add_expectation(getattr(gxe, _GX_TYPES[kind])(**kwargs, meta={"check": i}))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    failed = []
    for r in result.results:
        if r.success:
            continue
        i = r.expectation_config.meta["check"]
        kind, fld, kwargs = checks[i]
        idx = r.result.get("unexpected_index_list") or []
        nums = sorted({int(x["__row"]) if isinstance(x, dict) else int(x) for x in idx})
        if not nums and r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"Great Expectations failed on {table.file} {table.name}: "
                               f"{r.exception_info.get('exception_message')}")
        failed.append((kind, fld, kwargs, nums))
    return failed


def _report(table: Table, columns: dict[str, Column], data: dict, kind: str, fld: str | None, kwargs: dict,
            rows: list[int], problems: Problems, campaign_dir: Path) -> None:
    if kind == "duplicate":
        seen: dict[tuple, int] = {}
        for num, cells in table.rows:
            key = tuple(cells)
            if key in seen and num in rows:
                problems.add(table.file, f"duplicate row: the same as row {seen[key]}", "delete one of the two rows",
                             sheet=table.name, row=num)
            seen.setdefault(key, num)
        return
    col = columns[fld]
    i = table.fields[fld]
    where = table.where(i)
    values = data[fld]
    for num in rows:
        v = values.get(num)
        if kind == "nonempty":
            problems.add(table.file, "empty cell; this column needs a value in every row",
                         "fill it in, or delete the row", row=num, **where)
        elif kind == "unique":
            others = [n for n in sorted(values) if values[n] == v and n != num]
            cells = dict(table.rows)
            if others and others[0] < num and cells[num] != cells[others[0]]:  # whole-row copies: see below
                problems.add(table.file, f"'{v}' appears more than once (also row {others[0]})",
                             f"keep one row per {col.label or fld}: delete or rename the duplicate", row=num,
                             value=v, **where)
        elif kind == "pattern":
            problems.add(table.file, f"'{v}' is not {col.hint or 'in the expected form'}",
                         f"type {col.hint}" if col.hint else "correct the value", row=num, value=v, **where)
        elif kind == "allowed":
            allowed = [a for a in kwargs["value_set"] if a != "*"]
            problems.add(table.file, f"unknown {col.label or fld} '{v}'; known: " + ", ".join(allowed), col.allowed_fix or "use one of the known values", row=num, value=v,
                         **where)
        elif kind == "number":
            lo, hi = col.number
            if data[f"__num_{fld}"].get(num) is not None:
                problems.add(table.file, f"{v} is outside {lo:g}..{hi:g}", f"use a number from {lo:g} to {hi:g}",
                             row=num, value=v, **where)
        elif kind == "file":
            from flows.campaign.spec import resolve_asset

            _, _, why = resolve_asset(campaign_dir, v)
            problems.add(table.file, f"file '{v}': {why}", "put the file inside the campaign folder and give its "
                         "path relative to the folder (like labels/de.png)", row=num, value=v, **where)


def validate_tables(tables: list[tuple[Table, tuple[Column, ...]]], campaign_dir: Path, problems: Problems, *,
                    use_cache: bool = True) -> dict:
    """Check every row of every table against its columns, with Great Expectations; add a problem per bad cell.

    Args:
        tables: (table, its columns) pairs, headers already bound (``Table.bind``).
        campaign_dir: the campaign folder (file columns must point inside it).
        problems: where problems go.
        use_cache: skip tables whose exact cells already passed the exact same checks.

    Returns:
        ``{"checked": n, "cached": n, "expectations": n}``.
    """
    planned = []
    stats = {"checked": 0, "cached": 0, "expectations": 0}
    cdir = cache_dir()
    for table, cols in tables:
        if not table.rows:
            continue
        data, checks = _plan_checks(table, cols, Path(campaign_dir))
        key = _cache_key(table, data, [(k, f, {a: b for a, b in kw.items()}) for k, f, kw in checks])
        stats["expectations"] += len(checks)
        if use_cache and (cdir / key).exists():
            stats["cached"] += 1
            continue
        planned.append((table, cols, data, checks, key))
    if not planned:
        return stats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' regex-group and GE's deprecation chatter
        gx, context = _gx()
        results = [(t, c, d, ch, k, _run_gx(context, gx, t, d, ch)) for t, c, d, ch, k in planned]
    for table, cols, data, checks, key, failed in results:
        stats["checked"] += 1
        colmap = {c.field: c for c in cols}
        for kind, fld, kwargs, rows in failed:
            _report(table, colmap, data, kind, fld, kwargs, rows, problems, Path(campaign_dir))
        if not failed and use_cache:
            try:
                cdir.mkdir(parents=True, exist_ok=True)
                (cdir / key).write_text(json.dumps({"file": table.file, "sheet": table.name}))
            except OSError as ex:  # a cache that cannot be written only costs time
                log.debug("cannot remember the sheet check: %s", ex)
    return stats


__all__ = ["validate_tables", "cache_dir"]
