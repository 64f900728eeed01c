"""One variant of a shot, rendered and exported: the one render path.

``ray32 render`` and a campaign run's render task (``flows.pipeline.render_variant``) both call
``render_to_files``: check the request against the shot and the export formats, prepare the shot (or take an
already prepared one), stream the engine's frames into every requested format in one pass, and return the
paths with their sha256 (so packaging never reads the files again).

Example:
    >>> from ray32.render import render_to_files
    >>> from ray32.request import RenderRequest
    >>> out = render_to_files("shot.mp4", RenderRequest(outputs=["draft"]), out_dir="out")  # doctest: +SKIP
    >>> out.paths["draft"]                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ray32.errors import Ray32Error

StageProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is ``"prepare"`` or ``"render"``, counts are frames."""


@dataclass
class RenderResult:
    """What ``render_to_files`` wrote.

    Attributes:
        paths: ``{format: path}`` (a folder for image sequences).
        checksums: sha256 of every file written, by path relative to the output folder.
        engine, engine_version: what rendered it. width, height: the output frame size.
        prepared: the prepared shot (reusable for the next variant of the same shot).
        timings: ``{"prepare_s", "render_s"}`` (render includes export), seconds.
        deliveries: ``{target: delivery record}`` (``ray32.deliver.close_targets``; with ``qa`` when a
            ``check_deliveries`` callback ran). delivery_plans: ``{target: DeliveryPlan}``.
        label_withheld: the frame ranges where the label swap/lock withheld the artwork because the label track
            is lost (``ray32.label_lock.LabelVisibility.record``: ``{"frames": [first, last], "start", "end"}``).
    """

    paths: dict[str, Path]
    checksums: dict[str, str]
    engine: str
    engine_version: str
    width: int
    height: int
    prepared: object = None
    timings: dict = field(default_factory=dict)
    deliveries: dict = field(default_factory=dict)
    delivery_plans: dict = field(default_factory=dict)
    label_withheld: list = field(default_factory=list)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksums(out_dir: str | os.PathLike, paths: dict[str, Path]) -> dict[str, str]:
    """sha256 of every file under ``paths`` (files or folders), keyed by path relative to ``out_dir``."""
    out_dir = Path(out_dir)
    sums = {}
    for p in map(Path, paths.values()):
        for f in (sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]):
            sums[f.relative_to(out_dir).as_posix()] = sha256_file(f)
    return sums


def render_to_files(source, request, *, out_dir: str | os.PathLike, engine="composite",
                    engine_options: dict | None = None, stem: str | None = None, start=None, end=None,
                    prepared=None, cache_dir: str | os.PathLike | None = None, progress: StageProgress | None = None,
                    write_request: bool = False, deliver: list[str] | None = None,
                    deliver_dir: str | os.PathLike | None = None, deliver_preset: str = "veryfast",
                    check_deliveries: Callable | None = None) -> RenderResult:
    """Render ``request`` on ``source`` with an engine and export every format of ``request.outputs``.

    Args:
        source: a ``ray32.shot.Shot`` or the path of a video (opened with ``start``/``end``).
        request: a ``ray32.request.RenderRequest``.
        out_dir: the output folder (created if needed). stem: output file name stem (default: the source's name
            and the engine's).
        engine: an ``Engine`` instance or a registry name; ``engine_options`` go to a named engine's constructor.
        prepared: the shot already prepared for this request (campaigns prepare once per shot); else prepared
            here, from the disk cache (``cache_dir``) when it was prepared before.
        progress: ``progress(stage, done, total)``.
        write_request: also write ``<stem>.request.json`` (source, engine, request, outputs).
        deliver: delivery targets (``ray32.targets``) written from the same frames in the same pass into
            ``<deliver_dir>/<target>/`` (default ``out_dir``), x264 preset ``deliver_preset``.
        check_deliveries: ``check(records, plans, deliver_dir, shot, label_quads, face_boxes)``, run on the
            delivered files before the result is returned (the delivery checks live in ``qa``, above ``ray32``).

    Returns:
        ``RenderResult``.

    Raises:
        ExportError: unknown formats or a format that cannot take the output. Ray32Error: a request the engine or
        the shot refuses (times outside the shot, ...). ShotError: the source cannot be read.
    """
    from ray32.engines import get_engine
    from ray32.export import ExportError, available_formats, export_stream
    from ray32.shot import Shot, open_shot

    # 1. Check inputs, before any work.
    unknown = [f for f in request.outputs if f not in available_formats()]
    if unknown:
        raise ExportError(f"unknown export format(s) {', '.join(map(repr, unknown))}; available: "
                          f"{', '.join(available_formats())}")
    shot = source if isinstance(source, Shot) else open_shot(source, start=start, end=end, detect_cuts=False)
    if isinstance(engine, str):
        engine = get_engine(engine, **(engine_options or {}))
    request.check_times(shot.fps, shot.frame_count)
    out_dir = Path(out_dir)
    stem = stem or f"{Path(str(shot.info.path)).stem}_{engine.name}"
    # 2. Prepare the shot (cached on disk and shared by every variant).
    t0 = time.perf_counter()
    if prepared is None:
        settings = engine.prepare_settings(request, shot)
        if cache_dir is not None:
            settings["cache_dir"] = str(cache_dir)
        step = (lambda d, t: progress("prepare", d, t)) if progress else None
        prepared = engine.prepare(shot, settings, progress=step)
    elif prepared.shot.frame_count != shot.frame_count:
        raise Ray32Error(f"the prepared shot has {prepared.shot.frame_count} frames, the source {shot.frame_count}")
    # 3. Render and export in one pass.
    t1 = time.perf_counter()
    width, height = engine.output_size(prepared, request)
    step = (lambda d, t: progress("render", d, t)) if progress else None
    from ray32.deliver import export_with_targets, subject_tracks

    quads, faces = subject_tracks(prepared, request) if deliver else (None, None)
    deliver_dir = Path(deliver_dir) if deliver_dir is not None else out_dir
    paths, plans, deliveries = export_with_targets(
        deliver, deliver_dir,
        lambda frames: export_stream(request.outputs, frames, out_dir, stem=stem, fps=shot.fps,
                                     frame_count=shot.frame_count, width=width, height=height, source=shot,
                                     progress=step),
        engine.render(prepared, request), stem=stem, source=shot, width=width, height=height, label_quads=quads,
        face_boxes=faces, reframed=request.reframe.aspect if request.reframe is not None else None,
        preset=deliver_preset)
    t2 = time.perf_counter()
    if plans and check_deliveries is not None:  # 4. Delivery checks (the caller's: QA lives above ray32)
        check_deliveries(deliveries, plans, deliver_dir, shot, quads, faces)
    t3 = time.perf_counter()
    result = RenderResult(paths=paths, checksums=checksums(out_dir, paths), engine=engine.name,
                          engine_version=engine.version, width=width, height=height, prepared=prepared,
                          timings={"prepare_s": round(t1 - t0, 3), "render_s": round(t2 - t1, 3),
                                   "deliver_checks_s": round(t3 - t2, 3)},
                          deliveries=deliveries, delivery_plans=plans)
    vis = engine.label_visibility(prepared, request)
    if vis is not None:
        result.label_withheld = vis.record(shot.fps)
    if write_request:
        record = out_dir / f"{stem}.request.json"
        tmp = record.with_name(f".{record.name}.partial")
        tmp.write_text(json.dumps({"source": str(shot.info.path), "engine": engine.name,
                                   "engine_version": engine.version,
                                   "trim": {"start": f"{shot.first}f", "end": f"{shot.stop}f"},
                                   "request": json.loads(request.to_json()),
                                   "outputs": {k: str(v) for k, v in paths.items()},
                                   "checksums": result.checksums, "deliveries": deliveries,
                                   "label_withheld": result.label_withheld}, indent=2,
                                  default=str))
        os.replace(tmp, record)
    return result
