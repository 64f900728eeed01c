"""Delivery targets as data: what each platform or hand-off asks of a delivered file.

One table, ``TARGETS``. Each ``DeliveryTarget`` names the spec it follows and where that spec comes from (the
comment above each entry): aspect and size (reached through the reframe step), frame-rate policy, codec, bitrate
limits, duration limits, audio format, loudness target and true-peak ceiling, and the platform's interface zones
(the parts of the frame its app draws over). Platform specs change; the numbers here are the published ones at the
time of writing and are the one place to update them.

Zones are rectangles in fractions of the delivered frame, ``(x0, y0, x1, y1)``; the label and faces must stay
clear of them. ``master`` keeps the source's size and the campaign's formats.

Example:
    >>> get_target("meta-reels").size
    (1080, 1920)
    >>> [z.name for z in get_target("meta-reels").zones]
    ['top bar', 'caption and call to action', 'left edge', 'right edge']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from ray32.errors import Ray32Error


class TargetError(Ray32Error):
    """An unknown delivery target, or a source a target cannot take."""


@dataclass(frozen=True)
class Zone:
    """A part of the delivered frame covered by the platform's interface (fractions of width and height)."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float

    def pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        return self.x0 * width, self.y0 * height, self.x1 * width, self.y1 * height


@dataclass(frozen=True)
class Loudness:
    """Integrated loudness target (LUFS = LKFS), its tolerance, and the true-peak ceiling (dBTP)."""

    integrated: float
    tolerance: float
    true_peak: float
    standard: str


@dataclass(frozen=True)
class DeliveryTarget:
    """One delivery target (see the module docstring).

    Attributes:
        name: the key used in campaign.yaml ``deliver:`` and ``--deliver``.
        title: what it is, in words. spec: the spec it follows. source: where that spec is published.
        aspect: width/height of the delivered frame; None keeps the source's.
        size: (width, height) in pixels; None keeps the (reframed) source's size.
        frame_rates: frame rates the target accepts; empty accepts the source's. Always constant frame rate.
        codec: the video codec ("h264"); None: the campaign's formats (master).
        bitrate_kbps: target video bitrate (None: quality-based, ``crf``).
        min_kbps, max_kbps: limits on the measured overall bitrate (None: no limit).
        crf: x264 quality when no bitrate is set.
        min_seconds, max_seconds: duration limits; ``lengths``: the only durations accepted (spot lengths),
            within ``length_tolerance`` seconds.
        audio_rate, audio_channels: the delivered audio; ``audio_required``: a silent track is added when the
            source has none.
        loudness: the loudness target, or None to leave the audio's level as it is.
        zones: interface zones the label and faces must stay clear of.
        max_black_s, max_freeze_s: black or frozen stretches longer than this, beyond the source's own, fail.
    """

    name: str
    title: str
    spec: str
    source: str
    aspect: Fraction | None = None
    size: tuple[int, int] | None = None
    frame_rates: tuple[Fraction, ...] = ()
    codec: str | None = "h264"
    bitrate_kbps: int | None = None
    min_kbps: int | None = None
    max_kbps: int | None = None
    crf: int = 20
    min_seconds: float | None = None
    max_seconds: float | None = None
    lengths: tuple[float, ...] = ()
    length_tolerance: float = 0.05
    audio_rate: int = 48000
    audio_channels: int = 2
    audio_required: bool = True
    loudness: Loudness | None = None
    zones: tuple[Zone, ...] = field(default_factory=tuple)
    max_black_s: float = 0.5
    max_freeze_s: float = 1.0

    def safe_box(self) -> tuple[float, float, float, float]:
        """The part of the frame no zone covers, ``(x0, y0, x1, y1)`` in fractions: every zone here is a band
        along one edge (full width or full height), so what is left is a rectangle."""
        x0, y0, x1, y1 = 0.0, 0.0, 1.0, 1.0
        for z in self.zones:
            if z.y0 <= 0 and z.y1 >= 1:      # a vertical band: left or right
                if z.x0 <= 0:
                    x0 = max(x0, z.x1)
                else:
                    x1 = min(x1, z.x0)
            elif z.y0 <= 0:
                y0 = max(y0, z.y1)
            else:
                y1 = min(y1, z.y0)
        return x0, y0, x1, y1

    def describe(self) -> dict:
        """The target's spec as plain data (for manifests and the report)."""
        return {
            "name": self.name, "title": self.title, "spec": self.spec, "source": self.source,
            "aspect": None if self.aspect is None else f"{self.aspect.numerator}:{self.aspect.denominator}",
            "size": list(self.size) if self.size else None,
            "frame_rates": [str(r) for r in self.frame_rates], "constant_frame_rate": True,
            "codec": self.codec, "bitrate_kbps": self.bitrate_kbps, "min_kbps": self.min_kbps,
            "max_kbps": self.max_kbps, "min_seconds": self.min_seconds, "max_seconds": self.max_seconds,
            "lengths": list(self.lengths), "audio": {"rate": self.audio_rate, "channels": self.audio_channels},
            "loudness": None if self.loudness is None else {
                "integrated_lufs": self.loudness.integrated, "tolerance_lu": self.loudness.tolerance,
                "true_peak_dbtp": self.loudness.true_peak, "standard": self.loudness.standard},
            "zones": [{"name": z.name, "box": [z.x0, z.y0, z.x1, z.y1]} for z in self.zones],
        }


EBU_R128 = Loudness(-23.0, 1.0, -1.0, "EBU R128 (ITU-R BS.1770-4)")
ATSC_A85 = Loudness(-24.0, 2.0, -2.0, "ATSC A/85 (CALM Act), ITU-R BS.1770-4")
STREAMING = Loudness(-14.0, 1.0, -1.0, "streaming/social normalisation level, ITU-R BS.1770-4")
BROADCAST_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))
VERTICAL = Fraction(9, 16)


def _sides(left: float, right: float) -> tuple[Zone, Zone]:
    return Zone("left edge", 0.0, 0.0, left, 1.0), Zone("right edge", 1.0 - right, 0.0, 1.0, 1.0)


TARGETS: dict[str, DeliveryTarget] = {t.name: t for t in (
    # The master: the source's size and framing in the campaign's formats; loudness to EBU R128 for the edit.
    # Spec: EBU R128 (2020) -23 LUFS +-1 LU, -1 dBTP. Source: https://tech.ebu.ch/publications/r128
    DeliveryTarget(
        name="master", title="master (source size, campaign formats)",
        spec="source size and frame rate; the campaign's formats; EBU R128 loudness",
        source="EBU R128 (tech.ebu.ch/publications/r128)", codec=None, loudness=EBU_R128,
        audio_required=False, max_black_s=10.0, max_freeze_s=10.0),
    # Meta Reels (Facebook and Instagram) ads: 9:16 1080x1920, H.264, AAC, up to 90 s; keep text and logos clear
    # of the top 14 %, the bottom 35 % (caption, call-to-action) and 6 % on each side.
    # Source: Meta Business Help Center, "Reels ads specs" and "safe zones for Reels" (2024-2026).
    DeliveryTarget(
        name="meta-reels", title="Meta Reels (Facebook, Instagram)", aspect=VERTICAL, size=(1080, 1920),
        spec="9:16 1080x1920 H.264 + AAC 48 kHz, up to 90 s; clear of top 14 %, bottom 35 %, sides 6 %",
        source="Meta Business Help Center: Reels ads specifications and safe zones",
        bitrate_kbps=8000, min_kbps=500, max_kbps=20000, min_seconds=1.0, max_seconds=90.0, loudness=STREAMING,
        zones=(Zone("top bar", 0.0, 0.0, 1.0, 0.14), Zone("caption and call to action", 0.0, 0.65, 1.0, 1.0),
               *_sides(0.06, 0.06))),
    # Meta feed 4:5: 1080x1350, H.264, AAC; feed UI sits outside the video, a thin margin kept for cropping
    # previews (about 64 px on each side at 1080x1350). Source: Meta Business Help Center, "Feed video ads specs".
    DeliveryTarget(
        name="meta-feed-4x5", title="Meta feed 4:5", aspect=Fraction(4, 5), size=(1080, 1350),
        spec="4:5 1080x1350 H.264 + AAC 48 kHz, up to 240 min (ads: keep it short); 64 px margin",
        source="Meta Business Help Center: Facebook/Instagram feed video ads specifications",
        bitrate_kbps=6000, min_kbps=500, max_kbps=20000, min_seconds=1.0, max_seconds=240.0, loudness=STREAMING,
        zones=(Zone("top margin", 0.0, 0.0, 1.0, 0.047), Zone("bottom margin", 0.0, 0.953, 1.0, 1.0),
               *_sides(0.059, 0.059))),
    # TikTok in-feed ads: 9:16 (1080x1920 recommended), 5-60 s, bitrate >= 516 kbps, H.264, AAC; keep clear of
    # the top (about 130 px), the bottom caption area (about 484 px), the right button rail (about 140 px) and a
    # left margin (about 60 px) at 1080x1920. Source: TikTok Ads Manager help, "In-feed ads video specs" and the
    # Creative Center safe-zone template (approximate pixel figures).
    DeliveryTarget(
        name="tiktok", title="TikTok in-feed", aspect=VERTICAL, size=(1080, 1920),
        spec="9:16 1080x1920 H.264 + AAC 48 kHz, 5-60 s, >= 516 kbps; clear of top 130, bottom 484, "
             "right 140, left 60 px",
        source="TikTok Ads Manager: In-Feed Ads video specifications; TikTok Creative Center safe zone",
        bitrate_kbps=6000, min_kbps=516, max_kbps=20000, min_seconds=5.0, max_seconds=60.0, loudness=STREAMING,
        zones=(Zone("top bar", 0.0, 0.0, 1.0, 130 / 1920), Zone("caption", 0.0, 1 - 484 / 1920, 1.0, 1.0),
               *_sides(60 / 1080, 140 / 1080))),
    # YouTube Shorts ads: vertical 9:16, under 60 s, H.264, AAC; keep clear of the bottom (title, channel,
    # about 25 %), the right action rail (about 15 %) and the top (about 10 %).
    # Source: Google Ads Help, "About YouTube Shorts ads" / YouTube Help "Shorts safe zone" (approximate).
    DeliveryTarget(
        name="youtube-shorts", title="YouTube Shorts", aspect=VERTICAL, size=(1080, 1920),
        spec="9:16 1080x1920 H.264 + AAC 48 kHz, under 60 s; clear of top 10 %, bottom 25 %, right 15 %",
        source="Google Ads Help: YouTube Shorts ads; YouTube Shorts safe zone guidance",
        bitrate_kbps=8000, min_kbps=500, max_kbps=20000, min_seconds=1.0, max_seconds=60.0, loudness=STREAMING,
        zones=(Zone("top bar", 0.0, 0.0, 1.0, 0.10), Zone("title and channel", 0.0, 0.75, 1.0, 1.0),
               Zone("action rail", 0.85, 0.0, 1.0, 1.0))),
    # CTV / broadcast-style spot: 16:9 1920x1080, 15 or 30 s, H.264 High at about 15 Mbps, constant frame rate
    # 23.976-30, 48 kHz stereo, -24 LKFS +-2 / -2 dBTP (ATSC A/85, CALM Act), graphics inside title safe (90 %,
    # SMPTE ST 2046-1). Source: IAB Digital Video/CTV ad format guidelines; ATSC A/85; SMPTE ST 2046-1.
    DeliveryTarget(
        name="ctv-16x9", title="CTV 16:9 spot", aspect=Fraction(16, 9), size=(1920, 1080),
        frame_rates=BROADCAST_RATES,
        spec="16:9 1920x1080 H.264 ~15 Mbps CFR 23.976-30 fps, 15 or 30 s, AAC 48 kHz stereo, -24 LKFS / -2 dBTP, "
             "title safe 90 %",
        source="IAB CTV ad format guidelines; ATSC A/85 (CALM Act); SMPTE ST 2046-1 safe areas",
        bitrate_kbps=15000, min_kbps=10000, max_kbps=20000, lengths=(15.0, 30.0), loudness=ATSC_A85,
        zones=(Zone("title safe top", 0.0, 0.0, 1.0, 0.05), Zone("title safe bottom", 0.0, 0.95, 1.0, 1.0),
               *_sides(0.05, 0.05))),
)}
"""Every delivery target by name."""


def target_names() -> list[str]:
    """The known targets, in table order."""
    return list(TARGETS)


def get_target(name: str) -> DeliveryTarget:
    """The target called ``name``.

    Raises:
        TargetError: unknown name; the message lists the known ones.
    """
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown delivery target {name!r}; known: {', '.join(TARGETS)}") from None
