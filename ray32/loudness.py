"""Loudness: measure (ITU-R BS.1770-4 / EBU R128) and normalise a file's audio to a target, in two passes.

Both passes use ffmpeg's own filters: ``ebur128`` (integrated loudness, loudness range, true peak with
``peak=true``) to measure, ``loudnorm`` to normalise: pass one measures the file, pass two applies the gain
with the measured values (``linear=true``: one gain for the whole clip, so the mix is not compressed; ffmpeg
falls back to its dynamic mode only when the gain would push the true peak over the ceiling). The video stream
is copied, never re-encoded.

Silence stays silence: a track whose integrated loudness is below the gate (-70 LUFS, BS.1770's absolute gate)
is left as it is, and a target that needs audio gets a silent track when the file has none.

Example:
    >>> from ray32.targets import get_target
    >>> figures = normalise_file("in.mp4", "out.mp4", get_target("meta-reels").loudness)   # doctest: +SKIP
    >>> figures["before"]["integrated"], figures["after"]["integrated"]                    # doctest: +SKIP
    (-20.0, -14.0)
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from ray32.errors import Ray32Error

SILENCE_LUFS = -70.0
"""Below this integrated loudness a track counts as silent (BS.1770's absolute gate)."""


class LoudnessError(Ray32Error):
    """ffmpeg is missing, or could not read or write the audio."""


@dataclass(frozen=True)
class Figures:
    """What ``measure`` found: integrated loudness (LUFS), loudness range (LU), true peak (dBTP)."""

    integrated: float
    lra: float
    true_peak: float

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.integrated) or self.integrated <= SILENCE_LUFS

    def as_dict(self) -> dict:
        return {k: (None if not math.isfinite(v) else round(v, 2)) for k, v in asdict(self).items()}


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise LoudnessError("ffmpeg is not installed; install it (Debian: apt-get install ffmpeg, or `make sysdeps`)")
    return path


def _number(text: str) -> float:
    text = text.strip()
    return -math.inf if text in ("-inf", "nan", "") else float(text)


def has_audio(path: str | os.PathLike) -> bool:
    """Whether the file has an audio stream (ffprobe)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return bool(out.stdout.strip())


def measure(path: str | os.PathLike, *, audio: bool | None = None) -> Figures | None:
    """Integrated loudness, loudness range and true peak of the file's first audio stream (ffmpeg ``ebur128``).

    Args:
        audio: whether the file has audio, when the caller knows (None: ask ffprobe).

    Returns:
        ``Figures``, or None when the file has no audio.

    Raises:
        LoudnessError: ffmpeg missing or the audio unreadable.
    """
    if not (has_audio(path) if audio is None else audio):
        return None
    cmd = [_ffmpeg(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
           "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = out.stderr
    summary = text[text.rfind("Summary:"):] if "Summary:" in text else ""
    i = re.search(r"I:\s+(\S+) LUFS", summary)
    lra = re.search(r"LRA:\s+(\S+) LU", summary)
    peak = re.search(r"Peak:\s+(\S+) dBFS", summary)
    if out.returncode != 0 or not (i and lra and peak):
        raise LoudnessError(f"could not measure the loudness of {path}: {text.strip().splitlines()[-1:]}")
    return Figures(_number(i.group(1)), _number(lra.group(1)), _number(peak.group(1)))


def _loudnorm_pass1(path: Path, target) -> dict:
    af = f"loudnorm=I={target.integrated}:TP={target.true_peak}:LRA=20:print_format=json"
    out = subprocess.run([_ffmpeg(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0", "-af", af,
                          "-f", "null", "-"], capture_output=True, text=True)
    m = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", out.stderr)
    if out.returncode != 0 or m is None:
        raise LoudnessError(f"loudness pass one failed on {path}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(m.group(0))


def audio_codec_for(path: str | os.PathLike) -> str:
    """The audio codec a delivered file of this container carries: AAC in MP4, 24-bit PCM in MOV."""
    return "pcm_s24le" if Path(path).suffix.lower() == ".mov" else "aac"


def normalise_file(src: str | os.PathLike, dst: str | os.PathLike, target, *, rate: int = 48000,
                   channels: int = 2, add_silence: bool = False, measure_after: bool = True) -> dict:
    """Copy ``src`` to ``dst`` with its audio normalised to ``target`` (two passes; video copied).

    Args:
        src, dst: input and output files (same container kind; ``dst`` is written under a temporary name).
        target: a ``ray32.targets.Loudness`` (integrated LUFS, true-peak ceiling), or None to keep the level.
        rate, channels: the delivered audio's sample rate and channels.
        add_silence: when ``src`` has no audio, add a silent track of ``rate`` / ``channels``.
        measure_after: measure ``dst`` again (False when a check measures it anyway: ``after`` is then None).

    Returns:
        ``{"before": figures or None, "after": figures or None, "gain_db": float or None, "note": str}``
        (figures as ``Figures.as_dict``).

    Raises:
        LoudnessError: ffmpeg failed.
    """
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.loudness-partial{dst.suffix}")
    codec = audio_codec_for(dst)
    acodec = ["-c:a", codec] + (["-b:a", "192k"] if codec == "aac" else [])
    note, gain, pass1 = "", None, None
    if not has_audio(src):
        before = None
    elif target is None:
        before = measure(src)
    else:  # pass one measures what pass two needs; its figures are the "before" ones
        pass1 = _loudnorm_pass1(src, target)
        before = Figures(_number(pass1["input_i"]), _number(pass1["input_lra"]), _number(pass1["input_tp"]))
    base = [_ffmpeg(), "-hide_banner", "-nostats", "-y", "-i", str(src)]
    if before is None:
        if add_silence:
            cmd = base + ["-f", "lavfi", "-i", f"anullsrc=r={rate}:cl={'stereo' if channels == 2 else 'mono'}",
                          "-map", "0:v", "-map", "1:a", "-c:v", "copy", *acodec, "-shortest"]
            note = "the source has no audio: a silent track was added"
        else:
            cmd = base + ["-map", "0", "-c", "copy"]
            note = "no audio"
    elif before.silent or target is None:
        cmd = base + ["-map", "0:v", "-map", "0:a:0", "-c:v", "copy", *acodec, "-ar", str(rate),
                      "-ac", str(channels)]
        note = "silent audio kept silent" if before.silent else "level kept (no loudness target)"
    else:
        m = pass1
        af = (f"loudnorm=I={target.integrated}:TP={target.true_peak}:LRA=20:measured_I={m['input_i']}:"
              f"measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:"
              f"offset={m['target_offset']}:linear=true,aresample={rate}")
        cmd = base + ["-map", "0:v", "-map", "0:a:0", "-c:v", "copy", "-af", af, *acodec, "-ar", str(rate),
                      "-ac", str(channels)]
        gain = round(target.integrated - before.integrated, 2)
        note = "normalised in two passes (loudnorm, linear)"
    cmd += ["-movflags", "+faststart", str(tmp)] if dst.suffix.lower() == ".mp4" else [str(tmp)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise LoudnessError(f"normalising the audio of {src} failed: {out.stderr.strip().splitlines()[-1:]}")
    os.replace(tmp, dst)
    after = measure(dst) if measure_after else None
    return {"before": before.as_dict() if before else None, "after": after.as_dict() if after else None,
            "gain_db": gain, "note": note}
