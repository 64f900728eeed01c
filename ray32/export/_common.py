"""Pieces every writer shares: the error type, output folders and temp names, frame checks, the source's facts."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

from ray32 import color
from ray32.errors import Ray32Error

log = logging.getLogger("ray32.export")


class ExportError(Ray32Error):
    """A request an exporter cannot serve (unknown format or option, bad size, unwritable folder, wrong frames)."""


def prepare_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and make sure files can be created in it."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".ray32-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as ex:
        raise ExportError(f"cannot write to output folder {out}: {ex.strerror or ex}; choose a folder you can "
                          "write to (--out)") from ex
    return out


def temp_name(final: Path) -> Path:
    """A hidden name beside ``final`` for writing; renamed onto ``final`` only when complete."""
    return final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")


def remove(path: Path | None) -> None:
    """Remove a file or folder if it exists (used by abort)."""
    if path is None:
        return
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove %s", path)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder onto ``final``; an older folder there is swapped out, then deleted."""
    old = None
    if final.exists():
        old = temp_name(final.with_name(final.name + ".old"))
        os.replace(final, old)
    os.replace(tmp, final)
    remove(old)


def source_facts(source):
    """``(ShotInfo | None, first frame index)`` from a ``Shot``, a ``ShotInfo`` or None."""
    if source is None:
        return None, 0
    info = getattr(source, "info", source)
    first = getattr(source, "first", 0) if source is not info else 0
    return info, first


def source_space(info) -> str:
    """The config's colour space of the source's code values (BT.709 video when there is no source)."""
    if info is None:
        return color.SDR_SPACE
    return color.source_space(info.color_transfer, info.color_primaries)


def check_frames(fmt: str, frames, width: int, height: int) -> np.ndarray:
    """Frames as a (n, h, w, 3) array of uint8/uint16 code values or float32 linear working-space values."""
    frames = getattr(frames, "frames", frames)  # a ray32.shot.Chunk works too
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[1:] != (height, width, 3):
        raise ExportError(f"{fmt}: frames must have shape (n, {height}, {width}, 3) (RGB at the size the writer "
                          f"was opened with), got {frames.shape}")
    if frames.dtype.name not in ("uint8", "uint16", "float32"):
        raise ExportError(f"{fmt}: frames must be uint8 or uint16 code values or float32 linear "
                          f"{color.WORKING_SPACE}, got {frames.dtype}")
    return frames


def check_request(fmt: str, *, stem: str, fps, frame_count: int, width: int, height: int) -> Fraction:
    """Validate the common arguments of ``open_writer``; returns ``fps`` as a Fraction."""
    if not stem or any(c in stem for c in "/\\\0") or stem.startswith("."):
        raise ExportError(f"{fmt}: stem {stem!r} must be a plain file name without folders or a leading dot")
    if isinstance(fps, float):
        raise ExportError(f"{fmt}: fps must be a Fraction (e.g. Fraction(24000, 1001)), not the float {fps}")
    try:
        fps = Fraction(fps)
    except (TypeError, ValueError) as ex:
        raise ExportError(f"{fmt}: fps {fps!r} is not a rational number") from ex
    if fps <= 0:
        raise ExportError(f"{fmt}: fps must be positive, got {fps}")
    if int(frame_count) != frame_count or frame_count < 1:
        raise ExportError(f"{fmt}: frame_count must be a positive integer, got {frame_count!r}")
    if width < 1 or height < 1:
        raise ExportError(f"{fmt}: size must be positive, got {width}x{height}")
    return fps


class Writer:
    """What every format's writer does around its own encoding: counting frames, finishing atomically, aborting.

    Subclasses implement ``_write(frames)``, ``_finish() -> Path`` (flush and rename) and ``_cleanup()``.
    """

    fmt = "?"

    def __init__(self, *, fps: Fraction, frame_count: int, width: int, height: int):
        self.fps, self.frame_count, self.width, self.height = fps, int(frame_count), width, height
        self.written = 0
        self.path: Path | None = None  # the final path, set by subclasses
        self._done = False
        self._aborted = False

    def write(self, frames) -> None:
        """Append frames (any failure aborts the writer): (n, h, w, 3) uint8/uint16 RGB code values in the source's encoding, or float32 linear
        light in ``ray32.color.WORKING_SPACE``.

        Raises:
            ExportError: wrong shape or type, more frames than ``frame_count``, or the encoder failed.
        """
        if self._done:
            raise ExportError(f"{self.fmt}: the writer is already closed")
        try:
            frames = check_frames(self.fmt, frames, self.width, self.height)
            if self.written + len(frames) > self.frame_count:
                raise ExportError(f"{self.fmt}: got more frames than the {self.frame_count} announced "
                                  f"({self.written} written, {len(frames)} more); timing must equal the source's")
            try:
                self._write(frames)
            except ExportError:
                raise
            except Exception as ex:  # an encoder or file-system failure, translated into the domain error
                raise ExportError(f"{self.fmt}: writing {self.path} failed: {ex}") from ex
        except BaseException:
            self.abort()  # a failed write leaves nothing behind
            raise
        self.written += len(frames)

    def close(self, progress=None) -> Path:
        """Finish the file and move it to its final name.

        Args:
            progress: optional ``progress(done, total)`` for work done at close (HDR10 encodes here).

        Returns:
            The final path (a folder for image sequences).

        Raises:
            ExportError: fewer frames than announced, or finishing failed; nothing is left behind then.
        """
        if self._aborted:
            raise ExportError(f"{self.fmt}: the writer was aborted; nothing was written")
        if self._done:
            return self.path
        try:
            if self.written != self.frame_count:
                raise ExportError(f"{self.fmt}: {self.written} frames were written but {self.frame_count} were "
                                  "announced; the output would not match the source's timing, so it was removed")
            try:
                path = self._finish(progress)
            except ExportError:
                raise
            except Exception as ex:
                raise ExportError(f"{self.fmt}: finishing {self.path} failed: {ex}") from ex
        except BaseException:
            self.abort()
            raise
        self._done = True
        log.info("%s: wrote %s (%d frames)", self.fmt, path, self.written)
        return path

    def abort(self) -> None:
        """Stop and remove everything written so far (safe to call more than once)."""
        self._done = True
        self._aborted = True
        try:
            self._cleanup()
        except Exception:  # abort must not raise over the error that caused it
            log.exception("%s: cleanup failed", self.fmt)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.close()
        return False

    # subclasses
    def _write(self, frames: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self, progress) -> Path:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError
