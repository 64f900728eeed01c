"""The source's audio in a video deliverable: decoded, cut sample-exactly to the exported frames' span, and
re-encoded (AAC for MP4, PCM for MOV), muxed in step with the video.

Samples are placed by their timestamps on the source's timeline (0 = the source's first video frame), not by
counting (a frame within ``JITTER`` of where the previous one ended follows it): a packet the decoder refuses (real files have them, e.g. Megamind.avi's first AC-3 frame is cut short)
or a gap in the stream becomes silence of its own length, so what follows stays in sync; the span is padded with
silence where the source's audio ends before its video does.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np

from ray32.export._common import ExportError

log = logging.getLogger(__name__)

# Decoding starts this long before the span (from the packet a seek lands on) and the samples before the span are
# dropped: codecs with overlapped transforms (AAC, AC-3) need the frame before to decode the first one right.
PRE_ROLL = Fraction(1, 2)
# A frame whose timestamp is this close to where the previous one ended follows it without a gap or an overlap:
# timestamps are rounded by containers (Matroska keeps milliseconds) or derived from byte counts (AVI), and
# obeying such jitter would cut or pad a few samples at every frame (clicks). Further off, the timestamp wins.
JITTER = Fraction(2, 1000)


# Channel orders for a stream whose layout is only a count ("2 channels"): encoders take named layouts only.
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _named_layout(layout: str | None, channels: int) -> str:
    if layout and not layout.endswith("channels"):
        return layout
    if channels not in DEFAULT_LAYOUTS:
        raise ExportError(f"the source's audio has {channels} channels in no named order; re-encode it with a "
                          "channel layout (ffmpeg -af aformat=channel_layouts=stereo) or drop it (-an)")
    return DEFAULT_LAYOUTS[channels]


class AudioTrack:
    """Feeds the source's first audio stream, from ``start`` for ``duration`` seconds, into ``container``.

    Args:
        container: the output container (PyAV, opened for writing; no packet muxed yet).
        info: the source's ``ShotInfo`` (must have audio).
        start: where the exported span begins in the source (seconds, Fraction).
        duration: the span's length (frame_count / fps).
        codec: "aac" or a PCM codec such as "pcm_s24le".
    """

    def __init__(self, container, info, *, start: Fraction, duration: Fraction, codec: str):
        import av

        self.container = container
        a = info.audio[0]
        self.rate = a.sample_rate
        self.layout = _named_layout(a.layout, a.channels)
        self.channels = len(av.AudioLayout(self.layout).channels)
        self.stream = container.add_stream(codec, rate=self.rate)
        self.stream.layout = self.layout
        if codec == "aac":
            self.stream.bit_rate = 256_000
        self.begin = math.floor(start * self.rate + Fraction(1, 2))
        self.end = self.begin + math.floor(duration * self.rate + Fraction(1, 2))
        self.out = 0  # samples muxed so far
        self.skipped = 0  # packets in the span the decoder refused
        self.decoded = False  # any samples decoded at all
        self._error = None  # the decoder's last refusal
        self.path = info.path
        self._video_start = Fraction(info.start_pts) * info.time_base
        # Every decoded frame is converted to float planar in the output's layout, so silence and samples match.
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._src = None
        self._frames = None
        self._pending = None  # (first source sample, samples) not yet used
        self._exhausted = False
        self._open(seek=self.begin > 2 * PRE_ROLL * self.rate)

    # ------------------------------------------------------------------------------------------ decoding
    def _open(self, *, seek: bool) -> None:
        import av

        self.close()
        self._src = av.open(str(self.path))
        stream = self._src.streams.audio[0]
        self._seeked = False
        if seek and stream.time_base:
            target = Fraction(self.begin, self.rate) - PRE_ROLL + self._video_start
            try:
                self._src.seek(math.floor(target / stream.time_base), stream=stream, backward=True)
                self._seeked = True
            except av.FFmpegError:  # not seekable: decode from the start
                self._src.close()
                self._src = av.open(str(self.path))
                stream = self._src.streams.audio[0]
        self._frames = self._decode(stream)
        self._next_s0 = None  # where the previous frame ended (None: no frame yet)

    def _decode(self, stream):
        """(first sample on the source's timeline, float32 samples (channels, n)) per decoded frame."""
        import av

        for packet in self._src.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:  # this packet only (FFmpeg's own tools log these and go on)
                self._refused(packet, e)
                continue
            for frame in frames:
                if frame.pts is not None:
                    t = Fraction(frame.pts) * frame.time_base - self._video_start
                    s0 = math.floor(t * self.rate + Fraction(1, 2))
                    if self._next_s0 is not None and abs(s0 - self._next_s0) <= JITTER * self.rate:
                        s0 = self._next_s0
                elif self._next_s0 is not None:
                    s0 = self._next_s0
                else:
                    continue  # nothing places it
                frame.pts = None  # the resampler must not re-time it
                samples = np.concatenate([f.to_ndarray() for f in self._resampler.resample(frame)], axis=1) \
                    if frame.samples else np.zeros((self.channels, 0), np.float32)
                self._next_s0 = s0 + samples.shape[1]
                self.decoded = True
                yield s0, samples

    def _refused(self, packet, error) -> None:
        """Note a packet the decoder refused; count it when it lies in the span (its samples become silence)."""
        self._error = error
        if packet.pts is not None and packet.time_base:
            t = Fraction(packet.pts) * packet.time_base - self._video_start
            s0 = math.floor(t * self.rate)
            s1 = s0 + math.ceil(Fraction(packet.duration or 0) * packet.time_base * self.rate)
            if s1 <= self.begin or s0 >= self.end:
                log.debug("%s: audio packet at %.3f s (outside the span) could not be decoded: %s", self.path,
                          float(t), error)
                return
        self.skipped += 1
        log.debug("%s: audio packet at %s could not be decoded: %s", self.path, packet.pts, error)

    def _next(self):
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        for item in self._frames:
            if self._seeked:
                self._seeked = False
                if item[0] > self.begin + self.out:  # the seek landed after the span's start: decode from the top
                    self._open(seek=False)
                    return self._next()
            return item
        self._exhausted = True
        if not self.decoded and self._error is not None:
            raise ExportError(f"{self.path}: its audio could not be decoded ({self._error}); re-encode the audio, "
                              f"or drop it: ffmpeg -i {self.path} -map 0:v -c copy NEW_FILE")
        return None

    # ------------------------------------------------------------------------------------------ muxing
    def _mux(self, samples: np.ndarray) -> None:
        import av

        out = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32), format="fltp",
                                         layout=self.layout)
        out.sample_rate = self.rate
        out.pts = self.out
        out.time_base = Fraction(1, self.rate)
        for packet in self.stream.encode(out):
            self.container.mux(packet)
        self.out += samples.shape[1]

    def _silence(self, until: int) -> None:
        """Silence from the next sample to be written up to source sample ``until`` (exclusive)."""
        step = self.rate  # one second at a time
        while self.begin + self.out < until:
            self._mux(np.zeros((self.channels, min(step, until - self.begin - self.out)), np.float32))

    def feed(self, until: Fraction | None = None) -> None:
        """Mux audio up to output time ``until`` (seconds from the first exported frame); None: all of it."""
        limit = self.end if until is None else min(self.end, self.begin + math.ceil(until * self.rate))
        while self.begin + self.out < limit:
            item = None if self._exhausted else self._next()
            if item is None:  # the source's audio ended before the span: silence to the end
                self._silence(limit)
                break
            s0, samples = item
            n = samples.shape[1]
            lo = max(self.begin + self.out, s0)   # never repeat samples already written
            hi = min(s0 + n, limit)
            if s0 >= limit:
                self._pending = item
                self._silence(limit)  # a gap (an undecodable packet) reaching past ``limit``
                break
            if hi <= lo:
                continue
            self._silence(lo)  # a gap before this frame
            self._mux(samples[:, lo - s0:hi - s0])
            if hi < s0 + n:  # the rest of this frame belongs after ``limit``
                self._pending = item
                break

    def finish(self) -> None:
        """Mux the rest of the span and flush the encoder."""
        self.feed(None)
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        if self.skipped:
            log.warning("%s: %d audio packet(s) in the exported span could not be decoded; their samples are "
                        "silence (the rest stays in sync)", self.path, self.skipped)
        self.close()

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None
