"""(Re)create the demo campaign's files in ``campaigns/demo/``: the synthetic source shot and its truth, the
per-market label artworks, a .cube LUT, the matrix (XLSX workbook and the same as CSV files) and campaign.yaml.

Run ``python -m flows.campaign.demo_assets [campaigns/demo]``. Deterministic apart from the encoder build.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

MARKETS = [  # code, name, language, setting
    ("de", "Germany", "de", "a bright Berlin kitchen with white tiles"),
    ("fr", "France", "fr", "a sunny Parisian café with marble tables"),
    ("us", "United States", "en", "a modern New York loft with brick walls"),
]
PRODUCTS = [  # key, name, subject
    ("aqua500", "Aqua 500 ml", "a slim blue bottle of sparkling mineral water"),
    ("aqua1l", "Aqua 1 l", "a tall blue bottle of still mineral water"),
]
LABELS = {  # (product, market) -> label lines; the FR label carries accented characters
    ("aqua500", "de"): ("AQUA FRISCH", "500 ml"),
    ("aqua500", "fr"): ("AQUA FRAÎCHE", "500 ml"),
    ("aqua500", "us"): ("AQUA FRESH", "16.9 fl oz"),
    ("aqua1l", "de"): ("AQUA FRISCH", "1 Liter"),
    ("aqua1l", "fr"): ("AQUA FRAÎCHE", "1 litre"),
    ("aqua1l", "us"): ("AQUA FRESH", "33.8 fl oz"),
}
LIGHTING = [  # key, name, lut column (sheet)
    ("golden", "Golden hour", "luts/golden.cube"),
    ("overcast", "Soft overcast", ""),
    ("neon", "Neon night", ""),
]
RULES = [  # action, market, product, lighting, seed, extra_prompt
    ("exclude", "us", "aqua1l", "neon", "", ""),
    ("override", "fr", "*", "golden", "7", "Late sun falls through linen curtains"),
]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def sheets() -> dict[str, list[list[str]]]:
    """The demo matrix as {sheet: rows}, header first; the same cells go to the workbook and to the CSV files."""
    return {
        "markets": [["code", "name", "language", "setting"]] + [list(m) for m in MARKETS],
        "products": [["key", "name", "subject"]] + [list(p) for p in PRODUCTS],
        "lighting": [["key", "name", "lut"]] + [list(x) for x in LIGHTING],
        "rules": [["action", "market", "product", "lighting", "seed", "extra_prompt"]] + [list(r) for r in RULES],
    }


def write_workbook(path: Path, tables: dict[str, list[list[str]]]) -> None:
    """Write ``tables`` as an .xlsx workbook, every cell as text (formatted '@' so Excel keeps it text)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in tables.items():
        ws = wb.create_sheet(name)
        for r, row in enumerate(rows, start=1):
            for c, v in enumerate(row, start=1):
                cell = ws.cell(r, c, v if v != "" else None)
                cell.number_format = "@"
                if r == 1:
                    cell.font = Font(bold=True)
        for c in range(1, len(rows[0]) + 1):
            ws.column_dimensions[ws.cell(1, c).column_letter].width = 28
    buf = io.BytesIO()
    wb.save(buf)
    _write_atomic(path, buf.getvalue())


def write_csvs(folder: Path, tables: dict[str, list[list[str]]]) -> None:
    """Write ``tables`` as ``<folder>/<sheet>.csv`` (UTF-8)."""
    for name, rows in tables.items():
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        _write_atomic(folder / f"{name}.csv", buf.getvalue().encode("utf-8"))


def warm_lut(size: int = 5) -> str:
    """A small warm 3D .cube LUT (lifts red, lowers blue): text."""
    lines = ['TITLE "ray32 demo golden"', f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0 0 0", "DOMAIN_MAX 1 1 1"]
    for b in range(size):           # .cube order: red changes fastest
        for g in range(size):
            for r in range(size):
                R, G, B = r / (size - 1), g / (size - 1), b / (size - 1)
                lines.append(f"{min(1, R * 1.06 + 0.02):.6f} {G * 1.0:.6f} {max(0, B * 0.90):.6f}")
    return "\n".join(lines) + "\n"


CAMPAIGN_YAML = """\
# The demo campaign: one synthetic source shot, 3 markets x 2 products x 3 lighting presets (one combination
# excluded by the rules sheet). Producers own this file; marketing owns the matrix (matrix/demo.xlsx, or the same
# as CSV files in matrix/csv/). Paths are relative to this folder. Regenerate with:
#   python -m flows.campaign.demo_assets campaigns/demo
name: demo
description: Aqua bottled water, summer launch
source:
  path: source/demo_shot.mp4
must_stay:
  - person's face and expression
  - camera push-in and timing
  - bottle's shape and position
style: Photorealistic commercial product film, shallow depth of field, 35 mm lens
prompt_template: target_state.j2
matrix:
  workbook: matrix/demo.xlsx      # or: csv: matrix/csv  (one <sheet>.csv per sheet)
  axes:                           # axis: sheet, in expansion order (slug = market-product-lighting)
    market: markets
    product: products
    lighting: lighting
  rules: rules
products:
{products}
lighting:
  golden:
    prompt: Warm golden-hour sunlight from a low window, long soft shadows
    grade: {{temperature: 3800, tint: 0.05, exposure: 0.25, contrast: 1.08, saturation: 1.12, lut: luts/golden.cube}}
  overcast:
    prompt: Soft overcast daylight, even and cool, gentle shadows
    grade: {{temperature: 7200, tint: -0.02, exposure: -0.1, contrast: 0.92, saturation: 0.9}}
  neon:
    prompt: Night-time neon glow in magenta and cyan, glossy reflections
    grade:
      temperature: 9000
      tint: 0.3
      exposure: -0.4
      contrast: 1.2
      saturation: 1.3
      keyframes:
        - {{time: "0", exposure: -0.6}}
        - {{time: "2.5", exposure: -0.3}}
engine:
  name: composite
defaults:
  mode: adhere
  motion_adherence: 0.9
  structure_adherence: 0.85
  seed: 1
keyframes: []
locks:
  - kind: face
outputs: [draft]
deliver:                          # delivery targets (ray32.targets; README "Platform deliveries")
  - master                        # every variant: the campaign's formats, EBU R128 loudness
  - {{target: meta-reels, markets: [de]}}   # a target for some markets only
  # Built to fail one check: the demo shot is 3 s and a CTV spot is 15 or 30 s, so ctv-16x9's duration check fails
  # with that reason; every other check of it passes, and its file is still packaged with the verdict.
  - {{target: ctv-16x9, markets: [us]}}
qa:
  label_corner_px: 2.0
schedule:
  cron: "0 6 * * 1"
  timezone: Europe/Berlin
"""


def make_demo_campaign(folder: str | os.PathLike = "campaigns/demo", *, overwrite: bool = False) -> Path:
    """Write every file of the demo campaign into ``folder`` and return it.

    Args:
        folder: the campaign folder.
        overwrite: make the source shot again even if it exists.

    Returns:
        The folder.
    """
    import numpy as np
    from PIL import Image

    from ray32.demo_shot import load_truth, make_demo_shot, make_label_art

    folder = Path(folder)
    demo = make_demo_shot(folder / "source", overwrite=overwrite)
    corners = load_truth(demo.truth_path).label_corners[0]
    for (product, market), lines in LABELS.items():
        buf = io.BytesIO()
        Image.fromarray(np.asarray(make_label_art(lines))).save(buf, format="PNG", optimize=True)
        _write_atomic(folder / "labels" / f"{product}-{market}.png", buf.getvalue())
    _write_atomic(folder / "luts" / "golden.cube", warm_lut().encode())
    tables = sheets()
    write_workbook(folder / "matrix" / "demo.xlsx", tables)
    write_csvs(folder / "matrix" / "csv", tables)
    corner_text = "[" + ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in corners) + "]"
    prod_lines = []
    for key, name, _ in PRODUCTS:
        prod_lines += [f"  {key}:", f"    name: {name}",
                       f"    label:                        # where the label is on the reference frame",
                       f"      frame: 0", f"      corners: {corner_text}   # tl, tr, br, bl (px)",
                       f"    labels:                       # market -> artwork and the text QA expects to read"]
        for code, *_ in MARKETS:
            text = json.dumps("\n".join(LABELS[(key, code)]), ensure_ascii=False)
            prod_lines.append(f"      {code}: {{artwork: labels/{key}-{code}.png, text: {text}}}")
    yaml_text = CAMPAIGN_YAML.format(products="\n".join(prod_lines))
    _write_atomic(folder / "campaign.yaml", yaml_text.encode("utf-8"))
    return folder


if __name__ == "__main__":
    print(make_demo_campaign(sys.argv[1] if len(sys.argv) > 1 else "campaigns/demo"))
