"""campaign.yaml: the producer's half of a campaign, read into pydantic models.

Unknown keys are errors. Every problem names the file, the key path and the line, and all of them are reported
together (``CampaignError``). Paths are strings relative to the campaign folder; ``resolve_asset`` checks that
they stay inside it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.campaign.errors import CampaignError, Problems

SPEC_FILE = "campaign.yaml"
SLUG = r"^[a-z0-9][a-z0-9_-]*$"
OUTPUT_FORMATS = ("draft", "hdr10", "hlg", "prores", "exr")
"""Formats the export layer writes (``ray32.export.available_formats``); kept here so planning imports nothing."""
ASPECTS = ("9:16", "1:1", "4:5", "16:9", "21:9")
MODES = ("adhere", "flex", "reimagine")
RESERVED_AXES = {"campaign", "style", "must_stay", "axes", "extra_prompt", "mode", "label"}
"""Names the prompt template already uses for other things (``reframe`` is the implicit last axis)."""

Unit = Annotated[float, Field(ge=0, le=1)]
Time = str | int | float
Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trim(_Model):
    start: Time | None = None
    end: Time | None = None


class Source(_Model):
    path: str
    trim: Trim | None = None


class Matrix(_Model):
    workbook: str | None = Field(None, description="an .xlsx file: one sheet per axis")
    csv: str | None = Field(None, description="a folder with one <sheet>.csv per axis")
    axes: dict[str, str] = Field(min_length=1, description="axis -> sheet, in expansion order")
    rules: str | None = Field(None, description="optional sheet of include/exclude/override rules")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.workbook is None) == (self.csv is None):
            raise ValueError("give exactly one of 'workbook' (an .xlsx file) or 'csv' (a folder of .csv files)")
        return self

    @field_validator("axes")
    @classmethod
    def _axis_names(cls, v: dict[str, str]):
        for name in v:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"axis name {name!r} must be lower-case letters, digits and _")
        if "reframe" in v:
            raise ValueError("'reframe' is not a sheet axis: list reframe targets under the top-level 'reframe' key")
        taken = sorted(set(v) & RESERVED_AXES)
        if taken:
            raise ValueError(f"axis name {taken[0]!r} is taken by a template variable; choose another name "
                             f"(reserved: {', '.join(sorted(RESERVED_AXES))})")
        return v


class LabelArt(_Model):
    artwork: str
    text: str = Field(min_length=1)


class LabelGeometry(_Model):
    frame: int | str = 0
    corners: Annotated[list[Point], Field(min_length=4, max_length=4)]


class Product(_Model):
    name: str | None = None
    label: LabelGeometry | None = None
    labels: dict[str, LabelArt] = {}
    lock_label: bool = True

    @model_validator(mode="after")
    def _label_needs_geometry(self):
        if self.labels and self.label is None:
            raise ValueError("'labels' needs 'label: {frame, corners}' (where the label is on a reference frame)")
        return self


class _GradeValues(_Model):
    temperature: Annotated[float, Field(ge=1000, le=40000)] = 6500
    tint: Annotated[float, Field(ge=-1, le=1)] = 0
    exposure: Annotated[float, Field(ge=-10, le=10)] = 0
    contrast: Annotated[float, Field(gt=0, le=4)] = 1
    saturation: Annotated[float, Field(ge=0, le=4)] = 1


class GradeKey(_Model):
    """A grade at a time; fields left out keep the preset's value."""

    time: Time
    temperature: Annotated[float, Field(ge=1000, le=40000)] | None = None
    tint: Annotated[float, Field(ge=-1, le=1)] | None = None
    exposure: Annotated[float, Field(ge=-10, le=10)] | None = None
    contrast: Annotated[float, Field(gt=0, le=4)] | None = None
    saturation: Annotated[float, Field(ge=0, le=4)] | None = None


class Grade(_GradeValues):
    lut: str | None = None
    keyframes: list[GradeKey] = []


class LightingPreset(_Model):
    prompt: str = Field(min_length=1)
    grade: Grade | None = None


class Engine(_Model):
    name: str = "composite"
    version: str | None = None
    options: dict[str, Any] = {}
    model_dir: str | None = None   # weights folder (engines that take weights), relative to the campaign or absolute


class Defaults(_Model):
    mode: Literal["adhere", "flex", "reimagine"] = "adhere"
    motion_adherence: Unit | None = None
    structure_adherence: Unit | None = None
    seed: Annotated[int, Field(ge=0)] = 0
    steps: Annotated[int, Field(ge=1, le=1000)] | None = None


class Keyframe(_Model):
    time: Time
    guide: str | None = None
    prompt: str | None = None

    @model_validator(mode="after")
    def _something(self):
        if self.guide is None and self.prompt is None:
            raise ValueError("a keyframe needs a 'guide' image, a 'prompt', or both")
        return self


class Lock(_Model):
    kind: Literal["face", "product", "label", "region"]
    polygon: list[Point] | None = None
    reference: str | None = None


class Reframe(_Model):
    aspect: Literal["9:16", "1:1", "4:5", "16:9", "21:9"]
    method: Literal["crop", "outpaint"] = "crop"


class Delivery(_Model):
    """A delivery target for some markets only (``{target: ctv-16x9, markets: [us]}``)."""

    target: str
    markets: Annotated[list[str], Field(min_length=1)] | None = None


class Schedule(_Model):
    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str):
        field = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
        if not re.fullmatch(rf"{field}(\s+{field}){{4}}", v.strip()):
            raise ValueError(f"{v!r} is not a 5-field cron expression like '0 6 * * 1' (minute hour day month "
                             "weekday)")
        return v.strip()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like 'Europe/Berlin' or 'UTC'") from None
        return v


class CampaignSpec(_Model):
    """The whole of campaign.yaml."""

    name: Annotated[str, Field(pattern=SLUG)]
    description: str = ""
    source: Source
    must_stay: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    style: str = ""
    prompt_template: str = "target_state.j2"
    matrix: Matrix
    products: dict[str, Product] = {}
    lighting: dict[str, LightingPreset] = {}
    engine: Engine = Engine()
    defaults: Defaults = Defaults()
    keyframes: list[Keyframe] = []
    locks: list[Lock] = []
    reframe: list[Reframe] = []
    outputs: Annotated[list[str], Field(min_length=1)] = ["draft"]
    deliver: list[str | Delivery] = []
    qa: dict[str, Any] = {}
    schedule: Schedule | None = None

    @field_validator("qa")
    @classmethod
    def _qa_metrics(cls, v: dict):
        from qa.registry import overrides_from_config

        overrides_from_config(v)  # raises ValueError naming every unknown key and the valid metric names
        return v

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v: list[str]):
        bad = [o for o in v if o not in OUTPUT_FORMATS]
        if bad:
            raise ValueError(f"unknown output format {bad[0]!r}; available: {', '.join(OUTPUT_FORMATS)}")
        return v

    @field_validator("deliver")
    @classmethod
    def _deliver(cls, v: list):
        from ray32.targets import TARGETS  # data only: no heavy imports

        names = [d if isinstance(d, str) else d.target for d in v]
        bad = [t for t in names if t not in TARGETS]
        if bad:
            raise ValueError(f"unknown delivery target {bad[0]!r}; known: {', '.join(TARGETS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"deliver lists a target twice: {names!r}")
        return v

    def deliver_for(self, market: str | None) -> list[str]:
        """The delivery targets of a variant of ``market`` (entries with ``markets`` only for those)."""
        return [d if isinstance(d, str) else d.target for d in self.deliver
                if isinstance(d, str) or d.markets is None or market in d.markets]

    @field_validator("products", "lighting")
    @classmethod
    def _keys(cls, v: dict):
        for k in v:
            if not re.match(SLUG, k):
                raise ValueError(f"key {k!r} must be lower-case letters, digits, '-' or '_' (it goes into slugs)")
        return v


# ------------------------------------------------------------------------------------------------ YAML + lines

def _yaml_node_line(root, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at pydantic's ``loc`` (the deepest node that exists)."""
    import yaml

    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(part):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_keys(node, path: str, out: list) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen = {}
        for k, v in node.value:
            key = str(k.value)
            if key in seen:
                out.append((f"{path}.{key}".lstrip("."), k.start_mark.line + 1, seen[key]))
            seen[key] = k.start_mark.line + 1
            _duplicate_keys(v, f"{path}.{key}", out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _duplicate_keys(v, f"{path}[{i}]", out)


def _loc_text(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _pydantic_fix(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "correct its spelling or remove it (campaigns/demo/campaign.yaml shows every key in use)"
    if kind == "missing":
        return "add it"
    if kind.startswith(("greater", "less")):
        return "use a value inside the allowed range"
    if kind == "literal_error":
        return "use one of the values listed"
    return "correct the value"


def load_spec(campaign_dir: str | os.PathLike) -> CampaignSpec:
    """Read and validate ``<campaign_dir>/campaign.yaml``.

    Args:
        campaign_dir: the campaign folder.

    Returns:
        The validated ``CampaignSpec``.

    Raises:
        CampaignError: every problem found (file, key path, line, what to do).
    """
    return _load(campaign_dir)[0]


def _load(campaign_dir: str | os.PathLike):
    """(spec, the composed YAML node for line look-ups); raises CampaignError."""
    import yaml

    root_dir = Path(campaign_dir)
    path = root_dir / SPEC_FILE
    problems = Problems(root_dir.name)
    if not root_dir.is_dir():
        problems.add(str(root_dir), "campaign folder not found", "give the folder that holds campaign.yaml")
        problems.raise_if_any()
    if not path.is_file():
        problems.add(str(path), "campaign.yaml not found in the campaign folder",
                     "create it (copy campaigns/demo/campaign.yaml as a start)")
        problems.raise_if_any()
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as ex:
        problems.add(SPEC_FILE, f"not UTF-8 text (byte {ex.start})", "save the file as UTF-8")
        problems.raise_if_any()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        problems.add(SPEC_FILE, f"not valid YAML: {getattr(ex, 'problem', None) or ex}",
                     "fix the YAML syntax (indentation, quotes, ':' after keys)",
                     row=mark.line + 1 if mark else None)
        problems.raise_if_any()
    if not isinstance(data, dict):
        problems.add(SPEC_FILE, "the file must be a mapping of keys (name:, source:, matrix:, ...)",
                     "see campaigns/demo/campaign.yaml", row=1)
        problems.raise_if_any()
    dups: list = []
    _duplicate_keys(node, "", dups)
    for key, line, first in dups:
        problems.add(SPEC_FILE, f"key given twice (first on line {first})", "keep one of them", key=key, row=line)
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as ex:
        for err in ex.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-after",))))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                from ray32.inputs import known_keys

                msg = f"unknown key; the keys known here are {', '.join(known_keys(CampaignSpec, loc))}"
            value = err.get("input") if err["type"] not in ("missing", "extra_forbidden") else None
            if isinstance(value, (dict, list)):
                value = None
            problems.add(SPEC_FILE, msg, _pydantic_fix(err), key=_loc_text(loc) or "(top level)",
                         row=_yaml_node_line(node, loc), value=value)
        problems.raise_if_any()
    problems.raise_if_any()
    return spec, node


def resolve_asset(campaign_dir: Path, value: str) -> tuple[Path | None, str | None, str | None]:
    """Resolve an asset path written in the campaign, refusing anything outside the campaign folder.

    Args:
        campaign_dir: the campaign folder.
        value: the path as written (relative to the folder, or absolute inside it).

    Returns:
        ``(absolute_path, relative_posix_path, None)`` when it is inside the folder and exists, else
        ``(None, None, reason)`` where reason is one sentence.
    """
    root = Path(campaign_dir).resolve()
    raw = str(value).strip()
    if not raw:
        return None, None, "the path is empty"
    p = Path(raw)
    target = (p if p.is_absolute() else root / p).resolve()
    if not target.is_relative_to(root):
        how = "an absolute path" if p.is_absolute() else "a path with '..'" if ".." in p.parts else "a link"
        return None, None, f"{how} that points outside the campaign folder ({target})"
    if not target.is_file():
        return None, None, "file not found in the campaign folder"
    return target, target.relative_to(root).as_posix(), None


__all__ = ["CampaignSpec", "load_spec", "resolve_asset", "CampaignError", "OUTPUT_FORMATS", "ASPECTS", "MODES",
           "SPEC_FILE"]
