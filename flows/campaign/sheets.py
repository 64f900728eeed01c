"""Matrix sheets: one table per axis, from the sheets of one XLSX workbook or from CSV files.

Reading turns every cell into text (or ``None`` when empty) and catches what only the file format can tell:
non-UTF-8 CSV, empty sheets, missing or merged header cells, dates that Excel made out of text, Excel error
values, formulas without a saved value. Formulas are never evaluated: a cell's cached value is what counts.
Row rules (required, unique, patterns, allowed values, files) are checked afterwards by ``validate``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from flows.campaign.errors import Problems, column_letter


@dataclass(frozen=True)
class Column:
    """What a column of a sheet must hold.

    Attributes:
        field: the name the plan uses.
        aliases: headers accepted for it (compared lower-case, spaces and '-' as '_').
        required: the column must be there.
        nonempty: every row needs a value.
        unique: no two rows may share a value.
        pattern: a regular expression the value must match; ``hint`` says it in words.
        allowed: the values allowed (filled from campaign.yaml), with ``allowed_fix`` saying where to add one.
        file: the value is a file inside the campaign folder.
        number: (low, high) for numeric columns.
        label: what the value is called in messages (default: the field name).
    """

    field: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    nonempty: bool = False
    unique: bool = False
    pattern: str | None = None
    hint: str = ""
    allowed: tuple[str, ...] | None = None
    allowed_fix: str = ""
    file: bool = False
    number: tuple[float, float] | None = None
    label: str = ""


NUMBER = r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"
KEY = r"^[a-z0-9][a-z0-9_-]*$"
KEY_HINT = "a key of lower-case letters, digits, '-' or '_' (it goes into file names and slugs)"

OVERRIDES = (
    Column("seed", pattern=r"^\d+$", hint="a whole number of 0 or more"),
    Column("motion_adherence", ("motion", "motion adherence"), pattern=NUMBER, hint="a number", number=(0, 1)),
    Column("structure_adherence", ("structure", "structure adherence"), pattern=NUMBER, hint="a number",
           number=(0, 1)),
    Column("mode", allowed=("adhere", "flex", "reimagine"), allowed_fix="use adhere, flex or reimagine"),
    Column("extra_prompt", ("extra prompt", "prompt extra")),
)
"""Columns any axis sheet and the rules sheet may carry: per-row (per-combination) overrides."""


def axis_columns(axis: str) -> tuple[Column, ...]:
    """The columns of an axis sheet: ``market``, ``product`` and ``lighting`` have their own; others are generic."""
    if axis == "market":
        own = (Column("key", ("code", "market", "market code", "market_code"), required=True, nonempty=True,
                      unique=True, pattern=r"^[a-z]{2}(-[a-z0-9]{2,8})?$",
                      hint="a lower-case market code like 'de' or 'pt-br'", label="market code"),
               Column("name", ("market name",), required=True, nonempty=True),
               Column("language", ("lang",), pattern=r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$",
                      hint="a language tag like 'de' or 'fr-CA'"),
               Column("setting", ("environment",)))
    elif axis == "product":
        own = (Column("key", ("product", "product key", "sku"), required=True, nonempty=True, unique=True,
                      pattern=KEY, hint=KEY_HINT),
               Column("name", ("product name",), required=True, nonempty=True),
               Column("subject", ("description",), required=True, nonempty=True))
    elif axis == "lighting":
        own = (Column("key", ("lighting", "preset"), required=True, nonempty=True, unique=True, pattern=KEY,
                      hint=KEY_HINT),
               Column("name", ("lighting name",), required=True, nonempty=True),
               Column("lut", ("lut file", "cube"), file=True))
    else:
        own = (Column("key", (axis,), required=True, nonempty=True, unique=True, pattern=KEY, hint=KEY_HINT),
               Column("name", ()),
               Column("prompt", ()))
    return own + OVERRIDES


def rules_columns(axes: dict[str, list[str] | None]) -> tuple[Column, ...]:
    """The columns of the rules sheet: an action, one column per axis (a key, or empty / '*' for any), overrides.
    An axis whose sheet could not be read (keys None) takes any value: its own problem is reported already."""
    cols = [Column("action", ("rule",), required=True, nonempty=True, allowed=("include", "exclude", "override"),
                   allowed_fix="use include, exclude or override")]
    for axis, keys in axes.items():
        cols.append(Column(axis, (), allowed=None if keys is None else tuple(dict.fromkeys(keys)) + ("*",),
                           allowed_fix=f"use a key from the {axis} sheet, or '*' / empty for any"))
    return tuple(cols) + OVERRIDES


def normalise_header(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(text).strip().lower())


@dataclass
class Table:
    """One sheet as text.

    Attributes:
        name: the sheet (or CSV table) name.
        file: the file, relative to the campaign folder.
        headers: the header cells as written.
        rows: ``(row_number, cells)``: the row number as the spreadsheet shows it; cells align with headers.
        fields: field name -> column index, once ``bind`` has matched the headers to a schema.
    """

    name: str
    file: str
    headers: list[str]
    rows: list[tuple[int, list[str | None]]]
    fields: dict[str, int] = field(default_factory=dict)

    def where(self, col: int) -> dict:
        return {"sheet": self.name, "column": column_letter(col), "header": self.headers[col]}

    def value(self, row: list[str | None], fld: str) -> str | None:
        i = self.fields.get(fld)
        return row[i] if i is not None and i < len(row) else None

    def records(self) -> list[tuple[int, dict[str, str | None]]]:
        """Rows as ``{field or normalised header: value}``; unknown columns keep their normalised header."""
        names = {i: f for f, i in self.fields.items()}
        out = []
        for num, cells in self.rows:
            out.append((num, {names.get(i, normalise_header(h)): cells[i] if i < len(cells) else None
                              for i, h in enumerate(self.headers)}))
        return out

    def bind(self, columns: tuple[Column, ...], problems: Problems, *, allow_unknown: bool = True) -> None:
        """Match headers to ``columns`` (by field name or alias); report missing and, if asked, unknown ones."""
        lookup = {}
        for c in columns:
            for name in (c.field,) + c.aliases:
                lookup[normalise_header(name)] = c.field
        for i, h in enumerate(self.headers):
            f = lookup.get(normalise_header(h))
            if f is None:
                if not allow_unknown:
                    problems.add(self.file, f"unknown column '{h}'",
                                 "use one of: " + ", ".join(c.field for c in columns), row=1, **self.where(i))
                continue
            if f in self.fields:
                j = self.fields[f]
                problems.add(self.file, f"column '{h}' means the same as column {column_letter(j)} "
                                        f"('{self.headers[j]}')", "keep one of the two", row=1, **self.where(i))
                continue
            self.fields[f] = i
        for c in columns:
            if c.required and c.field not in self.fields:
                names = " or ".join(repr(a) for a in (c.field,) + c.aliases)
                problems.add(self.file, f"missing column {names}; the header row has: "
                                        + ", ".join(repr(h) for h in self.headers),
                             f"add a column headed '{c.field}' in row 1", sheet=self.name)


# ------------------------------------------------------------------------------------------------ cell values

def _cell_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


def _header_rows(table_name: str, file: str, header: list, problems: Problems, first_row: int = 1):
    """Validate a header row; returns the header texts (trailing empty cells dropped)."""
    texts = [_cell_text(h) for h in header]
    while texts and texts[-1] is None:
        texts.pop()
    for i, t in enumerate(texts):
        if t is None:
            problems.add(file, "this column has no header", "give every column a header in row 1, or delete "
                         "the column", sheet=table_name, row=first_row, column=column_letter(i), header="")
    seen: dict[str, int] = {}
    for i, t in enumerate(texts):
        if t is None:
            continue
        n = normalise_header(t)
        if n in seen:
            problems.add(file, f"header '{t}' is used twice (also column {column_letter(seen[n])})",
                         "give each column its own header", sheet=table_name, row=first_row,
                         column=column_letter(i), header=t)
        seen[n] = i
    return [t or "" for t in texts]


def read_xlsx(path: Path, file: str, sheets: list[str], problems: Problems) -> dict[str, Table]:
    """Read the named sheets of a workbook as text tables (cached formula values, never evaluated).

    Args:
        path: the workbook.
        file: its name as shown in messages.
        sheets: the sheet names wanted.
        problems: where problems go.

    Returns:
        sheet name -> ``Table`` for every sheet that could be read.
    """
    import warnings
    import zipfile

    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about data validation / header extensions
            values_wb = load_workbook(path, data_only=True)
            formula_wb = load_workbook(path, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as ex:
        problems.add(file, f"cannot read the workbook ({type(ex).__name__}: {ex})",
                     "save it again as an Excel workbook (.xlsx)")
        return {}
    out = {}
    for name in sheets:
        if name not in values_wb.sheetnames:
            problems.add(file, f"sheet '{name}' not found; the workbook has: " + ", ".join(values_wb.sheetnames),
                         "add the sheet or correct the sheet name in campaign.yaml (matrix:)", sheet=name)
            continue
        ws, wf = values_wb[name], formula_wb[name]
        bad = False
        for rng in sorted(ws.merged_cells.ranges, key=str):
            header = rng.min_row == 1
            problems.add(file, f"{'merged header cells' if header else 'merged cells'} {rng.coord}",
                         "unmerge them: give every column its own header and every cell its own value",
                         sheet=name, row=rng.min_row, column=column_letter(rng.min_col - 1),
                         header=_cell_text(ws.cell(1, rng.min_col).value))
            bad = True
        grid = [list(r) for r in ws.iter_rows(values_only=True)]
        fgrid = [list(r) for r in wf.iter_rows()]
        if not grid or all(_cell_text(v) is None for v in grid[0]):
            problems.add(file, "the sheet is empty (no header row)",
                         "put the column headers in row 1 and one row per item below", sheet=name)
            continue
        headers = _header_rows(name, file, grid[0], problems)
        table = Table(name, file, headers, [])
        for r, row in enumerate(grid[1:], start=2):
            cells: list[str | None] = []
            for c, v in enumerate(row):
                fcell = fgrid[r - 1][c] if r - 1 < len(fgrid) and c < len(fgrid[r - 1]) else None
                if c >= len(headers):
                    if _cell_text(v) is not None:
                        problems.add(file, "a value in a column without a header",
                                     "give the column a header in row 1 or clear the cell", sheet=name, row=r,
                                     column=column_letter(c), header="", value=_cell_text(v))
                        bad = True
                    continue
                where = {"sheet": name, "row": r, "column": column_letter(c), "header": headers[c]}
                if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
                    problems.add(file, f"the cell holds a date/time ({v.isoformat()}), not text; Excel turns text "
                                       "like '3-1' or 'MAR1' into dates",
                                 "format the column as Text and type the value again", value=v.isoformat(),
                                 **where)
                    bad = True
                    cells.append(None)
                    continue
                if fcell is not None and fcell.data_type == "f" and v is None:
                    problems.add(file, f"formula {fcell.value} has no saved value (formulas are never evaluated "
                                       "here)", "open the workbook in Excel or LibreOffice and save it, or type "
                                                "the value", **where)
                    bad = True
                if fcell is not None and fcell.data_type == "e" or (isinstance(v, str) and v.startswith("#") and
                                                                    v.rstrip("!?").upper() in _EXCEL_ERRORS):
                    problems.add(file, f"the cell holds an Excel error value {v}", "fix the formula or type the "
                                 "value", value=v, **where)
                    bad = True
                    cells.append(None)
                    continue
                cells.append(_cell_text(v))
            cells += [None] * (len(headers) - len(cells))
            if all(x is None for x in cells):
                continue
            table.rows.append((r, cells))
        if not table.rows and not bad:
            problems.add(file, "the sheet has a header row but no rows", "add one row per item under the header",
                         sheet=name)
        out[name] = table
    return out


_EXCEL_ERRORS = {"#NULL", "#DIV/0", "#VALUE", "#REF", "#NAME", "#NUM", "#N/A", "#GETTING_DATA", "#SPILL", "#CALC"}


def read_csv(path: Path, file: str, name: str, problems: Problems) -> Table | None:
    """Read one CSV file (UTF-8, with or without the BOM Excel writes) as a text table named ``name``."""
    try:
        raw = path.read_bytes()
    except OSError as ex:
        problems.add(file, f"cannot read the file ({ex.strerror})", "check the path in campaign.yaml (matrix:)",
                     sheet=name)
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as ex:
        line = raw[:ex.start].count(b"\n") + 1
        problems.add(file, f"not UTF-8 text: byte 0x{raw[ex.start]:02x} at line {line} cannot be read",
                     "save the file as 'CSV UTF-8' (Excel) or with UTF-8 encoding", sheet=name, row=line,
                     value=raw[max(0, ex.start - 10):ex.start + 10].decode("latin-1"))
        return None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if first.strip() else ","  # Excel writes ';' in some locales
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    rows = []
    try:
        for cells in reader:
            rows.append((reader.line_num, cells))
    except csv.Error as ex:
        problems.add(file, f"not a readable CSV file ({ex})", "check the quotes in that line",
                     sheet=name, row=reader.line_num)
        return None
    rows = [(n, c) for n, c in rows if any(x.strip() for x in c)]
    if not rows or rows[0][0] != 1:
        problems.add(file, "the sheet is empty (no header row)",
                     "put the column headers in row 1 and one row per item below", sheet=name)
        return None
    headers = _header_rows(name, file, rows[0][1], problems)
    table = Table(name, file, headers, [])
    for num, cells in rows[1:]:
        texts = [_cell_text(x) for x in cells]
        for c in range(len(headers), len(texts)):
            if texts[c] is not None:
                problems.add(file, "a value in a column without a header",
                             "give the column a header in row 1 or remove the extra separator", sheet=name,
                             row=num, column=column_letter(c), header="", value=texts[c])
        texts = (texts + [None] * len(headers))[:len(headers)]
        table.rows.append((num, texts))
    if not table.rows:
        problems.add(file, "the sheet has a header row but no rows", "add one row per item under the header",
                     sheet=name)
    return table


def read_tables(campaign_dir: Path, *, workbook: str | None, csv_dir: str | None, sheets: list[str],
                problems: Problems) -> dict[str, Table]:
    """Read the sheets a campaign names, from its workbook or its CSV folder (``<sheet>.csv``).

    Args:
        campaign_dir: the campaign folder; ``workbook`` / ``csv_dir`` are relative to it.
        workbook: an .xlsx file, or None.
        csv_dir: a folder of CSV files, or None.
        sheets: the sheet names wanted.
        problems: where problems go.

    Returns:
        sheet name -> ``Table`` for the sheets that could be read.
    """
    from flows.campaign.spec import resolve_asset

    if workbook is not None:
        path, rel, why = resolve_asset(campaign_dir, workbook)
        if path is None:
            problems.add("campaign.yaml", f"matrix workbook '{workbook}': {why}",
                         "put the workbook inside the campaign folder and give its path relative to it",
                         key="matrix.workbook", value=workbook)
            return {}
        if path.suffix.lower() not in (".xlsx", ".xlsm"):
            problems.add(rel, "not an .xlsx workbook", "save it as an Excel workbook (.xlsx), or use 'csv:'",
                         key="matrix.workbook")
            return {}
        return read_xlsx(path, rel, sheets, problems)
    root = Path(campaign_dir).resolve()
    folder = (root / csv_dir).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        problems.add("campaign.yaml", f"matrix folder '{csv_dir}' is not a folder inside the campaign folder",
                     "give a folder (relative to the campaign folder) that holds one <sheet>.csv per axis",
                     key="matrix.csv", value=csv_dir)
        return {}
    out = {}
    for name in sheets:
        path, rel, why = resolve_asset(campaign_dir, str(Path(csv_dir) / f"{name}.csv"))
        if path is None:
            problems.add(str(Path(csv_dir) / f"{name}.csv"), f"CSV file for sheet '{name}': {why}",
                         f"add {name}.csv to {csv_dir} or correct the sheet name in campaign.yaml (matrix:)",
                         sheet=name)
            continue
        table = read_csv(path, rel, name, problems)
        if table is not None:
            out[name] = table
    return out
