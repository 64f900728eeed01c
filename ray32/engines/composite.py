"""The composite engine: CPU, no model weights, the embedded default.

It works on the source's own frames, streamed in chunks, in this order per frame:

1. label swap (``ray32.label_lock.LabelSwapper``) onto the label tracked in ``prepare``, withheld (faded out,
   the source's pixels shown) where the track is lost (``ray32.label_lock.label_visibility``);
2. relight by grade in linear light through OpenColorIO (``ray32.grade.Grader``), keyframes interpolated;
3. subject-tracked reframe crop (``ray32.reframe.plan_crop``) following the face boxes from ``prepare``.

Output: uint8 RGB in the source's encoding, the source's frame count and timing, at the source size or the
crop's. Prompts, keyframe guides and adherences are generative controls this engine does not use (it logs
that they were ignored); ``reframe.method = "outpaint"`` is refused.

Engine options (``request.engine_options``): ``reframe_subject``: ``"face"`` (default) or ``"label"``;
``reframe_smooth_seconds`` (default 0.5).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from ray32.engines import ENGINES
from ray32.engines.base import Cancel, Engine, EngineError, Prepared, Progress

log = logging.getLogger(__name__)


class CompositeEngine(Engine):
    """Label swap, relight by grade and subject-tracked reframe over the source's own frames."""

    name = "composite"
    version = ENGINES["composite"].version
    chunk_frames = 8
    ignores = ("prompt", "keyframes", "motion_adherence", "structure_adherence")
    options = ("reframe_subject", "reframe_smooth_seconds")

    @classmethod
    def refusals(cls, request) -> list[str]:
        d = request if isinstance(request, dict) else request.model_dump()
        reframe = d.get("reframe") or {}
        if reframe and reframe.get("method", "crop") != "crop":
            return [f"the composite engine reframes by crop only, not {reframe['method']!r}; use reframe method "
                    "'crop', or a generative engine (wan-vace) for outpainting"]
        return []

    # ------------------------------------------------------------------------------------------- checks

    def check_request(self, prepared: Prepared, request) -> None:
        """Refuse what this engine cannot do, before any work.

        Raises:
            EngineError: outpainting asked for; a label swap without a matching prepared label track.
        """
        shot = prepared.shot
        refused = self.refusals(request)
        if refused:
            raise EngineError("; ".join(refused))
        if request.label_swap is not None:
            track = prepared.label_track
            frame = request.resolve_label_frame(shot.fps, shot.frame_count)
            if track is None or track.ref_frame != frame or not np.allclose(
                    track.ref_corners, np.asarray(request.label_swap.corners, dtype=np.float64), atol=1e-3):
                raise EngineError("the label swap's corners/frame differ from what the shot was prepared with; "
                                  "prepare it with engine.prepare_settings(request, shot)")
            vis = self.label_visibility(prepared, request)
            if vis.bridged:
                log.warning("label swap: short weak stretches of the label track are bridged with interpolated "
                            "corners (frames %s); check them", ", ".join(f"{a}-{b}" for a, b in vis.bridged))
            if vis.withheld:
                log.warning("label swap: the label track is lost (the product turned away or is hidden): the "
                            "label is withheld there and faded out and in around it: %s", vis.describe(shot.fps))
        request.resolve_grade_keys(shot.fps, shot.frame_count)  # raises on keys outside the shot
        ignored = self.ignored_controls(request)
        if ignored:
            log.info("composite engine: %s are generative controls and are not used here", ", ".join(ignored))

    def output_size(self, prepared: Prepared, request) -> tuple[int, int]:
        """(width, height): the source's, or the reframe crop's."""
        shot = prepared.shot
        if request.reframe is None:
            return shot.width, shot.height
        from ray32.reframe import crop_size

        return crop_size(shot.width, shot.height, request.reframe.ratio)

    # ------------------------------------------------------------------------------------------- render

    def render(self, prepared: Prepared, request, progress: Progress | None = None,
               cancel: Cancel | None = None) -> Iterator[np.ndarray]:
        """Stream the variant (see ``Engine.render``).

        Raises:
            EngineError: see ``check_request``. LabelArtError / GradeError: unreadable artwork or LUT.
        """
        from ray32.shot import read_chunks

        # 1. Check inputs, before any decoding.
        self.check_request(prepared, request)
        shot = prepared.shot
        n = shot.frame_count
        # 2. Build the steps the request asks for.
        swapper = self._swapper(shot, request)
        alpha = self.label_visibility(prepared, request).alpha if swapper is not None else None
        grader = self._grader(shot, request)
        crop = self._crop_plan(prepared, request)
        # 3. Stream.
        done = 0
        try:
            for chunk in read_chunks(shot, chunk_frames=self.chunk_frames, cancel=cancel):
                frames = chunk.frames
                out = None
                for k in range(len(frames)):
                    i = chunk.first - shot.first + k
                    f = frames[k]
                    if swapper is not None:
                        f = swapper.apply(f, prepared.label_track.corners[i], inplace=True, opacity=alpha[i])
                    if grader is not None:
                        f = grader.apply(i, f)  # in place: the chunk's buffer is ours
                    if crop is not None:
                        f = crop.crop(i, f)
                    if out is None:
                        out = np.empty((len(frames),) + f.shape, np.uint8)
                    out[k] = f
                done += len(frames)
                yield out
                if progress:
                    progress(done, n)
                if cancel is not None and cancel():
                    return
        finally:
            if grader is not None:
                grader.close()

    def _swapper(self, shot, request):
        if request.label_swap is None:
            return None
        from ray32.label_lock import LabelSwapper, load_artwork

        return LabelSwapper(load_artwork(request.label_swap.artwork), transfer=shot.info.color_transfer,
                            primaries=shot.info.color_primaries)

    def _grader(self, shot, request):
        if request.grade is None:
            return None
        from ray32.color import source_space
        from ray32.grade import Grader

        keys = request.resolve_grade_keys(shot.fps, shot.frame_count) or [(0, request.grade.values())]
        return Grader(keys, source_space(shot.info.color_transfer, shot.info.color_primaries), request.grade.lut)

    def _crop_plan(self, prepared: Prepared, request):
        if request.reframe is None:
            return None
        from ray32.reframe import plan_crop

        shot = prepared.shot
        subject = request.engine_options.get("reframe_subject", "face")
        if subject not in ("face", "label"):
            raise EngineError(f"engine_options['reframe_subject'] must be 'face' or 'label', got {subject!r}")
        boxes = None
        if subject == "label" and prepared.label_track is not None:
            c = prepared.label_track.corners
            boxes = np.concatenate([c.min(axis=1), c.max(axis=1)], axis=1)
        elif prepared.face_boxes is not None:
            boxes = prepared.face_boxes
        if boxes is None or not np.isfinite(boxes).any():
            log.warning("reframe: no %s found in the shot; the crop stays centred", subject)
            boxes = np.full((shot.frame_count, 4), np.nan)
        smooth = float(request.engine_options.get("reframe_smooth_seconds", 0.5))
        return plan_crop(boxes, shot.width, shot.height, request.reframe.ratio, shot.fps, smooth_seconds=smooth)
