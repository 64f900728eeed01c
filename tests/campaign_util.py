"""Helpers shared by the test_campaign_* files: copies of the demo campaign to break in small ways."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest

from flows.campaign import CampaignError, plan_campaign

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "campaigns" / "demo"


def copy_demo(dest: Path, *, csv: bool = False) -> Path:
    """A copy of campaigns/demo at ``dest``; with ``csv`` its campaign.yaml reads the CSV sheets."""
    shutil.copytree(DEMO, dest)
    if csv:
        use_csv(dest)
    return dest


def use_csv(folder: Path) -> None:
    edit_yaml(folder, "workbook: matrix/demo.xlsx", "csv: matrix/csv")


def edit_yaml(folder: Path, old: str, new: str) -> None:
    p = folder / "campaign.yaml"
    text = p.read_text(encoding="utf-8")
    assert old in text, old
    p.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(folder: Path, text: str, nth: int = 1) -> int:
    """The 1-based line of campaign.yaml that holds the ``nth`` occurrence of ``text``."""
    lines = (folder / "campaign.yaml").read_text(encoding="utf-8").splitlines()
    return [i for i, line in enumerate(lines, start=1) if text in line][nth - 1]


def edit_csv(folder: Path, sheet: str, old: str, new: str) -> None:
    p = folder / "matrix" / "csv" / f"{sheet}.csv"
    text = p.read_text(encoding="utf-8")
    assert old in text, old
    p.write_text(text.replace(old, new, 1), encoding="utf-8")


def plan_error(folder: Path, **kwargs) -> tuple[CampaignError, str]:
    """Plan ``folder`` expecting a CampaignError; returns it and its message."""
    with pytest.raises(CampaignError) as info:
        plan_campaign(folder, **kwargs)
    return info.value, str(info.value)


def set_cached_value(xlsx: Path, sheet_file: str, ref: str, value: str) -> None:
    """Give a formula cell a saved (cached) value, as Excel does when it saves: openpyxl cannot write one."""
    tmp = xlsx.with_suffix(".tmp.xlsx")
    with zipfile.ZipFile(xlsx) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == sheet_file:
                text = data.decode()
                text, n = re.subn(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/>', rf'<c r="{ref}"\1 t="str"><f>\2</f>'
                                  rf"<v>{value}</v>", text)
                assert n == 1, text
                data = text.encode()
            zout.writestr(item, data)
    tmp.replace(xlsx)
