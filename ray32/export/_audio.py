"""The source's audio in a video deliverable: decoded, cut sample-exactly to the exported frames' span, and
re-encoded (AAC for MP4, PCM for MOV), muxed in step with the video."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


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
        self.stream = container.add_stream(codec, rate=self.rate)
        self.stream.layout = a.layout or ("stereo" if a.channels == 2 else "mono")
        if codec == "aac":
            self.stream.bit_rate = 256_000
        self.begin = math.floor(start * self.rate + Fraction(1, 2))
        self.end = self.begin + math.floor(duration * self.rate + Fraction(1, 2))
        self.out = 0  # samples muxed so far
        self._src = av.open(str(info.path))
        stream = self._src.streams.audio[0]
        self._video_start = Fraction(info.start_pts) * info.time_base
        self._frames = self._src.decode(stream)
        self._pending = None  # (first source sample, frame) not yet used
        self._exhausted = False

    def _next(self):
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        for frame in self._frames:
            if frame.pts is None:
                continue
            t = Fraction(frame.pts) * frame.time_base - self._video_start
            return math.floor(t * self.rate + Fraction(1, 2)), frame
        self._exhausted = True
        return None

    def feed(self, until: Fraction | None = None) -> None:
        """Mux audio up to output time ``until`` (seconds from the first exported frame); None: all of it."""
        import av

        limit = self.end if until is None else min(self.end, self.begin + math.ceil(until * self.rate))
        while self.begin + self.out < limit and not self._exhausted:
            item = self._next()
            if item is None:
                break
            s0, frame = item
            n = frame.samples
            lo = max(self.begin + self.out, s0)   # never repeat samples already written
            hi = min(s0 + n, limit)
            if hi <= lo:
                if s0 >= limit:
                    self._pending = item
                    break
                continue
            arr = frame.to_ndarray()
            if frame.format.is_planar:
                part = arr[:, lo - s0:hi - s0]
            else:
                ch = len(frame.layout.channels)
                part = arr[:, (lo - s0) * ch:(hi - s0) * ch]
            out = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name,
                                             layout=frame.layout.name)
            out.sample_rate = self.rate
            out.pts = self.out
            out.time_base = Fraction(1, self.rate)
            for packet in self.stream.encode(out):
                self.container.mux(packet)
            self.out += hi - lo
            if hi < s0 + n:  # the rest of this frame belongs after ``limit``
                self._pending = item
                break

    def finish(self) -> None:
        """Mux the rest of the span and flush the encoder."""
        self.feed(None)
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.close()

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None
