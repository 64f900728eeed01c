"""Files a request names, checked where they enter, before any work: images decode and have a sensible size, LUTs
parse, a label artwork's shape is near the label's. Unknown keys in a request are listed with the known ones.

Engines read these files much later (after the shot is prepared, which can take minutes); checking them here
means a typo or a broken export fails in a second with the file named, not half-way through a render. Nothing
here imports OpenColorIO, OpenCV or an engine: ``ray32 campaign plan`` calls it for every file a campaign names.

Example:
    >>> image_size("labels/de.png", "label artwork")   # doctest: +SKIP
    (440, 240)
"""

from __future__ import annotations

import os
import typing
from collections.abc import Sequence
from pathlib import Path

from ray32.errors import Ray32Error

MIN_IMAGE_SIDE = 8
"""Fewer pixels than this each way cannot carry a label or a guide."""
MAX_IMAGE_SIDE = 16384
"""More than this each way is an export mistake (and would not fit in memory at working size)."""
ASPECT_WARN = 1.5
"""A label artwork whose width/height differs from the label quad's by more than this factor gets a warning."""
CUBE_SIZES = {"LUT_3D_SIZE": (2, 256), "LUT_1D_SIZE": (2, 65536)}


class InputError(Ray32Error):
    """Files or fields a command or a campaign names that cannot be used; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            super().__init__(f"{len(self.problems)} problems found:\n" + "\n".join(f"  - {p}" for p in self.problems))


def image_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """Open and fully decode an image file; return its ``(width, height)``.

    Args:
        path: the file.
        what: what it is for, for the message ("label artwork", "keyframe guide", "lock reference").

    Raises:
        InputError: missing, a folder, not an image, truncated, or smaller than ``MIN_IMAGE_SIDE`` / larger than
            ``MAX_IMAGE_SIDE`` pixels each way. The message names the file and says what to do.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise InputError([f"{what} '{p}' does not exist; check the path (PNG or JPEG)"])
    if p.is_dir():
        raise InputError([f"{what} '{p}' is a folder; give the path of a PNG or JPEG image"])
    try:
        with Image.open(p) as im:
            size = im.size
            if max(size) <= MAX_IMAGE_SIDE:
                im.load()  # decode it all: a truncated file fails here, not in the render
    except UnidentifiedImageError:
        raise InputError([f"{what} '{p}' is not an image (not PNG, JPEG, WebP, TIFF or another format Pillow "
                          "reads); export it again as PNG or JPEG"]) from None
    except (OSError, ValueError, Image.DecompressionBombError) as ex:
        raise InputError([f"{what} '{p}' cannot be decoded ({ex}); the file is damaged or truncated: export it "
                          "again as PNG or JPEG"]) from None
    w, h = size
    if min(w, h) < MIN_IMAGE_SIDE:
        raise InputError([f"{what} '{p}' is only {w}x{h} pixels; it needs at least {MIN_IMAGE_SIDE} each way "
                          "(ideally as large as it appears in the shot): export it larger"])
    if max(w, h) > MAX_IMAGE_SIDE:
        raise InputError([f"{what} '{p}' is {w}x{h} pixels, more than {MAX_IMAGE_SIDE} each way; export it at "
                          "the size it appears in the shot (or at most 4K)"])
    return w, h


def check_cube(path: str | os.PathLike) -> None:
    """Parse a ``.cube`` LUT (Adobe/Resolve text format): a size line and exactly that many rows of 3 numbers.

    Raises:
        InputError: missing, not a ``.cube`` file, not text, no size line, a line that is not 3 numbers, or the
            wrong number of rows. The message names the file (and the line) and says what to do.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError([f"LUT '{p}' does not exist; give the path of a .cube file"])
    if p.suffix.lower() != ".cube":
        raise InputError([f"LUT '{p}' is not a .cube file; export the LUT as .cube (Resolve / Adobe format)"])
    try:
        lines = p.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise InputError([f"LUT '{p}' is not a text .cube file (binary data); export the LUT again as .cube"]) from None
    kind, size, rows = None, 0, 0
    for num, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        word = line.split()[0]
        if word in CUBE_SIZES:
            lo, hi = CUBE_SIZES[word]
            try:
                size = int(line.split()[1])
            except (IndexError, ValueError):
                size = -1
            if not lo <= size <= hi:
                raise InputError([f"LUT '{p}' line {num}: {line!r} needs a whole number from {lo} to {hi}; export "
                                  "the LUT again"])
            kind = word
            continue
        if word in ("TITLE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_1D_INPUT_RANGE", "LUT_3D_INPUT_RANGE"):
            continue
        values = line.split()
        try:
            ok = len(values) == 3 and all(abs(float(v)) < 1e6 for v in values)
        except ValueError:
            ok = False
        if not ok:
            raise InputError([f"LUT '{p}' line {num}: {raw.strip()[:60]!r} is not three numbers (r g b) nor a "
                              ".cube keyword; this is not a .cube LUT, or it is damaged: export it again"])
        rows += 1
    if kind is None:
        raise InputError([f"LUT '{p}' has no LUT_3D_SIZE (or LUT_1D_SIZE) line; this is not a .cube LUT: export it "
                          "again as .cube"])
    want = size ** 3 if kind == "LUT_3D_SIZE" else size
    if rows != want:
        raise InputError([f"LUT '{p}' has {rows} rows of values but {kind} {size} needs {want}; the file is "
                          "truncated or damaged: export it again"])


def quad_aspect(corners: Sequence[Sequence[float]]) -> float:
    """Width / height of a quad given as top-left, top-right, bottom-right, bottom-left (mean opposite edges)."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = [tuple(map(float, c)) for c in corners]

    def dist(ax, ay, bx, by):
        return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5

    width = (dist(x0, y0, x1, y1) + dist(x3, y3, x2, y2)) / 2
    height = (dist(x0, y0, x3, y3) + dist(x1, y1, x2, y2)) / 2
    return width / height if height > 0 else float("inf")


def artwork_aspect_warning(size: tuple[int, int], corners: Sequence[Sequence[float]], what: str) -> str | None:
    """A warning when an artwork of ``size`` (w, h) would be stretched onto the quad by more than ``ASPECT_WARN``."""
    art = size[0] / size[1]
    quad = quad_aspect(corners)
    if quad <= 0 or quad == float("inf"):
        return None
    factor = max(art / quad, quad / art)
    if factor <= ASPECT_WARN:
        return None
    return (f"{what} is {size[0]}x{size[1]} (aspect {art:.2f}) but the label's corners make a quad of aspect "
            f"{quad:.2f}: it will be stretched {factor:.1f}x; export the artwork at the label's shape or check the "
            "corners")


def request_files(request) -> list[tuple[str, str, Path]]:
    """Every file a request names: ``(field path, kind, path)``, kind ``image`` or ``lut``. ``request`` is a
    ``RenderRequest`` or its plain-dict form."""
    d = request if isinstance(request, dict) else request.model_dump()
    out = []
    for i, k in enumerate(d.get("keyframes") or []):
        if k.get("guide"):
            out.append((f"keyframes[{i}].guide", "image", Path(k["guide"])))
    for i, lk in enumerate(d.get("locks") or []):
        if lk.get("reference"):
            out.append((f"locks[{i}].reference", "image", Path(lk["reference"])))
    if d.get("label_swap"):
        out.append(("label_swap.artwork", "image", Path(d["label_swap"]["artwork"])))
    if d.get("grade") and d["grade"].get("lut"):
        out.append(("grade.lut", "lut", Path(d["grade"]["lut"])))
    return out


_WHAT = {"keyframes": "keyframe guide", "locks": "lock reference", "label_swap": "label artwork"}


def check_request_files(request, *, names: dict[str, str] | None = None) -> list[str]:
    """Open every file a request names (guides, references, artwork, LUT) and collect every problem.

    Args:
        request: a ``RenderRequest`` or its dict form, paths already absolute or relative to the working folder.
        names: field path -> how the user wrote it (``{"label_swap.artwork": "--label-art"}``), for messages.

    Returns:
        Warnings (a label artwork far from the label's shape).

    Raises:
        InputError: every file that cannot be used, together.
    """
    problems, warnings = [], []
    d = request if isinstance(request, dict) else request.model_dump()
    for field, kind, path in request_files(d):
        names = names or {}
        label = names.get(field) or names.get(field.split("[")[0].split(".")[0]) or field
        try:
            if kind == "lut":
                check_cube(path)
                continue
            what = f"{_WHAT[field.split('[')[0].split('.')[0]]} ({label})"
            size = image_size(path, what)
        except InputError as ex:
            problems.extend(ex.problems)
            continue
        if field == "label_swap.artwork":
            w = artwork_aspect_warning(size, d["label_swap"]["corners"], f"label artwork '{path}' ({label})")
            if w:
                warnings.append(w)
    if problems:
        raise InputError(problems)
    return warnings


# ------------------------------------------------------------------------------------------------ unknown keys

def _models_in(annotation) -> list[type]:
    """The pydantic model classes inside a type annotation (through Optional, list, dict, Annotated)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def known_keys(model: type, loc: Sequence) -> list[str]:
    """The field names a pydantic ``model`` accepts at ``loc`` (the location of an unknown key, as pydantic gives
    it: the key itself last). List indices and free-form dict keys along the way are stepped over."""
    current = [model]
    for part in list(loc)[:-1]:
        nxt = []
        for m in current:
            fields = m.model_fields
            if isinstance(part, str) and part in fields:
                nxt += _models_in(fields[part].annotation)
        if nxt:
            current = nxt
        # an int (list index) or a dict key: stay on the models found so far
    names = []
    for m in current:
        names += [n for n in m.model_fields if n not in names]
    return names


def validation_problems(ex, model: type, *, prefix: str = "") -> list[str]:
    """Pydantic's errors for ``model`` as one sentence each; an unknown key lists the known ones."""
    out = []
    for e in ex.errors():
        loc = tuple(e["loc"])
        where = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if e["type"] == "extra_forbidden":
            out.append(f"{where or 'request'}: unknown key; known keys here: {', '.join(known_keys(model, loc))} "
                       "(check the spelling)")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            out.append(f"{where or 'request'}: {msg}")
    return out


# ------------------------------------------------------------------------------------------------ one request

def check_request_inputs(request, engine: str, *, source: str | os.PathLike | None = None, start=None, end=None,
                         options: dict[str, str] | None = None) -> list[str]:
    """Everything a render request names, checked before any work, every problem collected: the engine exists and
    can do what is asked; the source is a video within the limits and every time falls inside the trimmed
    source; guides, references and the artwork decode; the LUT parses.

    Args:
        request: the ``RenderRequest`` (file paths as the user gave them).
        engine: the engine's registry name.
        source, start, end: the source shot and its trim (checked when given).
        options: request field -> the command-line option that set it (``{"prompt": "--prompt"}``). A field the
            engine does not use is an error when it was set this way (the user asked for it explicitly), a
            warning otherwise (a request file).

    Returns:
        Warnings, one sentence each.

    Raises:
        InputError: every problem found, together.
    """
    from ray32.engines import EngineError, engine_class

    options = options or {}
    problems: list[str] = []
    warnings: list[str] = []
    try:
        cls = engine_class(engine)
    except EngineError as ex:
        problems.append(str(ex))
        cls = None
    if cls is not None:
        problems += cls.refusals(request)
        for key in cls.unknown_options(request.engine_options):
            problems.append(f"engine_options.{key}: unknown option for the {engine} engine; the options it knows "
                            f"are {', '.join(cls.options) or 'none'} (check the spelling)")
        for field in cls.ignored_controls(request):
            opt = options.get(field.split("[")[0])
            if opt:
                problems.append(f"{opt}: the {engine} engine does not use {field.split('[')[0].replace('_', ' ')} "
                                "(it would change no pixels); leave it out, or choose an engine that uses it "
                                "(--engine wan-vace)")
            else:
                warnings.append(f"the {engine} engine does not use the request's '{field}'; it changes no pixels")
        problems = list(dict.fromkeys(problems))
    try:
        warnings += check_request_files(request, names=options)
    except InputError as ex:
        problems += ex.problems
    if source is not None:
        from ray32.shot import open_shot

        try:
            shot = open_shot(source, start=start, end=end, detect_cuts=False)
            request.check_times(shot.fps, shot.frame_count)
        except Ray32Error as ex:
            problems.append(str(ex))
    if problems:
        raise InputError(problems)
    return warnings
