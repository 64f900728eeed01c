"""What QA needs to know about a variant besides its pixels: the facts file of ``ray32 qa``.

A facts file is JSON (or a dict built by the campaign flow)::

    {"variant": "de-aqua500-golden", "market": "de", "mode": "adhere",
     "engine": "composite",                                                 # the engine that rendered it
     "label": {"text": "AQUA FRESH 500 ml", "artwork": "labels/de.png",
               "corners": [[x, y], [x, y], [x, y], [x, y]], "frame": 0,     # the quad in the source, tl tr br bl
               "truth": "demo_shot.truth.json"},                           # or "track": per-frame quads
     "identity": {"reference": "faces/lead.png"},                           # optional; default: the source's face
     "keyframes": [{"time": "2.5", "guide": "guides/k1.png"}],
     "grade": {"temperature": 3800, "exposure": 0.25, "lut": "golden.cube"},   # the intended grade (the
                                                                            # request's grade), or null
     "overrides": {"identity_distance_max": {"max": 0.5}}}                  # per-campaign thresholds

Paths are relative to the facts file. ``facts_from_request`` builds the same from a planned variant's
``request`` (the RenderRequest field names); a render record (``<stem>.request.json`` written by ``ray32 render``:
``engine`` + ``request``) is read as facts too (``load_facts``).

How a variant is judged is decided here, once, from its facts (``judging``): a variant of a generative engine
(``EngineInfo.generative`` in ``ray32.engines.ENGINES``: the model re-renders every pixel) is compared with the
source on grade-invariant measures; any other variant against the intended pixel reference (the source through the
variant's own grade, with the market label swapped in).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ray32.errors import Ray32Error


class QaError(Ray32Error):
    """Bad QA input: a facts file, a missing image, clips that cannot be compared."""


class LabelFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    artwork: Path | None = None
    corners: list[list[float]] | None = None
    frame: int | str = 0
    track: list[list[list[float]]] | None = None
    truth: Path | None = None

    @field_validator("corners")
    @classmethod
    def _four(cls, v):
        if v is not None and (len(v) != 4 or any(len(p) != 2 for p in v)):
            raise ValueError("corners must be four [x, y] points: top-left, top-right, bottom-right, bottom-left")
        return v


class IdentityFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: Path | None = None
    check: bool = True


class KeyframeFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: str | int | float
    guide: Path | None = None


class Facts(BaseModel):
    """The facts of one variant (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid")
    variant: str = "variant"
    variant_id: str | None = None
    market: str | None = None
    mode: Literal["adhere", "flex", "reimagine"] = "adhere"
    engine: str | None = None
    label: LabelFacts | None = None
    identity: IdentityFacts = Field(default_factory=IdentityFacts)
    keyframes: list[KeyframeFacts] = Field(default_factory=list)
    grade: dict[str, Any] | None = None
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict)

    @field_validator("grade", mode="before")
    @classmethod
    def _grade(cls, v):
        if v is None or v is False:
            return None
        if v is True:
            raise ValueError("give the intended grade itself (the request's grade: temperature, tint, exposure, "
                             "contrast, saturation, lut, keyframes), not true, so QA can judge against it")
        return v

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, v):
        from ray32.engines import ENGINES

        if v is not None and v not in ENGINES:
            raise ValueError(f"unknown engine {v!r}; known engines: {', '.join(ENGINES)} (or leave it out)")
        return v

    @field_validator("overrides")
    @classmethod
    def _known_metrics(cls, v):
        from qa.registry import metric_names

        known = metric_names()
        bad = sorted(set(v) - set(known))
        if bad:
            raise ValueError(f"unknown QA metric(s) {', '.join(map(repr, bad))}; valid metrics: {', '.join(known)}")
        for metric, spec in v.items():
            if set(spec) - {"min", "max"}:
                raise ValueError(f"{metric}: give 'min' and/or 'max', got {sorted(spec)}")
        return v

    def resolve(self, base: Path) -> "Facts":
        """The same facts with relative paths made absolute against ``base`` (the facts file's folder)."""

        def fix(p):
            return p if p is None or p.is_absolute() else base / p

        label = self.label.model_copy(update={"artwork": fix(self.label.artwork), "truth": fix(self.label.truth)}) \
            if self.label else None
        grade = self.grade
        if grade and grade.get("lut") and not Path(grade["lut"]).is_absolute():
            grade = {**grade, "lut": str(base / grade["lut"])}
        return self.model_copy(update={
            "label": label, "grade": grade,
            "identity": self.identity.model_copy(update={"reference": fix(self.identity.reference)}),
            "keyframes": [k.model_copy(update={"guide": fix(k.guide)}) for k in self.keyframes]})


def _problems(ex: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in ex.errors())


def parse_facts(data: dict[str, Any], *, where: str = "facts", base: Path | None = None) -> Facts:
    """Validate a facts dict; every problem is named in one ``QaError``."""
    try:
        facts = Facts.model_validate(data)
    except ValidationError as ex:
        raise QaError(f"{where}: {_problems(ex)}") from ex
    return facts.resolve(base) if base is not None else facts


def load_facts(path: str | os.PathLike) -> Facts:
    """Read and validate a facts JSON file; relative paths in it are relative to its folder.

    Raises:
        QaError: missing file, not JSON, or fields that are wrong (all named at once).
    """
    path = Path(path)
    if not path.is_file():
        raise QaError(f"{path}: facts file does not exist; write one (see 'ray32 qa --help') or leave --facts out")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as ex:
        raise QaError(f"{path}: is not valid JSON ({ex})") from ex
    if not isinstance(data, dict):
        raise QaError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    if "request" in data and "engine" in data:  # a render record (``ray32 render`` writes <stem>.request.json)
        if not isinstance(data["request"], dict):
            raise QaError(f"{path}: the render record's 'request' must be a JSON object")
        stem = path.name.removesuffix(".request.json") if path.name.endswith(".request.json") else path.stem
        # its paths are as the render was given them (relative to where it ran), so they are not re-based here
        return facts_from_request(data["request"], variant=stem, engine=data["engine"])
    return parse_facts(data, where=str(path), base=path.parent)


def render_record_for(output: str | os.PathLike) -> Path | None:
    """The render record (``<stem>.request.json`` written by ``ray32 render``) in ``output``'s folder that lists
    ``output`` among its outputs, or None."""
    output = Path(output)
    for record in sorted(output.parent.glob("*.request.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        outs = data.get("outputs") if isinstance(data, dict) else None
        if isinstance(outs, dict) and any(Path(str(v)).name == output.name for v in outs.values()):
            return record
    return None


@dataclass(frozen=True)
class Judging:
    """How a variant is judged (``judging``).

    Attributes:
        grade_invariant: whole-frame structure, flicker, motion and exposure are measured with grade-invariant
            measures against the source (a generative engine's variant); False: against the intended pixel
            reference (the source through the variant's grade, with the market label swapped in).
        why: the reason in words ("generative engine wan-vace").
    """

    grade_invariant: bool
    why: str

    def against(self, reference_kind: str) -> str:
        """The report's "judged against" line, given what the pixel reference is (``qa.metrics.Reference.kind``)."""
        if not self.grade_invariant:
            return reference_kind
        line = f"grade-invariant measures against the source ({self.why}: it re-renders every pixel)"
        if "artwork" in reference_kind:
            line += "; the label against the market artwork swapped onto the source's label"
        return line


def judging(facts: Facts) -> Judging:
    """How ``facts``' variant is judged: the one place this is decided.

    A variant rendered by a generative engine (``EngineInfo.generative``) cannot match a pixel reference: the model
    re-renders every pixel, so its grade, noise and texture differ even when the variant is right. It is judged on
    grade-invariant measures against the source (layout by the orientation of its per-frame normalised colour
    structure, flicker against its own brightness trend, motion by flow on stretched luminance, exposure and colour
    only for gross failures and against the intended grade's look), in every mode; the mode sets the bounds. Any other variant (the
    composite engine, or an engine the facts do not name) is judged against the intended pixel reference.
    """
    engine = getattr(facts, "engine", None)  # facts pickled before engines were recorded have none
    if engine is not None:
        from ray32.engines import ENGINES

        if ENGINES[engine].generative:
            return Judging(True, f"generative engine {engine}")
        return Judging(False, f"{engine} engine: pixels follow the source")
    return Judging(False, "engine not named: pixels are expected to follow the source")


def grade_invariant(facts: Facts) -> bool:
    """``judging(facts).grade_invariant`` (for ``Metric.when``)."""
    return judging(facts).grade_invariant


def has_label(facts: Facts) -> bool:
    """The variant has a market label to judge (for ``Check.applies``)."""
    return facts.label is not None


def has_guides(facts: Facts) -> bool:
    """The variant has keyframes with guide images to compare with (for ``Check.applies``)."""
    return any(k.guide is not None for k in facts.keyframes)


def pixel_reference(facts: Facts) -> bool:
    """Not ``grade_invariant`` (for ``Metric.when``)."""
    return not judging(facts).grade_invariant


def facts_from_request(request: dict, *, variant: str, variant_id: str | None = None, market: str | None = None,
                       overrides: dict | None = None, base: Path | None = None, engine: str | None = None) -> Facts:
    """Facts from a planned variant's ``request`` (RenderRequest field names: label_swap, locks, keyframes,
    mode, grade) and the engine that rendered it."""
    swap = request.get("label_swap") or None
    face = next((lk for lk in request.get("locks", []) if lk.get("kind") == "face" and lk.get("reference")), None)
    data = {
        "variant": variant, "variant_id": variant_id, "market": market, "mode": request.get("mode", "adhere"),
        "engine": engine,
        "label": {"text": swap["text"], "artwork": swap.get("artwork"), "corners": swap.get("corners"),
                  "frame": swap.get("frame", 0)} if swap else None,
        "identity": {"reference": face["reference"]} if face else {},
        "keyframes": [{"time": k["time"], "guide": k.get("guide")} for k in request.get("keyframes", [])],
        "grade": request.get("grade") or None, "overrides": overrides or {},
    }
    return parse_facts(data, where=f"variant {variant}", base=base)
