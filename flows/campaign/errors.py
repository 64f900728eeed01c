"""The campaign's input errors: every problem found, collected, then raised together as one ``CampaignError``."""

from __future__ import annotations

from dataclasses import dataclass

from ray32.errors import Ray32Error


def column_letter(index: int) -> str:
    """Spreadsheet column letter for a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a campaign, located as precisely as the input allows.

    Attributes:
        file: the file, relative to the campaign folder where possible.
        message: what is wrong.
        fix: what to do about it.
        sheet: the sheet (XLSX sheet name or CSV table name).
        row: the row number as the spreadsheet shows it (header = row 1), or the YAML/template line.
        column: the column letter (``B``).
        header: the column's header as written.
        value: the bad value.
        key: the key path in campaign.yaml (``products.aqua500.labels.de.artwork``).
    """

    file: str
    message: str
    fix: str = ""
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    header: str | None = None
    value: object = None
    key: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.sheet is not None:
            where.append(f"sheet '{self.sheet}'")
        if self.key:
            where.append(f"key '{self.key}'")
        if self.row is not None:
            where.append(f"line {self.row}" if self.sheet is None else f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}" + (f" ({self.header})" if self.header is not None else ""))
        elif self.header is not None:
            where.append(f"column '{self.header}'")
        text = ", ".join(where) + ": " + self.message
        if self.value is not None and str(self.value) not in self.message:
            text += f" (value: {self.value!r})"
        if self.fix:
            text += f" -> {self.fix}"
        return text


class CampaignError(Ray32Error):
    """A campaign that cannot be planned; ``problems`` lists everything found, not only the first."""

    def __init__(self, problems: list[Problem], *, campaign: str | None = None):
        self.problems = list(problems)
        self.campaign = campaign
        head = f"campaign {campaign}: " if campaign else ""
        n = len(self.problems)
        lines = [f"{head}{n} problem{'s' if n != 1 else ''} found:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class Problems:
    """A collector: ``add`` problems while checking, then ``raise_if_any``."""

    def __init__(self, campaign: str | None = None):
        self.items: list[Problem] = []
        self.campaign = campaign

    def add(self, file: str, message: str, fix: str = "", **where) -> None:
        self.items.append(Problem(file=str(file), message=message, fix=fix, **where))

    def extend(self, problems) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise CampaignError(self.items, campaign=self.campaign)
