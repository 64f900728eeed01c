"""What the files a campaign names hold, checked at plan time: the source is a video within the limits and every
time in campaign.yaml falls inside the trimmed source; images decode and have a sensible size; LUTs parse; the
engine uses what the campaign asks of it. Every problem is collected (``Problems``); warnings are returned.

``resolve_asset`` (in ``spec``) already made sure each path is a file inside the campaign folder; this module opens
them. The checks themselves live beside what reads the files later (``ray32.shot``, ``ray32.inputs``,
``ray32.request``, the engine's ``ignores`` / ``refusals``), so a plan and a render refuse the same things.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from flows.campaign.errors import Problems
from flows.campaign.sheets import Table
from flows.campaign.spec import CampaignSpec

YamlProblem = Callable[..., None]
"""``yaml_problem(loc, message, fix, value=None)``: a problem at a key of campaign.yaml."""

TRIM_NAMES = ("source.trim.start", "source.trim.end")


def check_source(spec: CampaignSpec, src_path: Path, yaml_problem: YamlProblem):
    """Probe the source shot and apply the trim and the length limit. Returns the ``Shot`` or None."""
    from ray32.shot import MAX_SECONDS, ShotError, open_shot, probe, resolve_trim

    trim = spec.source.trim
    try:
        info = probe(src_path)
    except ShotError as ex:
        yaml_problem(("source", "path"), f"source shot '{spec.source.path}' {ex.problem}", "", spec.source.path)
        return None
    try:
        first, stop = resolve_trim(info, trim.start if trim else None, trim.end if trim else None, names=TRIM_NAMES)
    except ShotError as ex:
        key = "end" if ex.problem.startswith(TRIM_NAMES[1]) else "start"
        yaml_problem(("source", "trim", key), f"source shot '{spec.source.path}': {ex.problem}", "")
        return None
    duration = Fraction(stop - first) / info.fps
    if duration > MAX_SECONDS:
        start = Fraction(first) / info.fps
        yaml_problem(("source", "trim") if trim else ("source", "path"),
                     f"source shot '{spec.source.path}' is {float(duration):.2f} s long ({stop - first} frames); a "
                     f"source may be at most {float(MAX_SECONDS):g} s",
                     f"trim it under source: with 'trim: {{start: {float(start):g}, end: "
                     f"{float(start + MAX_SECONDS):g}}}' (seconds; or any window of at most "
                     f"{float(MAX_SECONDS):g} s)")
        return None
    return open_shot(src_path, start=trim.start if trim else None, end=trim.end if trim else None, info=info,
                     detect_cuts=False, trim_names=TRIM_NAMES)


def check_times(spec: CampaignSpec, shot, yaml_problem: YamlProblem, *, lighting: set[str], products: set[str]
                ) -> None:
    """Every time campaign.yaml gives inside the trimmed shot: keyframes, and the grade keys and label reference
    frames of the ``lighting`` presets and ``products`` the sheets use (an entry no row uses renders nothing)."""
    from ray32.request import RequestError, _resolve_times, resolve_frame

    fps, n = shot.fps, shot.frame_count

    def each(times: list[tuple[tuple, object]], what: str) -> None:
        ok = []
        for loc, value in times:
            try:
                _resolve_times([value], what, fps, n)
                ok.append(value)
            except RequestError as ex:
                yaml_problem(loc, str(ex).replace(f"{what} 1 ", f"{what} ", 1), "", value)
        if len(ok) == len(times) and len(times) > 1:
            try:
                _resolve_times(ok, what, fps, n)
            except RequestError as ex:
                yaml_problem(times[0][0][:-2], str(ex), "")

    each([(("keyframes", i, "time"), k.time) for i, k in enumerate(spec.keyframes)], "keyframe")
    for key, preset in spec.lighting.items():
        if preset.grade is not None and key in lighting:
            each([(("lighting", key, "grade", "keyframes", j, "time"), g.time)
                  for j, g in enumerate(preset.grade.keyframes)], "grade key")
    for key, prod in spec.products.items():
        if prod.label is not None and key in products:
            try:
                resolve_frame(prod.label.frame, fps, n, what="label frame")
            except RequestError as ex:
                yaml_problem(("products", key, "label", "frame"), str(ex),
                             "give a frame inside the trimmed source where the label is fully visible",
                             prod.label.frame)


KINDS = {"artwork": "label artwork", "guide": "keyframe guide", "reference": "lock reference"}


def check_assets(spec: CampaignSpec, located: list[tuple[tuple, str, Path]], yaml_problem: YamlProblem
                 ) -> list[str]:
    """Open every file campaign.yaml names (``(key path, as written, absolute path)``): images decode at a sensible
    size, LUTs parse. Returns warnings (a label artwork far from its label's shape)."""
    from ray32.inputs import InputError, artwork_aspect_warning, check_cube, image_size

    warnings = []
    for loc, value, path in located:
        try:
            if loc[-1] == "lut":
                check_cube(path)
                continue
            size = image_size(path, KINDS[loc[-1]])
        except InputError as ex:
            for p in ex.problems:
                yaml_problem(loc, p.replace(f"'{path}'", f"'{value}'"), "", value)
            continue
        if loc[0] == "products":
            label = spec.products[loc[1]].label
            if label is not None:
                w = artwork_aspect_warning(size, label.corners, f"label artwork '{value}' (campaign.yaml "
                                                                f"products.{loc[1]}.labels.{loc[3]})")
                if w:
                    warnings.append(w)
    return warnings


def check_sheet_lut(table: Table, row: int, value: str, path: Path, problems: Problems, seen: dict) -> None:
    """A ``lut`` cell of a sheet: the file parses as a .cube LUT (each file opened once)."""
    from ray32.inputs import InputError, check_cube

    if path not in seen:
        try:
            check_cube(path)
            seen[path] = None
        except InputError as ex:
            seen[path] = ex.problems[0]
    if seen[path] is not None:
        problems.add(table.file, seen[path].replace(f"'{path}'", f"'{value}'"), "", row=row,
                     **table.where(table.fields["lut"]))


REQUEST_KEYS = {
    "prompt": ("prompt_template", "the prompt made from prompt_templates/"),
    "keyframes": ("keyframes", "campaign.yaml 'keyframes'"),
    "motion_adherence": ("defaults", "campaign.yaml 'defaults.motion_adherence' or a sheet's motion column"),
    "structure_adherence": ("defaults",
                            "campaign.yaml 'defaults.structure_adherence' or a sheet's structure column"),
}


def check_engine(spec: CampaignSpec, engine_cls, variants: list[dict], yaml_problem: YamlProblem) -> list[str]:
    """What the campaign asks of an engine that cannot do it (an error per reframe target) or does not use it (a
    warning per field, naming the field, the engine and where it is set)."""
    name = spec.engine.name
    for key in engine_cls.unknown_options(spec.engine.options):
        yaml_problem(("engine", "options", key), f"unknown option for engine '{name}'; the options it knows are "
                     f"{', '.join(engine_cls.options) or 'none'}", "correct its spelling or remove it")
    for i, r in enumerate(spec.reframe):
        for why in engine_cls.refusals({"reframe": r.model_dump()}):
            yaml_problem(("reframe", i, "method"), why, "", r.method)
    counts: dict[str, int] = {}
    for v in variants:
        for field in engine_cls.ignored_controls(v["request"]):
            if field == "prompt":
                continue  # every planned variant has its template's prompt: the record for review and QA
            counts[field] = counts.get(field, 0) + 1
    warnings = []
    if spec.defaults.steps is not None and engine_cls.unknown_options({"steps": spec.defaults.steps}):
        warnings.append(f"engine '{name}' does not use 'defaults.steps' (it has no denoising steps): it changes no "
                        "pixels. Remove it, or choose an engine that uses it (engine: name: wan-vace)")
    for field, n in counts.items():
        where = REQUEST_KEYS.get(field.split("[")[0], ("", "the campaign"))[1]
        warnings.append(f"engine '{name}' does not use '{field}' (set in {where}; {n} of {len(variants)} "
                        f"variants): it changes no pixels. Remove it, or choose an engine that uses it "
                        f"(engine: name: wan-vace)")
    return warnings
