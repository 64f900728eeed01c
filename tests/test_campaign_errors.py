"""Bad input and hostile input: each gives one collected CampaignError whose message names the file, sheet, row,
column and value and says what to do; spreadsheet cells are never executed as templates."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook

from campaign_util import copy_demo, edit_csv, edit_yaml, line_of, plan_error, set_cached_value
from flows.campaign import plan_campaign


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RAY32_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def camp(tmp_path):
    return copy_demo(tmp_path / "camp", csv=True)


@pytest.fixture
def book(tmp_path):
    """A demo copy that reads the XLSX workbook, and the workbook's path."""
    folder = copy_demo(tmp_path / "camp")
    return folder, folder / "matrix" / "demo.xlsx"


# ------------------------------------------------------------------------------------------------ security

@pytest.mark.parametrize("payload", ["{{ ''.__class__.__mro__ }}", "{% include '/etc/passwd' %}",
                                     "{{ lipsum.__globals__ }}"])
def test_template_code_in_a_cell_stays_text(camp, payload):
    edit_csv(camp, "markets", "a bright Berlin kitchen with white tiles", f'"{payload}"')
    plan = plan_campaign(camp)
    prompt = next(v["prompt"] for v in plan.variants if v["slug"] == "de-aqua500-golden")
    assert f"table in {payload}." in prompt          # the cell, verbatim
    assert "<class" not in prompt and "root:" not in prompt and "function" not in prompt


def test_unsafe_template_is_rejected_by_the_sandbox(camp):
    (camp / "prompt_templates").mkdir()
    (camp / "prompt_templates" / "evil.j2").write_text(
        "{{ product.subject }}\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    edit_yaml(camp, "prompt_template: target_state.j2", "prompt_template: evil.j2")
    _, msg = plan_error(camp)
    assert "prompt_templates/evil.j2, line 2: the template does something the sandbox forbids" in msg
    assert "unsafe" in msg


def test_template_include_of_a_system_file_is_rejected(camp):
    (camp / "prompt_templates").mkdir()
    (camp / "prompt_templates" / "inc.j2").write_text("{{ product.subject }} {% include '/etc/passwd' %}\n")
    edit_yaml(camp, "prompt_template: target_state.j2", "prompt_template: inc.j2")
    _, msg = plan_error(camp)
    assert "template '/etc/passwd' not found in prompt_templates/" in msg
    assert "root:" not in msg


def test_template_name_outside_the_template_folders_is_rejected(camp):
    edit_yaml(camp, "prompt_template: target_state.j2", "prompt_template: ../../etc/passwd")
    _, msg = plan_error(camp)
    assert "template '../../etc/passwd' not found" in msg
    assert "key 'prompt_template'" in msg


def test_sheet_paths_outside_the_campaign_are_rejected(camp):
    edit_csv(camp, "lighting", "overcast,Soft overcast,", "overcast,Soft overcast,../../../../etc/passwd")
    edit_csv(camp, "lighting", "neon,Neon night,", "neon,Neon night,/etc/passwd")
    err, msg = plan_error(camp)
    assert len(err.problems) == 2
    assert ("matrix/csv/lighting.csv, sheet 'lighting', row 3, column C (lut): file '../../../../etc/passwd': a "
            "path with '..' that points outside the campaign folder") in msg
    assert ("matrix/csv/lighting.csv, sheet 'lighting', row 4, column C (lut): file '/etc/passwd': an absolute path "
            "that points outside the campaign folder") in msg
    assert "put the file inside the campaign folder" in msg


def test_yaml_paths_outside_the_campaign_are_rejected(camp, tmp_path):
    (tmp_path / "outside.png").write_bytes(b"x")
    edit_yaml(camp, "artwork: labels/aqua500-de.png", "artwork: ../outside.png")
    edit_yaml(camp, "path: source/demo_shot.mp4", "path: /etc/hostname")
    err, msg = plan_error(camp)
    assert f"campaign.yaml, key 'source.path', line {line_of(camp, 'path: /etc')}: source shot '/etc/hostname': an absolute path that points " \
           "outside the campaign folder" in msg
    assert f"campaign.yaml, key 'products.aqua500.labels.de.artwork', line {line_of(camp, 'outside.png')}: file '../outside.png': a path " \
           "with '..' that points outside the campaign folder" in msg


def test_missing_file_inside_the_campaign(camp):
    edit_csv(camp, "lighting", "overcast,Soft overcast,", "overcast,Soft overcast,luts/missing.cube")
    _, msg = plan_error(camp)
    assert "row 3, column C (lut): file 'luts/missing.cube': file not found in the campaign folder" in msg


# ------------------------------------------------------------------------------------------------ sheets

def test_duplicate_rows_and_duplicate_keys(camp):
    edit_csv(camp, "products", "aqua1l,", "aqua500,Aqua again,a can\naqua1l,")
    edit_csv(camp, "rules", "exclude,us,aqua1l,neon,,", "exclude,us,aqua1l,neon,,\nexclude,us,aqua1l,neon,,")
    err, msg = plan_error(camp)
    assert ("matrix/csv/products.csv, sheet 'products', row 3, column A (key): 'aqua500' appears more than once "
            "(also row 2) -> keep one row per key") in msg
    assert "matrix/csv/rules.csv, sheet 'rules', row 3: duplicate row: the same as row 2 -> delete one of the " \
           "two rows" in msg


def test_empty_sheets(camp):
    (camp / "matrix" / "csv" / "products.csv").write_text("")
    (camp / "matrix" / "csv" / "lighting.csv").write_text("key,name,lut\n")
    err, msg = plan_error(camp)
    assert "matrix/csv/products.csv, sheet 'products': the sheet is empty (no header row) -> put the column " \
           "headers in row 1" in msg
    assert "matrix/csv/lighting.csv, sheet 'lighting': the sheet has a header row but no rows" in msg


def test_missing_columns(camp):
    (camp / "matrix" / "csv" / "products.csv").write_text("key,name\naqua500,A\naqua1l,B\n")
    _, msg = plan_error(camp)
    assert ("matrix/csv/products.csv, sheet 'products': missing column 'subject' or 'description'; the header row "
            "has: 'key', 'name' -> add a column headed 'subject' in row 1") in msg


def test_unknown_market_code_and_bad_values_all_reported_together(camp):
    edit_csv(camp, "markets", "us,United States,en,", "it,Italy,it,a Roman terrace\nus,United States,english,")
    edit_csv(camp, "rules", "override,fr,*,golden,7,", "override,fr,*,sunset,seven,")
    err, msg = plan_error(camp)
    assert ("matrix/csv/markets.csv, sheet 'markets', row 4, column A (code): unknown market code 'it'; known: de, "
            "fr, us -> add the market's label under products.<product>.labels in campaign.yaml") in msg
    assert ("matrix/csv/markets.csv, sheet 'markets', row 5, column C (language): 'english' is not a language tag "
            "like 'de' or 'fr-CA'") in msg
    assert ("matrix/csv/rules.csv, sheet 'rules', row 3, column D (lighting): unknown lighting 'sunset'; known: "
            "golden, neon, overcast") in msg
    assert "matrix/csv/rules.csv, sheet 'rules', row 3, column E (seed): 'seven' is not a whole number" in msg
    assert len(err.problems) == 4


def test_market_without_a_label_for_a_product(camp):
    edit_yaml(camp, '      us: {artwork: labels/aqua1l-us.png, text: "AQUA FRESH\\n33.8 fl oz"}\n', "")
    _, msg = plan_error(camp)
    assert f"campaign.yaml, key 'products.aqua1l.labels', line {line_of(camp, 'labels:', nth=2)}: no label for market 'us' (matrix/csv/markets.csv " \
           "sheet 'markets' row 4) -> add labels.us: {artwork, text} to product 'aqua1l'" in msg


def test_non_utf8_csv(camp):
    path = camp / "matrix" / "csv" / "markets.csv"
    path.write_bytes(path.read_text(encoding="utf-8").replace("Parisian café", "Parisian café").encode("cp1252"))
    _, msg = plan_error(camp)
    assert "matrix/csv/markets.csv, sheet 'markets', row 3: not UTF-8 text: byte 0xe9 at line 3 cannot be read" in msg
    assert "save the file as 'CSV UTF-8'" in msg


def test_utf8_with_bom_is_fine(camp):
    path = camp / "matrix" / "csv" / "markets.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(plan_campaign(camp).variants) == 17


def test_excel_dates_are_rejected(book):
    folder, xlsx = book
    wb = load_workbook(xlsx)
    wb["products"]["A3"] = dt.datetime(2026, 3, 1)
    wb.save(xlsx)
    _, msg = plan_error(folder)
    assert ("matrix/demo.xlsx, sheet 'products', row 3, column A (key): the cell holds a date/time "
            "(2026-03-01T00:00:00), not text") in msg
    assert "format the column as Text and type the value again" in msg


def test_merged_header_cells_are_rejected(book):
    folder, xlsx = book
    wb = load_workbook(xlsx)
    wb["markets"].merge_cells("C1:D1")
    wb.save(xlsx)
    _, msg = plan_error(folder)
    assert ("matrix/demo.xlsx, sheet 'markets', row 1, column C (language): merged header cells C1:D1 -> unmerge "
            "them") in msg


def test_formulas_use_the_cached_value_and_are_never_evaluated(book):
    folder, xlsx = book
    wb = load_workbook(xlsx)
    wb["markets"]["D2"] = '=CONCAT("a bright Berlin ", "kitchen")'
    wb["markets"]["B3"] = '=WEBSERVICE("http://example.invalid")'
    wb.save(xlsx)
    set_cached_value(xlsx, "xl/worksheets/sheet1.xml", "D2", "a cached Berlin kitchen")
    _, msg = plan_error(folder)   # B3 was never calculated: it has no saved value
    assert ("matrix/demo.xlsx, sheet 'markets', row 3, column B (name): formula =WEBSERVICE(\"http://example.invalid\")"
            " has no saved value (formulas are never evaluated here)") in msg
    set_cached_value(xlsx, "xl/worksheets/sheet1.xml", "B3", "France")
    plan = plan_campaign(folder)
    prompt = next(v["prompt"] for v in plan.variants if v["slug"] == "de-aqua500-golden")
    assert "table in a cached Berlin kitchen." in prompt


def test_number_range_and_unknown_rules_column(camp):
    edit_csv(camp, "rules", "action,market,product,lighting,seed,extra_prompt",
             "action,market,product,lighting,seed,extra_prompt,motion,colour")
    edit_csv(camp, "rules", "exclude,us,aqua1l,neon,,", "exclude,us,aqua1l,neon,,,1.5,")
    _, msg = plan_error(camp)
    assert "matrix/csv/rules.csv, sheet 'rules', row 1, column H (colour): unknown column 'colour'" in msg
    assert "matrix/csv/rules.csv, sheet 'rules', row 2, column G (motion): 1.5 is outside 0..1 -> use a number from " \
           "0 to 1" in msg


def test_missing_sheet_in_workbook(book):
    folder, xlsx = book
    edit_yaml(folder, "lighting: lighting", "lighting: lights")
    _, msg = plan_error(folder)
    assert "matrix/demo.xlsx, sheet 'lights': sheet 'lights' not found; the workbook has: markets, products, " \
           "lighting, rules" in msg


# ------------------------------------------------------------------------------------------------ yaml, templates

def test_yaml_unknown_keys_and_bad_values_name_key_and_line(camp):
    edit_yaml(camp, "style: ", "colour: red\nstyle: ")
    edit_yaml(camp, "  motion_adherence: 0.9", "  motion_adherence: 1.9")
    edit_yaml(camp, "outputs: [draft]", "outputs: [draft, mov]")
    edit_yaml(camp, "timezone: Europe/Berlin", "timezone: Mars/Olympus")
    err, msg = plan_error(camp)
    assert f"campaign.yaml, key 'colour', line {line_of(camp, 'colour:')}: unknown key; the keys known here are " \
           "name, description, source, must_stay, style, " in msg
    assert "-> correct its spelling or remove it" in msg
    assert (f"campaign.yaml, key 'defaults.motion_adherence', line {line_of(camp, 'motion_adherence: 1.9')}: Input "
            "should be less than or equal to 1 (value: 1.9) -> use a value inside the allowed range") in msg
    assert (f"campaign.yaml, key 'outputs', line {line_of(camp, 'outputs:')}: unknown output format 'mov'; "
            "available: draft, hdr10") in msg
    assert (f"campaign.yaml, key 'schedule.timezone', line {line_of(camp, 'timezone:')}: unknown time zone "
            "'Mars/Olympus'") in msg
    assert len(err.problems) == 4


def test_yaml_syntax_error(camp):
    edit_yaml(camp, "style: Photo", "style: [Photo")
    _, msg = plan_error(camp)
    assert "campaign.yaml, line 14: not valid YAML" in msg


def test_template_missing_variable_names_template_line_and_variable(camp):
    (camp / "prompt_templates").mkdir()
    (camp / "prompt_templates" / "t.j2").write_text("{{ product.subject }} on a table,\n"
                                                     "in {{ market.climate }} light.\n{{ must_stay|join(', ') }}\n")
    edit_yaml(camp, "prompt_template: target_state.j2", "prompt_template: t.j2")
    err, msg = plan_error(camp)
    assert "prompt_templates/t.j2, line 2: missing variable 'climate'" in msg
    assert len(err.problems) == 1      # one message for the 17 variants that hit it


def test_template_syntax_error(camp):
    (camp / "prompt_templates").mkdir()
    (camp / "prompt_templates" / "t.j2").write_text("{{ product.subject }}\n{% if x %}\n")
    edit_yaml(camp, "prompt_template: target_state.j2", "prompt_template: t.j2")
    _, msg = plan_error(camp)
    assert "prompt_templates/t.j2, line 2: template syntax error: Unexpected end of template" in msg


def test_prompt_lint_warns_on_repair_language_and_nothing_that_stays(camp):
    (camp / "prompt_templates").mkdir()
    (camp / "prompt_templates" / "t.j2").write_text(
        "Remove the old label from {{ product.subject }} and make it better. {{ lighting.prompt }}.\n")
    edit_yaml(camp, "prompt_template: target_state.j2", "prompt_template: t.j2")
    plan = plan_campaign(camp)
    assert len(plan.warnings) == 2
    assert plan.warnings[0].startswith("repair language 'Remove': describe the finished shot as if it exists")
    assert "(17 variants: de-aqua500-golden, de-aqua500-overcast, de-aqua500-neon, ...)" in plan.warnings[0]
    assert plan.warnings[1].startswith("the prompt names nothing that must stay")
    assert plan.variants[0]["lint"][0].startswith("repair language")


def test_folder_without_campaign_yaml(tmp_path):
    _, msg = plan_error(tmp_path)
    assert f"{tmp_path}/campaign.yaml: campaign.yaml not found in the campaign folder -> create it" in msg
    _, msg = plan_error(tmp_path / "nope")
    assert f"{tmp_path}/nope: campaign folder not found" in msg


def test_yaml_and_sheet_problems_are_reported_together(camp):
    edit_yaml(camp, "style: ", "colour: red\nstyle: ")
    edit_csv(camp, "products", "aqua1l,", "aqua500,")
    err, msg = plan_error(camp)
    assert "campaign.yaml, key 'colour'" in msg and "unknown key" in msg
    assert "matrix/csv/products.csv, sheet 'products', row 3, column A (key): 'aqua500' appears more than once" in msg
    assert "matrix/csv/rules.csv, sheet 'rules', row 2, column C (product): unknown product 'aqua1l'; known: " \
           "aqua500 -> use a key from the product sheet" in msg
    assert len(err.problems) == 3
