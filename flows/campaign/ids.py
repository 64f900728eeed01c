"""Stable variant ids: a hash of everything that changes a variant's pixels."""

from __future__ import annotations

import hashlib
import json

ID_VERSION = 1
ID_LENGTH = 16

ENGINE_VERSIONS = {"composite": "1", "wan-vace": "1", "ltx": "1"}
"""Engine versions used when campaign.yaml gives none. The engines' registry (``ray32.engines.get_engine(name)
.version``) is the truth; this table lets planning run without importing any engine (no torch on this path)."""

PIXEL_NEUTRAL = ("outputs",)
"""Request fields that do not change pixels: adding a delivery format keeps the ids (and the renders)."""


def canonical_json(value) -> str:
    """JSON with sorted keys, no spaces and UTF-8 text: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def engine_version(name: str, version: str | None = None) -> str:
    """The engine version that goes into ids: the one given, else the static table, else "0"."""
    if version:
        return str(version)
    return ENGINE_VERSIONS.get(name, "0")


def variant_id(*, source_hash: str, trim: dict | None, engine: str, engine_version: str, request: dict,
               assets: dict[str, str]) -> str:
    """The id of one variant.

    Args:
        source_hash: ``ray32.shot.content_hash`` of the source file.
        trim: the source trim (start/end as written), or None.
        engine: engine name.
        engine_version: engine version.
        request: the resolved request (RenderRequest field names); ``outputs`` is left out (no pixels).
        assets: referenced file (relative path) -> content hash, so that editing an image changes the ids.

    Returns:
        ``ID_LENGTH`` hex characters of a SHA-256.
    """
    payload = {"v": ID_VERSION, "source": source_hash, "trim": trim, "engine": engine,
               "engine_version": engine_version, "assets": assets,
               "request": {k: v for k, v in request.items() if k not in PIXEL_NEUTRAL}}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:ID_LENGTH]
