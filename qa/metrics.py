"""Running the checks over a source/output pair and building the per-run metrics table.

``measure_frames`` walks both clips chunk by chunk (frames at an analysis size for flow, flicker, structure
and exposure; full-size frames kept only at the sampled indices for OCR, faces, keyframes and the report), so
memory is bounded by one chunk plus the samples. ``measure_clips`` decodes two files with
``ray32.shot.read_chunks`` and loads the images the facts name. ``metrics_table`` makes one row per variant.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from qa.checks import CheckResult
from qa.checks.exposure import exposure_check, hdr_light_levels, summarise_exposure
from qa.checks.geometry import fit_size, gray, resize
from qa.checks.identity import face_embedding, identity_check
from qa.checks.label import label_check
from qa.checks.motion import dis_flows, motion_check, summarise_motion
from qa.checks.structure import structure_check, summarise_structure
from qa.checks.temporal import summarise_temporal, temporal_check
from qa.checks.timing import keyframe_check, timing_check
from qa.facts import Facts, QaError

log = logging.getLogger(__name__)

ANALYSIS_SIDE = 512
"""Longest side of the frames flow, flicker, structure and exposure are measured on."""
SAMPLES = 9
"""Frames (evenly spread, first and last included) on which OCR and face identity run."""


@dataclass
class VariantQA:
    """Everything measured on one variant.

    Attributes:
        variant: its name (slug). facts: what it was checked against.
        summary: metric name -> number (one row of the metrics table).
        frames: per-frame numbers of every check (index: frame index), outer-joined.
        fps: the source's frame rate (for timecodes). frame_count: the source's frame count.
        thumbs: frame index -> (source JPEG bytes, output JPEG bytes) at the sampled and keyframe indices.
        keyframes: the keyframe frame indices.
        notes: things the checks could not do, in words.
    """

    variant: str
    facts: Facts
    summary: dict[str, float]
    frames: pd.DataFrame
    fps: Fraction
    frame_count: int
    thumbs: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    keyframes: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sample_indices(frame_count: int, count: int = SAMPLES, extra: Iterable[int] = ()) -> list[int]:
    """``count`` frame indices evenly spread over the clip (first and last included) plus ``extra``."""
    if frame_count <= 0:
        return []
    base = np.unique(np.round(np.linspace(0, frame_count - 1, min(count, frame_count))).astype(int))
    return sorted(set(base.tolist()) | {int(e) for e in extra if 0 <= int(e) < frame_count})


def jpeg(frame: np.ndarray, width: int = 400, quality: int = 82) -> bytes:
    """A small JPEG of an RGB frame for the report."""
    from PIL import Image

    h, w = frame.shape[:2]
    img = Image.fromarray(frame)
    if w > width:
        img = img.resize((width, max(1, round(h * width / w))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _frames_of(chunks: Iterable) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) from ray32.shot Chunks or from plain (n, h, w, 3) arrays (numbered from 0)."""
    n = 0
    for c in chunks:
        arr = c.frames if hasattr(c, "frames") else c
        for f in arr:
            yield n, f
            n += 1


def _batches(src: Iterator, out: Iterator, size: int) -> Iterator[list]:
    batch = []
    for (i, s), (_, o) in zip(src, out):
        batch.append((i, s, o))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def measure_frames(source: Iterable, output: Iterable, facts: Facts, *, fps: Fraction, source_count: int,
                   output_count: int, output_fps: Fraction | None = None,
                   label_track: dict[int, np.ndarray] | None = None, artwork: np.ndarray | None = None,
                   identity_reference: np.ndarray | None = None, guides: dict[int, np.ndarray] | None = None,
                   samples: int = SAMPLES, analysis_side: int = ANALYSIS_SIDE, chunk_frames: int = 16,
                   cache: dict | None = None, progress: Callable[[int, int], None] | None = None) -> VariantQA:
    """Run every check on a source/output pair given as streams of frames.

    Args:
        source, output: iterables of ``ray32.shot.Chunk`` or of (n, h, w, 3) uint8 RGB arrays, in order.
        facts: the variant's facts (``qa.facts``).
        fps: the source's frame rate; ``output_fps`` the output's (default: the same).
        source_count, output_count: frame counts (from the probes).
        label_track: frame index -> the source's label quad (4, 2) in source pixels; needed for the label check.
        artwork: the market's label artwork (RGB) or None.
        identity_reference: the lock's reference face embedding (128,), or None to compare with the source's face.
        guides: keyframe frame index -> guide image.
        samples: how many evenly spread frames get OCR and face identity.
        analysis_side: longest side of the frames for flow, flicker, structure and exposure.
        cache: a dict kept by the caller between variants of the same source: the source's flows, steps and
            face embeddings are computed once and reused.
        progress: ``progress(done, total)`` in frames.

    Returns:
        ``VariantQA``.
    """
    cache = {} if cache is None else cache
    guides = guides or {}
    n = min(source_count, output_count)
    show = {0, (source_count - 1) // 2, source_count - 1}  # first / middle / last for the report
    picks = set(sample_indices(source_count, samples, set(guides) | show))
    kept_src: dict[int, np.ndarray] = {}
    kept_out: dict[int, np.ndarray] = {}
    tables: dict[str, list[pd.DataFrame]] = {"temporal": [], "motion": [], "structure": [], "exposure": []}
    notes: list[str] = []
    worst: dict[str, tuple[float, int, bytes, bytes]] = {}  # metric -> (value, frame, src jpeg, out jpeg)
    prev = None  # (index, src_small, out_small) of the frame before the batch
    done = 0
    size = None
    for batch in _batches(_frames_of(source), _frames_of(output), chunk_frames):
        first = batch[0][0]
        s0, o0 = batch[0][1], batch[0][2]
        if size is None:
            size = fit_size(s0.shape[1], s0.shape[0], analysis_side)
            if s0.shape[:2] != o0.shape[:2]:
                notes.append(f"output is {o0.shape[1]}x{o0.shape[0]}, source {s0.shape[1]}x{s0.shape[0]}: the "
                             "output is resized to the source's size for the pixel comparisons")
        batch = [(i, s, o if o.shape[:2] == s.shape[:2] else resize(o, (s.shape[1], s.shape[0])))
                 for i, s, o in batch]
        for i, s, o in batch:
            if i in picks:  # copies: a view would keep the decoder's whole chunk alive
                kept_src[i], kept_out[i] = s.copy(), o.copy()
        src_small = np.stack([resize(s, size) for _, s, _ in batch])
        out_small = np.stack([resize(o, size) for _, _, o in batch])
        tables["structure"].append(structure_check(src_small, out_small, first).frames)
        tables["exposure"].append(exposure_check(src_small, out_small, first).frames)
        if prev is not None:
            src_seq = np.concatenate([prev[1][None], src_small])
            out_seq = np.concatenate([prev[2][None], out_small])
            pair_first = first
        else:
            src_seq, out_seq, pair_first = src_small, out_small, first + 1
        if len(src_seq) > 1:
            key = ("src_pairs", pair_first, len(src_seq), size)
            if key not in cache:
                sf = dis_flows(src_seq)
                ss = np.array([np.abs(gray(src_seq[k + 1]).astype(np.float32) - gray(src_seq[k])).mean()
                               for k in range(len(src_seq) - 1)])
                cache[key] = (sf, ss)
            src_flows, src_steps = cache[key]
            out_flows = dis_flows(out_seq)
            out_steps = np.array([np.abs(gray(out_seq[k + 1]).astype(np.float32) - gray(out_seq[k])).mean()
                                  for k in range(len(out_seq) - 1)])
            tables["temporal"].append(temporal_check(src_seq, out_seq, src_flows, out_flows, pair_first).frames)
            tables["motion"].append(motion_check(src_flows, out_flows, src_steps, out_steps, pair_first).frames)
        _keep_worst(worst, tables, batch)
        prev = (batch[-1][0], src_small[-1], out_small[-1])
        done += len(batch)
        if progress:
            progress(done, n)

    joined = {k: pd.concat(v) if v else pd.DataFrame() for k, v in tables.items()}
    summary: dict[str, float] = {}
    summary.update(summarise_temporal(joined["temporal"]))
    summary.update(summarise_motion(joined["motion"]))
    summary.update(summarise_structure(joined["structure"]))
    summary.update(summarise_exposure(joined["exposure"]))
    summary.update(timing_check(source_count, fps, output_count, output_fps or fps).summary)
    results: list[CheckResult] = []

    # Label: OCR, artwork similarity, drift on the samples.
    if facts.label is not None:
        if label_track is None:
            notes.append("label not checked: no label track for the source")
        else:
            results.append(label_check(kept_out, {i: label_track[i] for i in kept_out if i in label_track},
                                       facts.label.text, artwork))
    # Identity: face embeddings on the samples.
    if facts.identity.check:
        src_emb = cache.setdefault("src_faces", {})  # index -> (embedding, box) or None
        for i in kept_src:
            if i not in src_emb:
                src_emb[i] = face_embedding(kept_src[i])
        out_emb = {}
        for i in kept_out:
            near = src_emb[i][1] if src_emb.get(i) is not None else None
            found = face_embedding(kept_out[i], near=near)
            out_emb[i] = None if found is None else found[0]
        ref = identity_reference if identity_reference is not None else \
            {i: None if src_emb[i] is None else src_emb[i][0] for i in kept_src}
        res = identity_check(out_emb, ref)
        if res.summary["face_frames"] == 0:
            notes.append("identity not checked: no face found in the source's sampled frames")
        results.append(res)
    if guides:
        results.append(keyframe_check(kept_out, guides))
    for r in results:
        summary.update(r.summary)
    per_frame = pd.concat([t for t in joined.values() if not t.empty] + [r.frames for r in results
                                                                           if not r.frames.empty], axis=1)
    per_frame = per_frame.T.groupby(level=0).first().T if per_frame.columns.duplicated().any() else per_frame
    per_frame = per_frame.sort_index()
    thumbs = {i: (jpeg(kept_src[i]), jpeg(kept_out[i])) for i in sorted(kept_out)}
    for _, i, sj, oj in worst.values():
        thumbs.setdefault(i, (sj, oj))
    return VariantQA(variant=facts.variant, facts=facts, summary=summary, frames=per_frame, fps=Fraction(fps),
                     frame_count=source_count, thumbs=thumbs, keyframes=sorted(guides), notes=notes)


# per-frame column -> True when larger is worse; the worst frame of each is kept as a thumbnail for the report
_WATCH = {"flicker": True, "luma_jump": True, "flow_error_px": True, "step_ratio": None, "colour_shift": True,
          "edge_similarity": False}


def _keep_worst(worst: dict, tables: dict, batch: list) -> None:
    """Remember the worst frame so far of each watched per-frame metric, as JPEGs (bounded memory)."""
    by_index = {i: (s, o) for i, s, o in batch}
    for name in ("temporal", "motion", "structure", "exposure"):
        if not tables[name]:
            continue
        t = tables[name][-1]
        for col, larger in _WATCH.items():
            if col not in t or t.empty:
                continue
            vals = t[col].astype(float)
            if larger is None:  # a ratio: worst is farthest from 1 (in log terms)
                vals = np.abs(np.log(np.clip(vals, 1e-3, None)))
                larger = True
            i = int(vals.idxmax() if larger else vals.idxmin())
            v = float(vals[i]) if larger else -float(vals[i])
            if i in by_index and (col not in worst or v > worst[col][0]):
                s, o = by_index[i]
                worst[col] = (v, i, jpeg(s), jpeg(o))


def _image(path: Path, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if path is None or not Path(path).is_file():
        raise QaError(f"{path}: {what} does not exist; fix the path in the facts file")
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (UnidentifiedImageError, OSError) as ex:
        raise QaError(f"{path}: {what} is not an image Pillow can read ({ex})") from ex


def source_label_track(facts: Facts, source_path: Path, fps: Fraction, frame_count: int) -> dict[int, np.ndarray] | None:
    """The source's label quad per frame: from the facts (``track`` or a demo ``truth`` file), else tracked
    with ``ray32.label_track.track_label`` from ``corners`` at ``frame``.

    Raises:
        QaError: the facts give neither a track nor corners, or the track has the wrong length.
    """
    lab = facts.label
    if lab is None:
        return None
    if lab.track is not None:
        arr = np.asarray(lab.track, float)
    elif lab.truth is not None:
        from ray32.demo_shot import load_truth

        if not lab.truth.is_file():
            raise QaError(f"{lab.truth}: label truth file does not exist; fix label.truth in the facts file")
        arr = load_truth(lab.truth).label_corners
    elif lab.corners is not None:
        try:
            from ray32.label_track import track_label
        except ImportError as ex:
            raise QaError("label.corners needs ray32.label_track, which this installation lacks; give the "
                          "per-frame quads as label.track instead") from ex
        from ray32.shot import open_shot
        from ray32.timecode import parse_time

        ref = parse_time(lab.frame, fps) if isinstance(lab.frame, str) else int(lab.frame)
        track = track_label(open_shot(source_path, detect_cuts=False), ref, np.asarray(lab.corners, float))
        arr = np.asarray(track.corners, float)
        if getattr(track, "valid", None) is not None:
            arr[~np.asarray(track.valid, bool)] = np.nan
    else:
        raise QaError("facts: label needs 'corners' (the label quad in the source at 'frame'), 'track' or 'truth' "
                      "so that QA knows where the label is")
    if arr.ndim != 3 or arr.shape[1:] != (4, 2):
        raise QaError(f"facts: the label track must be (frames, 4, 2), got shape {arr.shape}")
    if len(arr) != frame_count:
        raise QaError(f"facts: the label track has {len(arr)} frames, the source {frame_count}; give one quad per "
                      "source frame")
    return {i: arr[i] for i in range(len(arr))}


def measure_clips(source_path: str | os.PathLike, output_path: str | os.PathLike, facts: Facts, *,
                  samples: int = SAMPLES, analysis_side: int = ANALYSIS_SIDE, label_track=None,
                  cache: dict | None = None, progress: Callable[[int, int], None] | None = None) -> VariantQA:
    """Probe and decode a source and an output clip and run every check (``measure_frames``).

    Args:
        source_path, output_path: the clips.
        facts: the variant's facts (``qa.facts.load_facts`` / ``facts_from_request``).
        samples, analysis_side: see ``measure_frames``.
        label_track: the source's label track when the caller has it (``Prepared.label_track``: a
            ``ray32.label_track.LabelTrack``, or frame -> (4, 2) quads); otherwise it comes from the facts.
        cache: shared between variants of one source (see ``measure_frames``).
        progress: ``progress(done, total)`` in frames.

    Returns:
        ``VariantQA`` (with ``max_cll_nits``/``max_fall_nits`` in the summary for HDR output).

    Raises:
        ShotError: a clip cannot be read. QaError: the facts name images that cannot be read.
    """
    from ray32.shot import probe, read_chunks
    from ray32.timecode import parse_time

    src_info, out_info = probe(source_path), probe(output_path)
    artwork = _image(facts.label.artwork, "label artwork") if facts.label and facts.label.artwork else None
    reference = None
    if facts.identity.reference is not None:
        found = face_embedding(_image(facts.identity.reference, "identity reference image"))
        if found is None:
            raise QaError(f"{facts.identity.reference}: no face found in the identity reference image")
        reference = found[0]
    guides = {}
    for k in facts.keyframes:
        if k.guide is not None:
            guides[parse_time(k.time, src_info.fps)] = _image(k.guide, "keyframe guide")
    if label_track is not None and facts.label is not None:
        if hasattr(label_track, "corners"):
            corners = np.asarray(label_track.corners, float).copy()
            corners[~np.asarray(label_track.valid, bool)] = np.nan  # weak fits are not guessed
            track = {i: corners[i] for i in range(len(corners))}
        else:
            track = dict(label_track)
    else:
        track = source_label_track(facts, Path(source_path), src_info.fps, src_info.frame_count)
    qa = measure_frames(read_chunks(src_info), read_chunks(out_info), facts, fps=src_info.fps,
                        source_count=src_info.frame_count, output_count=out_info.frame_count,
                        output_fps=out_info.fps, label_track=track, artwork=artwork, identity_reference=reference,
                        guides=guides, samples=samples, analysis_side=analysis_side, cache=cache,
                        progress=progress)
    if out_info.dynamic_range not in ("SDR", "sdr"):
        from qa.checks.geometry import fit_size as _fit
        from ray32.shot import working_geometry

        w, h = _fit(out_info.width, out_info.height, 256)
        geo = working_geometry(out_info.width, out_info.height, max_width=w, max_height=h)
        cll = fall = 0.0
        for chunk in read_chunks(out_info, geometry=geo, output="linear"):
            c, f = hdr_light_levels(chunk.frames)
            cll, fall = max(cll, c), max(fall, f)
        qa.summary["max_cll_nits"], qa.summary["max_fall_nits"] = cll, fall
    return qa


def metrics_table(results: Iterable[VariantQA]) -> pd.DataFrame:
    """One row per variant: ``variant``, ``mode``, ``grade`` and every summary metric."""
    rows = [{"variant": r.variant, "mode": r.facts.mode, "grade": r.facts.grade, **r.summary} for r in results]
    return pd.DataFrame(rows)
