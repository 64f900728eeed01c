"""Deliverable formats: one writer per format, chosen by name, colour managed through ``ray32.color``.

=========  ==========================================================================  ==========================
format     what is written                                                             file
=========  ==========================================================================  ==========================
draft      H.264 8-bit 4:2:0 MP4, BT.709, ``size`` ("source", "540p", "WxH") and        ``<stem>_draft.mp4``
           ``quality`` ("fast", "standard", "high"); AAC audio
hdr10      HEVC Main10 4:2:0 MP4, BT.2020 / SMPTE ST 2084 / bt2020nc, mastering display  ``<stem>_hdr10.mp4``
           (P3-D65, 1000 nits) and MaxCLL/MaxFALL of the frames written; AAC audio
hlg        HEVC Main10 4:2:0 MP4, BT.2020 / ARIB STD-B67 / bt2020nc; AAC audio          ``<stem>_hlg.mp4``
prores     ProRes 422 HQ (default) or 4444, 10-bit, MOV, the source's colour            ``<stem>_prores.mov``
           encoding; 24-bit PCM audio
exr        OpenEXR half float RGB, ACEScg (default) or ACES2065-1, DWAB (default),      ``<stem>_exr/<stem>.NNNNNN.exr``
           ZIP, PIZ or none; chromaticities in the header; NNNNNN = source frame index
=========  ==========================================================================  ==========================

Every writer keeps the source's frame rate (a Fraction) and frame count exactly, writes under a hidden temporary
name and renames when complete; ``abort`` (or any failure) removes what was written.

Example:
    >>> from fractions import Fraction
    >>> from ray32.export import export_stream
    >>> paths = export_stream(["draft", "exr"], chunks, "out", stem="shot", fps=Fraction(24),   # doctest: +SKIP
    ...                       frame_count=72, width=960, height=540, source=shot)
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ray32 import color
from ray32.export._common import ExportError, Writer

__all__ = ["ExportError", "Writer", "available_formats", "format_options", "open_writer", "export_stream", "FORMATS"]

log = logging.getLogger(__name__)

FORMATS = {
    "draft": "ray32.export.draft",
    "hdr10": "ray32.export.hdr10",
    "hlg": "ray32.export.hlg",
    "prores": "ray32.export.prores",
    "exr": "ray32.export.exr",
}
"""Format name -> module (``FORMAT``, ``OPTIONS`` defaults, ``available()``, ``Writer``)."""


@lru_cache(maxsize=None)
def _module(fmt: str):
    return importlib.import_module(FORMATS[fmt])


@lru_cache(maxsize=1)
def _available() -> tuple[str, ...]:
    names = []
    for fmt in FORMATS:
        try:
            if _module(fmt).available():
                names.append(fmt)
        except ImportError as ex:  # an optional dependency missing here: the format is simply not offered
            log.info("export format %s unavailable: %s", fmt, ex)
    return tuple(names)


def available_formats() -> list[str]:
    """The formats this machine can write (their encoders and libraries import), in a stable order."""
    return list(_available())


def format_options(fmt: str) -> dict:
    """The options ``fmt`` accepts, with their defaults."""
    return dict(_module(_check_format(fmt)).OPTIONS)


def _check_format(fmt: str) -> str:
    if fmt not in _available():
        raise ExportError(f"unknown export format {fmt!r}; available: {', '.join(_available())}")
    return fmt


def open_writer(fmt: str, out_dir: str | os.PathLike, *, stem: str, fps, frame_count: int, width: int,
                height: int, source=None, **options) -> Writer:
    """Open a writer for one format.

    Args:
        fmt: a name from ``available_formats()``.
        out_dir: output folder (created if needed).
        stem: base file name; the format adds its suffix (see the module docstring).
        fps: the source's frame rate as a Fraction (floats are refused).
        frame_count: the number of frames that will be written; ``close`` checks it.
        width, height: the size of the frames handed to ``write``.
        source: the source ``ShotInfo`` or ``Shot`` (a Shot's trim positions the audio and the EXR frame numbers);
            its colour tags say what uint code values mean; None means BT.709 SDR video without audio.
        **options: per-format options (``format_options(fmt)`` lists them).

    Returns:
        A writer with ``write(frames)``, ``close() -> Path`` and ``abort()``.

    Raises:
        ExportError: unknown format or option, a size the format cannot take, an unwritable folder.
    """
    mod = _module(_check_format(fmt))
    unknown = sorted(set(options) - set(mod.OPTIONS))
    if unknown:
        raise ExportError(f"{fmt}: unknown option(s) {', '.join(unknown)}; {fmt} accepts: "
                          f"{', '.join(f'{k} (default {v!r})' for k, v in mod.OPTIONS.items())}")
    return mod.Writer(out_dir, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height,
                      source=source, **options)


def export_stream(formats: Sequence[str], chunks: Iterable[np.ndarray], out_dir: str | os.PathLike, *, stem: str,
                  fps, frame_count: int, width: int, height: int, source=None,
                  options: dict[str, dict] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Path]:
    """Write several formats in one pass over a stream of frames.

    Args:
        formats: format names (duplicates are ignored).
        chunks: arrays (n, height, width, 3) -- uint8/uint16 code values in the source's encoding or float32
            linear working-space light -- or ``ray32.shot.Chunk`` objects.
        out_dir, stem, fps, frame_count, width, height, source: as ``open_writer``.
        options: per-format options, e.g. ``{"draft": {"size": "540p"}, "exr": {"compression": "zip"}}``.
        progress: ``progress(done, total)``; work done at close (HDR10's encode) is counted too.

    Returns:
        ``{format: final path}``.

    Raises:
        ExportError: a bad request, wrong frames, or a failing writer; every writer is aborted first, so no
        output of this call is left behind.
    """
    formats = list(dict.fromkeys(formats))
    if not formats:
        raise ExportError(f"no export format asked for; available: {', '.join(available_formats())}")
    for fmt in formats:
        _check_format(fmt)
    options = options or {}
    stray = sorted(set(options) - set(formats))
    if stray:
        raise ExportError(f"options given for format(s) not exported: {', '.join(stray)}")
    writers: dict[str, Writer] = {}
    try:
        for fmt in formats:
            writers[fmt] = open_writer(fmt, out_dir, stem=stem, fps=fps, frame_count=frame_count, width=width,
                                       height=height, source=source, **options.get(fmt, {}))
        deferred = [w for w in writers.values() if getattr(w, "deferred", False)]
        total = frame_count * (1 + len(deferred))
        done = 0
        for chunk in chunks:
            frames = getattr(chunk, "frames", chunk)
            for w in writers.values():
                w.write(frames)
            done += len(frames)
            if progress:
                progress(done, total)
        paths = {}
        for fmt, w in writers.items():
            base = done
            step = (lambda d, t, base=base: progress(base + d, total)) if progress else None
            paths[fmt] = w.close(progress=step)
            if getattr(w, "deferred", False):
                done += frame_count
        if progress:
            progress(total, total)
        return paths
    except BaseException:
        for w in writers.values():
            w.abort()
        raise


def export_file(path: str | os.PathLike, formats: list[str], out: Path, *, stem: str | None = None, start=None, end=None,
                options: dict | None = None, progress=None, deliver: list[str] | None = None,
                deliveries: dict | None = None, check_deliveries=None) -> dict:
    """Read a clip once (``ray32.shot.read_chunks``) and write every format (``ray32 export``); returns
    ``{format: path}``. Sources deeper than 8 bits reach the writers as linear light in the working space.

    ``deliver``: delivery targets written in the same pass into ``out/<target>/`` (reframed around the faces: a
    plain clip has no label track); their records go into ``deliveries`` when given, after
    ``check_deliveries(records, plans, out, shot, None, faces)`` ran on them (as ``ray32.render.render_to_files``)."""
    from ray32 import shot as shotlib
    from ray32.deliver import export_with_targets
    from ray32.targets import get_target

    shot = shotlib.open_shot(path, start=start, end=end)
    info = shot.info
    deep = info.bit_depth > 8
    chunks = shotlib.read_chunks(shot, output="linear" if deep else "uint8")
    if deep:  # more than 8 bits: hand the writers linear light in the working space instead of 8-bit codes
        prim = info.color_primaries if info.color_primaries in color.LINEAR_SPACES else (
            "bt2020" if color.is_hdr(color.source_space(info.color_transfer, info.color_primaries)) else "bt709")
        conv = color.Converter(color.LINEAR_SPACES[prim], color.WORKING_SPACE, out_dtype="float32")
        chunks = (conv(np.ascontiguousarray(c.frames)) for c in chunks)
    faces = None
    if any(get_target(t).aspect is not None for t in deliver or []):
        from ray32.faces import detect_faces

        faces = detect_faces(shot, stride=4)
    stem = stem or Path(path).stem
    paths, plans, records = export_with_targets(
        deliver, out,
        lambda frames: export_stream(formats, frames, out, stem=stem, fps=info.fps, frame_count=shot.frame_count,
                                     width=info.width, height=info.height, source=shot, options=options,
                                     progress=progress),
        chunks, stem=stem, source=shot, width=info.width, height=info.height, face_boxes=faces)
    if plans and check_deliveries is not None:
        check_deliveries(records, plans, Path(out), shot, None, faces)
    if deliveries is not None:
        deliveries.update(records)
    return paths
