"""The composite engine: CPU, no model weights. (Skeleton: frames pass through; swap, grade and reframe follow.)"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ray32.engines.base import Cancel, Engine, Prepared, Progress


class CompositeEngine(Engine):
    """Label swap, relight by grade and subject-tracked reframe over the source's own frames."""

    name = "composite"
    version = "0.1"

    def output_size(self, prepared: Prepared, request) -> tuple[int, int]:
        return prepared.shot.width, prepared.shot.height

    def render(self, prepared: Prepared, request, progress: Progress | None = None,
               cancel: Cancel | None = None) -> Iterator[np.ndarray]:
        from ray32.shot import read_chunks

        for chunk in read_chunks(prepared.shot, chunk_frames=8, progress=progress, cancel=cancel):
            yield chunk.frames
