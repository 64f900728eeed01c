"""The shared body of the video writers (draft, hdr10, hlg, prores): colour conversion through OCIO, RGB ->
Y'CbCr with the output's matrix, encoding with the source's exact timing, the source's audio, atomic finish."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ray32 import color
from ray32.export._audio import AudioTrack
from ray32.export._common import (ExportError, Writer, check_request, prepare_dir, remove, source_facts,
                                  source_space, temp_name)

# ffprobe's names -> FFmpeg's enum values (libavutil/pixfmt.h), for the stream's colour tags.
PRIMARIES = {"bt709": 1, "bt2020": 9, "smpte432": 12}
TRANSFER = {"bt709": 1, "iec61966-2-1": 13, "smpte2084": 16, "arib-std-b67": 18}
MATRIX = {"bt709": 1, "bt2020nc": 9}
SWS_MATRIX = {"bt709": "ITU709", "bt2020nc": "BT2020"}  # swscale's RGB -> Y'CbCr coefficients


def even(fmt: str, width: int, height: int, *, chroma: str, option_hint: str = "") -> None:
    """Chroma-subsampled formats need an even width (4:2:2) or even width and height (4:2:0)."""
    odd = [n for n, v, need in (("width", width, True), ("height", height, chroma == "420")) if need and v % 2]
    if odd:
        raise ExportError(f"{fmt}: {width}x{height} has an odd {' and '.join(odd)}; 4:{chroma[1]}:{chroma[2]} "
                          f"video needs even sizes: crop or pad the frames by one pixel{option_hint}")


class VideoWriter(Writer):
    """One video file: subclasses choose codec, pixel format, colour space, container and audio codec.

    Args:
        out_dir, stem, fps, frame_count, width, height, source: as ``ray32.export.open_writer``.
        suffix: file name ending, e.g. "_draft.mp4".
        container_format: "mp4" or "mov".
        codec, pix_fmt, bits: the encoder, its pixel format and the RGB depth handed to swscale (8 or 16).
        output_space: the config's colour space of the written code values.
        out_size: (width, height) of the video when it differs from the frames' size.
        codec_options: encoder AVOptions.
        audio_codec: codec for the source's audio ("aac", "pcm_s24le"), None for no audio.
    """

    deferred = False  # True: frames are kept (spooled) and encoded in close(), e.g. to know light levels first

    def __init__(self, out_dir, *, stem: str, fps, frame_count: int, width: int, height: int, source=None,
                 suffix: str, container_format: str, codec: str, pix_fmt: str, bits: int, output_space: str,
                 out_size: tuple[int, int] | None = None, codec_options: dict | None = None,
                 audio_codec: str | None = None):
        fps = check_request(self.fmt, stem=stem, fps=fps, frame_count=frame_count, width=width, height=height)
        super().__init__(fps=fps, frame_count=frame_count, width=width, height=height)
        import av

        self.info, self.first = source_facts(source)
        self.src_space = source_space(self.info)
        self.output_space = output_space
        self.out_w, self.out_h = out_size or (width, height)
        out = prepare_dir(out_dir)
        self.path = out / f"{stem}{suffix}"
        self.tmp = temp_name(self.path)
        self.bits = bits
        dtype = np.uint8 if bits == 8 else np.uint16
        scale = color.white_scale(self.src_space, output_space)
        self._from_codes = color.Converter(self.src_space, output_space, scale=scale, out_dtype=dtype)
        if frame_count * width * height >= color.TABLE_MIN_PIXELS:
            self._table_pending = True  # built on the first 8-bit chunk (engines may hand float frames instead)
        # Float frames are linear working-space light with the source's white: the same gain applies.
        self._from_linear = color.Converter(color.WORKING_SPACE, output_space, scale=scale, out_dtype=dtype)
        primaries, transfer, matrix = color.VIDEO_TAGS[output_space]
        self.matrix = matrix
        self.container = av.open(str(self.tmp), "w", format=container_format,
                                 options={"movflags": "+faststart" if container_format == "mp4" else "+write_colr"})
        try:
            s = self.container.add_stream(codec, rate=fps)
            s.width, s.height, s.pix_fmt = self.out_w, self.out_h, pix_fmt
            s.time_base = 1 / fps
            cc = s.codec_context
            cc.color_primaries, cc.color_trc = PRIMARIES[primaries], TRANSFER[transfer]
            cc.colorspace, cc.color_range = MATRIX[matrix], 1  # 1 = limited ("tv") range
            s.options = dict(codec_options or {})
            s.thread_type = "AUTO"  # frame/slice threads where the encoder has them (prores_ks: slices)
            self.stream = s
            self.pix_fmt = pix_fmt
            self.audio = None
            if audio_codec and self.info is not None and self.info.audio:
                self.audio = AudioTrack(self.container, self.info, start=Fraction(self.first) / fps,
                                        duration=Fraction(frame_count) / fps, codec=audio_codec)
        except Exception:
            self._cleanup()
            raise

    # ------------------------------------------------------------------------------------------ conversion
    _table_pending = False

    def convert(self, frames: np.ndarray) -> np.ndarray:
        """Frames (uint codes in the source's space, or float32 linear) -> RGB codes in the output space."""
        if frames.dtype == np.float32:
            return self._from_linear(frames)
        if self._table_pending and frames.dtype == np.uint8:
            self._from_codes.use_table()
            self._table_pending = False
        return self._from_codes(frames)

    def to_video_frame(self, rgb: np.ndarray, index: int):
        """One RGB frame of output codes -> an encoder-ready frame (scaled, Y'CbCr, limited range)."""
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24" if rgb.dtype == np.uint8 else "rgb48le")
        frame = frame.reformat(width=self.out_w, height=self.out_h, format=self.pix_fmt,
                               dst_colorspace=SWS_MATRIX[self.matrix], dst_color_range="MPEG",
                               interpolation="AREA")
        self.tag(frame)
        frame.pts = index
        return frame

    def tag(self, frame) -> None:
        """Colour tags and time base on an encoder-ready frame (some encoders, e.g. prores_ks, read the frame's)."""
        cc = self.stream.codec_context
        frame.color_primaries, frame.color_trc = cc.color_primaries, cc.color_trc
        frame.colorspace, frame.color_range = cc.colorspace, cc.color_range
        frame.time_base = 1 / self.fps

    def encode(self, frame) -> None:
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    # ------------------------------------------------------------------------------------------ Writer
    def _write(self, frames: np.ndarray) -> None:
        rgb = self.convert(frames)
        for k in range(len(rgb)):
            self.emit(self.to_video_frame(rgb[k], self.written + k), rgb[k])
        if not self.deferred and self.audio is not None:
            self.audio.feed(Fraction(self.written + len(rgb)) / self.fps)

    def emit(self, frame, rgb: np.ndarray) -> None:
        """Hand one converted frame on (encode now; deferred writers keep it)."""
        self.encode(frame)

    def _finish(self, progress) -> Path:
        self.encode(None)
        if self.audio is not None:
            self.audio.finish()
        self.container.close()
        self.container = None
        os.replace(self.tmp, self.path)
        return self.path

    def _cleanup(self) -> None:
        if getattr(self, "audio", None) is not None:
            self.audio.close()
        if getattr(self, "container", None) is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        remove(getattr(self, "tmp", None))
