"""Opening and understanding a source shot: probe, validate, decode in bounded chunks, trim.

The source of a campaign is one take of at most 20 s. This module answers what it is (``probe``), whether it
is usable (``open_shot``: length limit, trim, constant-rate normalisation, cuts inside the clip), and gives its
frames as a stream of small chunks at a working size (``read_chunks``) so that a 20 s 1080p clip is never
held whole in memory. Every failure is one ``ShotError`` that names the file and the problem; PyAV's own
exceptions never leave this module.

Example:
    >>> shot = open_shot("campaigns/demo/shot.mp4", start="0.5", end="2.5")   # doctest: +SKIP
    >>> for chunk in read_chunks(shot, geometry=working_geometry(shot.width, shot.height, max_side=512,
    ...                                                            multiple=16)):  # doctest: +SKIP
    ...     chunk.frames.shape  # (n, h, w, 3) uint8, chunk.first = index of chunk.frames[0]
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from ray32.errors import Ray32Error
from ray32.timecode import TimeFormatError, format_seconds, format_timecode, parse_time

log = logging.getLogger(__name__)

MAX_SECONDS = Fraction(20)
"""Longest source accepted (Ray-3.2-style limit); longer clips must be trimmed with start/end."""

# FFmpeg's enum values (libavutil/pixfmt.h) -> the names ffprobe prints.
_PRIMARIES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
              9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
_TRANSFER = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
             17: "smpte428", 18: "arib-std-b67"}
_MATRIX = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
           8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 14: "ictcp"}
_RANGE = {0: "unknown", 1: "tv", 2: "pc"}


class ShotError(Ray32Error):
    """A source clip that cannot be used, with the file, the problem and where it happened.

    Attributes:
        path: the file.
        problem: what is wrong and what to do, in one sentence or two.
        frame: the frame index where decoding broke, when it broke mid-stream.
        time: the time of that frame in seconds.
    """

    def __init__(self, path: str | os.PathLike, problem: str, *, frame: int | None = None,
                 time: Fraction | float | None = None):
        self.path = Path(path)
        self.problem = problem
        self.frame = frame
        self.time = time
        where = ""
        if frame is not None:
            where = f" at frame {frame}" + (f" ({format_seconds(time)})" if time is not None else "")
        super().__init__(f"{self.path}: {problem}{where}")


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float | None


@dataclass(frozen=True)
class ShotInfo:
    """What a clip is. Sizes are as displayed (after rotation); ``coded_*`` as stored."""

    path: Path
    container: str
    codec: str
    profile: str | None
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: Fraction
    frame_count: int
    duration: Fraction
    pix_fmt: str
    bit_depth: int
    color_primaries: str
    color_transfer: str
    color_matrix: str
    color_range: str
    dynamic_range: str
    rotation: int
    vfr: bool
    audio: tuple[AudioInfo, ...]
    size_bytes: int
    # Where the stream's presentation time starts, in stream time_base units (for exact seeking).
    start_pts: int = field(default=0, repr=False)
    time_base: Fraction = field(default=Fraction(1, 1), repr=False)
    # Presentation times (seconds from start) of every frame, kept only for variable-rate clips.
    frame_times: tuple[Fraction, ...] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("frame_times")
        d.pop("start_pts")
        d["time_base"] = str(self.time_base)
        d["path"] = str(self.path)
        d["fps"] = str(self.fps)
        d["fps_float"] = float(self.fps)
        d["duration"] = float(self.duration)
        return d


@dataclass(frozen=True)
class Cut:
    frame: int
    time: Fraction
    score: float


@dataclass(frozen=True)
class Shot:
    """A validated source: the probe, the trimmed frame range on a constant-rate grid, warnings, cuts."""

    info: ShotInfo
    first: int
    stop: int
    warnings: tuple[str, ...] = ()
    cuts: tuple[Cut, ...] = ()

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    @property
    def frame_count(self) -> int:
        return self.stop - self.first

    @property
    def duration(self) -> Fraction:
        return Fraction(self.frame_count) / self.info.fps

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height


@dataclass(frozen=True)
class Geometry:
    """Source size <-> working size: scale to fit, then pad to a multiple. ``restore`` is the inverse."""

    src_width: int
    src_height: int
    scaled_width: int
    scaled_height: int
    width: int
    height: int
    pad_left: int
    pad_top: int

    @property
    def scale(self) -> float:
        return self.scaled_width / self.src_width

    def to_working(self, points: np.ndarray) -> np.ndarray:
        """Source pixel coordinates (..., 2) -> working-frame coordinates."""
        pts = np.asarray(points, dtype=np.float64)
        sx = self.scaled_width / self.src_width
        sy = self.scaled_height / self.src_height
        return np.stack([pts[..., 0] * sx + self.pad_left, pts[..., 1] * sy + self.pad_top], axis=-1)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        sx = self.src_width / self.scaled_width
        sy = self.src_height / self.scaled_height
        return np.stack([(pts[..., 0] - self.pad_left) * sx, (pts[..., 1] - self.pad_top) * sy], axis=-1)

    def pad(self, image: np.ndarray) -> np.ndarray:
        """A scaled image (scaled_height, scaled_width, C) -> working size, edges replicated."""
        if self.width == self.scaled_width and self.height == self.scaled_height:
            return image
        import cv2

        return cv2.copyMakeBorder(image, self.pad_top, self.height - self.scaled_height - self.pad_top,
                                  self.pad_left, self.width - self.scaled_width - self.pad_left,
                                  cv2.BORDER_REPLICATE)

    def restore(self, frames: np.ndarray) -> np.ndarray:
        """Working-size frames (n, h, w, C) or one frame (h, w, C) -> source size (crop padding, resize back)."""
        import cv2

        single = frames.ndim == 3
        batch = frames[None] if single else frames
        crop = batch[:, self.pad_top:self.pad_top + self.scaled_height,
                     self.pad_left:self.pad_left + self.scaled_width]
        if (self.scaled_width, self.scaled_height) == (self.src_width, self.src_height):
            out = np.ascontiguousarray(crop)
        else:
            interp = cv2.INTER_CUBIC if self.scaled_width < self.src_width else cv2.INTER_AREA
            out = np.stack([cv2.resize(f, (self.src_width, self.src_height), interpolation=interp) for f in crop])
            if out.ndim == 3:
                out = out[..., None]
        return out[0] if single else out


def working_geometry(src_width: int, src_height: int, *, max_side: int | None = None,
                     max_width: int | None = None, max_height: int | None = None, multiple: int = 1) -> Geometry:
    """Fit a source into a working size an engine accepts.

    Args:
        src_width, src_height: the source's displayed size.
        max_side: longest side of the working frame (None: keep the source's size).
        max_width, max_height: bounds per axis; combined with ``max_side``.
        multiple: the working width and height are padded up to a multiple of this (an engine's patch size).

    Returns:
        A ``Geometry``; the picture keeps its aspect ratio and is centred in the padding.
    """
    if src_width <= 0 or src_height <= 0:
        raise ValueError(f"source size must be positive, got {src_width}x{src_height}")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    scale = 1.0
    for bound, side in ((max_side, max(src_width, src_height)), (max_width, src_width), (max_height, src_height)):
        if bound is not None:
            if bound <= 0:
                raise ValueError(f"size bounds must be positive, got {bound}")
            scale = min(scale, bound / side)
    sw = max(1, round(src_width * scale))
    sh = max(1, round(src_height * scale))
    w = math.ceil(sw / multiple) * multiple
    h = math.ceil(sh / multiple) * multiple
    return Geometry(src_width, src_height, sw, sh, w, h, (w - sw) // 2, (h - sh) // 2)


@dataclass
class Chunk:
    """Consecutive output frames: ``frames[k]`` is frame ``first + k`` of the source (trim-relative: ``index``)."""

    first: int
    frames: np.ndarray

    @property
    def stop(self) -> int:
        return self.first + len(self.frames)


# ----------------------------------------------------------------------------------------------------- opening

def _av():
    import av  # PyAV loads FFmpeg's libraries; kept out of module import so planning stays light

    # FFmpeg's console chatter is not our user interface. Silence it at the C level only: a Python log callback
    # (av.logging.set_level with a level) makes FFmpeg's decoder threads take the GIL, which deadlocks when the
    # main thread closes a frame-threaded decoder.
    av.logging.set_libav_level(av.logging.PANIC)
    return av


def _sniff_problem(path: Path) -> str:
    """Best guess at why FFmpeg refused a file, for the message."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    if not head.strip(b"\0"):
        return "contains only zero bytes; the copy or download did not finish"
    # ISO BMFF (MP4/MOV): walk top-level boxes; media data without the 'moov' index means an unfinished file.
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"wide", b"mdat", b"free", b"moov"):
        boxes, pos, size = [], 0, path.stat().st_size
        with open(path, "rb") as fh:
            while pos + 8 <= size and len(boxes) < 64:
                fh.seek(pos)
                n, kind = struct.unpack(">I4s", fh.read(8))
                if n == 1:
                    n = struct.unpack(">Q", fh.read(8))[0]
                elif n == 0:
                    n = size - pos
                boxes.append(kind)
                if n < 8:
                    break
                if pos + n > size:
                    return (f"is truncated: its '{kind.decode('latin-1')}' box runs past the end of the file "
                            f"({size} bytes); copy the complete file again")
                pos += n
        if b"moov" not in boxes:
            return ("is truncated or unfinished: an MP4/MOV without its 'moov' index (the recording or copy "
                    "stopped early); copy the complete file again or re-export it")
    return "is not a video FFmpeg can read (unknown or damaged container); export it as MP4 or MOV"


def _open_container(path: Path):
    av = _av()
    if not path.exists():
        raise ShotError(path, "does not exist; check the path")
    if path.is_dir():
        raise ShotError(path, "is a folder, not a video file")
    if path.stat().st_size == 0:
        raise ShotError(path, "is empty (0 bytes); the copy or export did not finish")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as ex:
        raise ShotError(path, _sniff_problem(path) + f" (FFmpeg: {ex.strerror or ex})") from ex
    except (OSError, ValueError) as ex:
        raise ShotError(path, f"cannot be opened ({ex})") from ex


def _video_stream(container, path: Path):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        if container.streams.audio:
            raise ShotError(path, "has no video stream (audio only); a source shot must be a video")
        raise ShotError(path, "has no video stream" + (f" (only {', '.join(kinds)})" if kinds else ""))
    return container.streams.video[0]


def _bit_depth(pix_fmt: str) -> int:
    av = _av()
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except Exception:  # an unknown or hardware format: assume 8
        return 8


def probe(path: str | os.PathLike) -> ShotInfo:
    """Read what a clip is without decoding it whole: container, codec, size, timing, colour, audio.

    The packet index is scanned (cheap, no decoding) to count frames and to detect variable frame rate; the
    first frame is decoded to read its rotation and colour tags.

    Args:
        path: a video file.

    Returns:
        ``ShotInfo``; ``fps`` is a ``Fraction`` and, for a variable-rate clip, the mean rate (frames/duration)
        rounded to a common rate, which is the grid ``read_chunks`` normalises to.

    Raises:
        ShotError: missing, empty, truncated, not a video, audio only, or unreadable packets.
    """
    av = _av()
    path = Path(path)
    container = _open_container(path)
    try:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        pts_list: list[int] = []
        durations: list[int] = []
        declared = stream.frames or 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None and packet.dts is None:
                    continue
                pts_list.append(packet.pts if packet.pts is not None else packet.dts)
                durations.append(packet.duration or 0)
        except av.error.FFmpegError as ex:
            n = len(pts_list)
            raise ShotError(path, f"is damaged or truncated: reading stopped after {n} of "
                                  f"{declared or '?'} frames (FFmpeg: {ex.strerror or ex})", frame=n) from ex
        if not pts_list:
            raise ShotError(path, "has a video stream with no frames")
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt in ("image2", "ico", "tiff", "bmp") or (len(pts_list) < 2 and fmt in
                                                                                ("gif", "apng", "webp")):
            raise ShotError(path, f"is a still image ({cc.name}), not a video shot; a source shot is a video clip "
                                  "(MP4 or MOV) of at least two frames: give the clip the image was taken from")
        if declared and len(pts_list) < declared:
            n = len(pts_list)
            raise ShotError(path, f"is truncated: the index lists {declared} frames but only {n} are in the file; "
                                  "copy the complete file again", frame=n)
        if len(pts_list) < 2:
            raise ShotError(path, "has only one frame; a source shot is a video of at least two frames: export the "
                                  "whole take")
        order = sorted(range(len(pts_list)), key=pts_list.__getitem__)
        pts_sorted = [pts_list[i] for i in order]
        start_pts = pts_sorted[0]
        last_dur = durations[order[-1]]
        steps = np.diff(np.asarray(pts_sorted, dtype=np.int64))
        if len(steps):
            typical = int(np.median(steps))
            last_dur = last_dur or typical
            # More than one tick of jitter on top of the typical step: frames are not evenly spaced.
            vfr = bool(np.any(np.abs(steps - typical) > max(1, typical * 0.02)))
        else:
            vfr = False
        span = Fraction(pts_sorted[-1] - start_pts + (last_dur or 0)) * tb
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if vfr or not rate:
            mean = Fraction(len(pts_sorted)) / span if span > 0 else Fraction(24)
            rate = _common_rate(mean)
        fps = Fraction(rate)
        if vfr:
            frame_count = max(1, math.floor(span * fps + Fraction(1, 2)))
            frame_times = tuple(Fraction(p - start_pts) * tb for p in pts_sorted)
            duration = Fraction(frame_count) / fps
        else:
            frame_count = len(pts_sorted)
            frame_times = None
            duration = Fraction(frame_count) / fps

        # First frame: rotation (display matrix) and colour tags the codec context may not carry.
        rotation = 0
        frame_tags = {}
        container.seek(start_pts, stream=stream, backward=True, any_frame=False)
        try:
            for frame in container.decode(stream):
                rotation = int(round(frame.rotation or 0)) % 360
                frame_tags = {"primaries": frame.color_primaries, "trc": frame.color_trc,
                              "space": frame.colorspace, "range": frame.color_range}
                break
        except av.error.FFmpegError as ex:
            raise ShotError(path, f"its first frame cannot be decoded (FFmpeg: {ex.strerror or ex})",
                            frame=0, time=0) from ex

        def tag(name_ctx, name_frame, table):
            value = getattr(cc, name_ctx, None)
            if value in (None, 2) and frame_tags.get(name_frame) not in (None, 2):
                value = frame_tags[name_frame]
            return table.get(int(value) if value is not None else 2, f"unknown({value})")

        primaries = tag("color_primaries", "primaries", _PRIMARIES)
        transfer = tag("color_trc", "trc", _TRANSFER)
        matrix = tag("colorspace", "space", _MATRIX)
        crange = _RANGE.get(int(cc.color_range or frame_tags.get("range") or 0), "unknown")
        dynamic = {"smpte2084": "PQ", "arib-std-b67": "HLG"}.get(transfer, "SDR")
        pix_fmt = cc.pix_fmt or (cc.format.name if cc.format else "unknown")
        coded_w, coded_h = cc.width, cc.height
        disp_w, disp_h = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)

        audio = []
        for a in container.streams.audio:
            ac = a.codec_context
            adur = float(a.duration * a.time_base) if a.duration and a.time_base else None
            audio.append(AudioInfo(index=a.index, codec=ac.name, sample_rate=ac.sample_rate or 0,
                                   channels=ac.channels or 0, layout=getattr(ac.layout, "name", "") or "",
                                   duration=adur))
        profile = None
        try:
            profile = stream.profile
        except Exception:
            pass
        return ShotInfo(
            path=path, container=container.format.name, codec=cc.name, profile=profile,
            width=disp_w, height=disp_h, coded_width=coded_w, coded_height=coded_h,
            fps=fps, frame_count=frame_count, duration=duration, pix_fmt=pix_fmt, bit_depth=_bit_depth(pix_fmt),
            color_primaries=primaries, color_transfer=transfer, color_matrix=matrix, color_range=crange,
            dynamic_range=dynamic, rotation=rotation, vfr=vfr, audio=tuple(audio),
            size_bytes=path.stat().st_size, start_pts=start_pts, time_base=tb, frame_times=frame_times,
        )
    finally:
        container.close()


_COMMON_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
                 Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60), Fraction(120)]


def _common_rate(mean: Fraction) -> Fraction:
    """Snap a measured mean rate to the nearest broadcast rate (within 3%), else round to 1/1000."""
    best = min(_COMMON_RATES, key=lambda r: abs(r - mean))
    if abs(best - mean) / mean < Fraction(3, 100):
        return best
    return Fraction(round(mean * 1000), 1000)


# ------------------------------------------------------------------------------------------------ validation

CLI_TRIM = ("--start", "--end")
"""How the trim is called in messages: the command line's options (a campaign passes its keys)."""


def resolve_trim(info: ShotInfo, start=None, end=None, *, names: tuple[str, str] = CLI_TRIM) -> tuple[int, int]:
    """``start``/``end`` (seconds, timecode, clock or ``"60f"``) -> the frame range [first, stop).

    ``end`` is exclusive: ``--start 1 --end 2`` at 24 fps gives frames 24..47, exactly 24 frames. ``names`` are
    what the trim is called in messages.
    """
    sname, ename = names
    try:
        first = 0 if start in (None, "") else parse_time(start, info.fps)
        stop = info.frame_count if end in (None, "") else parse_time(end, info.fps)
    except TimeFormatError as ex:
        raise ShotError(info.path, f"bad trim time: {ex}") from ex
    total = info.frame_count
    dur = format_seconds(info.duration)
    if first < 0 or first >= total:
        raise ShotError(info.path, f"{sname} {start} (frame {first}) is outside the clip, which has {total} "
                                   f"frames ({dur}); use a start below {format_seconds(info.duration)}")
    if stop > total:
        raise ShotError(info.path, f"{ename} {end} (frame {stop}) is past the end of the clip, which has {total} "
                                   f"frames ({dur}); use an end of at most {dur} or leave {ename} out")
    if stop <= first:
        raise ShotError(info.path, f"{ename} {end} (frame {stop}) must come after {sname} {start} (frame {first}); "
                                   "give an end later than the start")
    return first, stop


def open_shot(path: str | os.PathLike, *, start=None, end=None, max_seconds: Fraction | float = MAX_SECONDS,
              detect_cuts: bool = True, info: ShotInfo | None = None,
              progress: Callable[[int, int], None] | None = None, trim_names: tuple[str, str] = CLI_TRIM) -> Shot:
    """Probe and validate a source shot against the limits; trim; look for cuts.

    Args:
        path: the clip.
        start, end: trim (seconds, timecode, clock time or ``"60f"``); ``end`` exclusive.
        max_seconds: the longest accepted (trimmed) duration, 20 s by default.
        detect_cuts: decode a small copy of the clip to find cuts (a source should be one take).
        info: a probe already made, to skip probing again.
        progress: ``progress(done, total)`` during cut detection.
        trim_names: what ``start`` and ``end`` are called in messages (default the command line's options).

    Returns:
        A ``Shot``: the probe, the frame range, warnings (variable rate normalised, cuts found), cuts.

    Raises:
        ShotError: unreadable, or longer than the limit (the message says how to trim).
    """
    info = info or probe(path)
    first, stop = resolve_trim(info, start, end, names=trim_names)
    duration = Fraction(stop - first) / info.fps
    limit = Fraction(str(max_seconds)) if not isinstance(max_seconds, Fraction) else max_seconds
    if duration > limit:
        s = format_seconds(Fraction(first) / info.fps)
        raise ShotError(info.path, f"is {float(duration):.2f} s long ({stop - first} frames); a source may be at "
                                   f"most {float(limit):g} s. Trim it: {trim_names[0]} {s} {trim_names[1]} "
                                   f"{format_seconds(Fraction(first) / info.fps + limit)} (or any window of at "
                                   f"most {float(limit):g} s)")
    warnings = []
    if info.vfr:
        warnings.append(f"variable frame rate: normalised to a constant {_rate_text(info.fps)} fps, "
                        f"{info.frame_count} frames")
    if info.rotation:
        warnings.append(f"rotation metadata of {info.rotation} degrees: frames are rotated upright "
                        f"({info.width}x{info.height})")
    shot = Shot(info=info, first=first, stop=stop, warnings=tuple(warnings))
    if detect_cuts:
        cuts = find_cuts(shot, progress=progress)
        if cuts:
            listed = ", ".join(f"{format_timecode(c.frame, info.fps)} ({format_seconds(c.time)})" for c in cuts)
            msg = f"{len(cuts)} cut(s) inside the clip at {listed}; a source should be one take: trim to one"
            log.warning("%s: %s", info.path, msg)
            shot = replace(shot, cuts=tuple(cuts), warnings=shot.warnings + (msg,))
    return shot


def _rate_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} (={float(fps):.3f})"


# -------------------------------------------------------------------------------------------------- decoding

def _linear_lut(info: ShotInfo, levels: int) -> np.ndarray:
    from ray32.color import decode_lut

    return decode_lut(info.color_transfer, info.color_primaries, levels)


def read_chunks(shot: Shot | ShotInfo | str | os.PathLike, *, start=None, end=None,
                geometry: Geometry | None = None, chunk_frames: int = 16, output: str = "uint8",
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> Iterator[Chunk]:
    """Decode a shot as a stream of chunks of frames on its constant-rate grid.

    Args:
        shot: a ``Shot`` (its trim is used), a ``ShotInfo`` or a path.
        start, end: trim when ``shot`` is not a ``Shot`` (same forms as ``open_shot``).
        geometry: the working size (``working_geometry``); None keeps the source's displayed size.
        chunk_frames: frames per chunk; memory is bounded by one chunk (plus FFmpeg's own buffers).
        output: ``"uint8"`` RGB, or ``"linear"`` float32 RGB in linear light (the source's primaries; decoded
            from 16-bit RGB when the source has more than 8 bits).
        progress: ``progress(done, total)`` after each chunk.
        cancel: polled between frames; when it returns True decoding stops (no exception).

    Yields:
        ``Chunk``: ``first`` is the index in the source (``first - shot.first`` is the index in the trim).

    Raises:
        ShotError: decoding broke or a frame is corrupt; names the frame index and time.
    """
    if output not in ("uint8", "linear"):
        raise ValueError(f"output must be 'uint8' or 'linear', got {output!r}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if isinstance(shot, Shot):
        info, first, stop = shot.info, shot.first, shot.stop
    else:
        info = shot if isinstance(shot, ShotInfo) else probe(shot)
        first, stop = resolve_trim(info, start, end)
    av = _av()
    path = info.path
    fps = info.fps
    tb = info.time_base
    geometry = geometry or working_geometry(info.width, info.height)
    if (geometry.src_width, geometry.src_height) != (info.width, info.height):
        raise ValueError(f"geometry is for {geometry.src_width}x{geometry.src_height}, the shot is "
                         f"{info.width}x{info.height}")
    rot = info.rotation
    # swscale produces the scaled picture in stored orientation; numpy rotates it upright afterwards.
    if rot in (90, 270):
        sw, sh = geometry.scaled_height, geometry.scaled_width
    else:
        sw, sh = geometry.scaled_width, geometry.scaled_height
    deep = output == "linear" and info.bit_depth > 8
    fmt = "rgb48le" if deep else "rgb24"
    lut = _linear_lut(info, 65536 if deep else 256) if output == "linear" else None
    dtype = np.float32 if output == "linear" else np.uint8
    total = stop - first
    half = Fraction(1, 2) / fps

    container = _open_container(path)
    frames = frame = prev = None
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        if first > 0:
            target = Fraction(first) / fps - half - Fraction(1, 1000)
            container.seek(info.start_pts + max(0, math.floor(target / tb)), stream=stream, backward=True)

        buf = np.empty((min(chunk_frames, total), geometry.height, geometry.width, 3), dtype)
        filled = 0
        chunk_first = first
        next_index = first
        done = 0

        def convert(frame):
            img = frame.reformat(width=sw, height=sh, format=fmt, interpolation="AREA").to_ndarray()
            if rot:
                # PyAV reports the counter-clockwise rotation that displays the frame upright.
                img = np.rot90(img, k=rot // 90)
            img = geometry.pad(np.ascontiguousarray(img))
            return lut[img] if lut is not None else img

        def emit(img):
            nonlocal filled, chunk_first, buf, done
            buf[filled] = img
            filled += 1
            if filled == len(buf):
                out = Chunk(chunk_first, buf)
                done += filled
                chunk_first += filled
                filled = 0
                buf = np.empty((min(chunk_frames, stop - chunk_first), geometry.height, geometry.width, 3), dtype) \
                    if chunk_first < stop else buf
                return out
            return None

        decoded = 0
        # prev: the latest decoded picture (an av frame) ...
        prev_img = None  # ... and its conversion, made only when it is emitted
        frames = container.decode(stream)
        while next_index < stop:
            if cancel is not None and cancel():
                return
            try:
                frame = next(frames)
            except StopIteration:
                frame = None
            except av.error.FFmpegError as ex:
                t = Fraction(next_index) / fps
                raise ShotError(path, f"decoding failed (FFmpeg: {ex.strerror or ex}); the file is damaged "
                                      "here: re-export it or trim before this point", frame=next_index, time=t) from ex
            if frame is None:
                ft = None  # end of stream: the last picture holds for a variable-rate clip's final frames
                if prev is None or (not info.vfr and next_index < info.frame_count - 1):
                    raise ShotError(path, f"ended after {decoded} decoded frames, before frame {next_index} of "
                                          f"{info.frame_count}; the file is truncated", frame=next_index,
                                    time=Fraction(next_index) / fps)
            else:
                if frame.pts is None:
                    continue
                ft = Fraction(frame.pts - info.start_pts) * tb
                decoded += 1
                if frame.is_corrupt:
                    idx = math.floor(ft * fps + Fraction(1, 2))
                    raise ShotError(path, "a frame is corrupt (damaged data in the file); re-export the clip or "
                                          "trim before this point", frame=idx, time=ft)
            # Output frame i shows the latest picture whose time is <= t_i + half a frame.
            while prev is not None and next_index < stop and (ft is None or Fraction(next_index) / fps + half <= ft):
                if prev_img is None:
                    prev_img = convert(prev)
                out = emit(prev_img)
                next_index += 1
                if out is not None:
                    yield out
                    if progress:
                        progress(done, total)
            if ft is None:
                break
            prev, prev_img = frame, None
        if filled:
            done += filled
            yield Chunk(chunk_first, buf[:filled])
            if progress:
                progress(done, total)
    finally:
        # Drop every decoder-owned object before closing: a frame or the decode generator freed after close
        # (e.g. later, with a traceback that holds this frame) can deadlock FFmpeg's frame threads.
        frames = frame = prev = None
        container.close()


def iter_frames(shot, **kwargs) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` pairs from ``read_chunks`` (same arguments)."""
    for chunk in read_chunks(shot, **kwargs):
        for k, frame in enumerate(chunk.frames):
            yield chunk.first + k, frame


def find_cuts(shot: Shot, *, threshold: float = 0.35, progress: Callable[[int, int], None] | None = None
              ) -> list[Cut]:
    """Hard cuts inside a shot: frames whose small-picture histogram jumps far above its neighbours'.

    A camera move changes the histogram a little every frame; a cut changes it a lot once. The score is the
    histogram distance (0..1) between consecutive 64-px thumbnails; a cut needs ``score > threshold`` and at
    least 4x the median score of the frames around it.
    """
    import cv2

    geometry = working_geometry(shot.width, shot.height, max_side=64)
    hists = []
    for chunk in read_chunks(shot, geometry=geometry, chunk_frames=64, progress=progress):
        for f in chunk.frames:
            hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
            h = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
            hists.append(h / max(h.sum(), 1))
    if len(hists) < 2:
        return []
    h = np.asarray(hists)
    scores = 0.5 * np.abs(np.diff(h, axis=0)).sum(axis=1)  # total variation distance, 0..1
    cuts = []
    for k, s in enumerate(scores):
        lo, hi = max(0, k - 6), min(len(scores), k + 7)
        around = np.delete(scores[lo:hi], k - lo)
        base = float(np.median(around)) if len(around) else 0.0
        if s > threshold and s > 4 * base:
            frame = shot.first + k + 1
            cuts.append(Cut(frame=frame, time=Fraction(frame) / shot.fps, score=float(s)))
    return cuts


def content_hash(path: str | os.PathLike, *, algorithm: str = "sha256") -> str:
    """Hash of the file's bytes: the source's identity in variant ids and caches."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(shot: Shot) -> dict:
    """A shot as plain data (``ray32 probe --json``): its facts, trim, cuts, warnings and the source limits."""
    info = shot.info
    d = info.to_dict()
    d["trim"] = {"first_frame": shot.first, "stop_frame": shot.stop, "frame_count": shot.frame_count,
                 "duration": float(shot.duration)}
    d["cuts"] = [{"frame": c.frame, "time": float(c.time), "timecode": format_timecode(c.frame, info.fps)}
                 for c in shot.cuts]
    d["warnings"] = list(shot.warnings)
    d["within_limits"] = shot.duration <= MAX_SECONDS
    return d


def format_table(shot: Shot) -> str:
    """A shot as a two-column table for people (``ray32 probe``)."""
    i = shot.info
    fps = str(i.fps) if i.fps.denominator == 1 else f"{i.fps} ({float(i.fps):.3f})"
    rows = [
        ("file", str(i.path)),
        ("container", i.container),
        ("video", f"{i.codec}" + (f" ({i.profile})" if i.profile else "")),
        ("size", f"{i.width}x{i.height}" + (f" (stored {i.coded_width}x{i.coded_height}, rotated {i.rotation}°)"
                                             if i.rotation else "")),
        ("frame rate", fps + (" — variable, normalised to this constant rate" if i.vfr else "")),
        ("frames", str(i.frame_count)),
        ("duration", f"{float(i.duration):.3f} s ({format_timecode(i.frame_count, i.fps)})"),
        ("pixel format", f"{i.pix_fmt}, {i.bit_depth}-bit"),
        ("colour", f"{i.dynamic_range}: primaries {i.color_primaries}, transfer {i.color_transfer}, "
                   f"matrix {i.color_matrix}, range {i.color_range}"),
        ("audio", "; ".join(f"#{a.index} {a.codec} {a.sample_rate} Hz {a.layout or a.channels}" for a in i.audio)
         or "none"),
    ]
    if (shot.first, shot.stop) != (0, i.frame_count):
        rows.append(("trim", f"frames {shot.first}..{shot.stop - 1} ({shot.frame_count} frames, "
                             f"{float(shot.duration):.3f} s)"))
    rows.append(("cuts", ", ".join(f"{format_timecode(c.frame, i.fps)} ({format_seconds(c.time)})"
                                   for c in shot.cuts) or "none (one take)"))
    rows.append(("source limits", "ok (at most 20 s)" if shot.duration <= MAX_SECONDS else "too long"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += [f"{'warning'.ljust(width)}  {w}" for w in shot.warnings]
    return "\n".join(lines)
