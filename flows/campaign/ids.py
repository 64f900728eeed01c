"""Stable variant ids: a hash of everything that changes a variant's pixels."""

from __future__ import annotations

import hashlib
import json
import math
from json.encoder import encode_basestring as _encode_str

ID_VERSION = 1
ID_LENGTH = 16


PIXEL_NEUTRAL = ("outputs",)
"""Request fields that do not change pixels: adding a delivery format keeps the ids (and the renders)."""


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value) -> str:
    """JSON with sorted keys, no spaces and UTF-8 text: the same value always gives the same bytes."""
    return _ENCODER.encode(value)


def engine_version(name: str, version: str | None = None) -> str:
    """The engine version that goes into ids: the one given, else the engine registry's (``ray32.engines.ENGINES``,
    read without importing any engine), else "0"."""
    from ray32.engines import ENGINES

    if version:
        return str(version)
    info = ENGINES.get(name)
    return info.version if info is not None else "0"


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
    return _digest(source_hash, trim, engine, engine_version, assets, request_json(request))


def request_json(request: dict, memo: dict | None = None) -> str:
    """``canonical_json`` of the request without its pixel-neutral fields; ``memo`` (id -> (object, json))
    lets thousands of variants that share the same sub-objects (grade, label swap, locks) serialise them once."""
    if memo is None:
        return canonical_json({k: v for k, v in request.items() if k not in PIXEL_NEUTRAL})
    parts = []
    for k in sorted(request):
        if k in PIXEL_NEUTRAL:
            continue
        v = request[k]
        if isinstance(v, (dict, list)):
            hit = memo.get(id(v))
            if hit is None or hit[0] is not v:
                hit = memo[id(v)] = (v, _ENCODER.encode(v))
            text = hit[1]
        else:
            text = _scalar(v)
        parts.append(f"{_encode_str(k)}:{text}")
    return "{" + ",".join(parts) + "}"


def _scalar(v) -> str:
    """JSON of a scalar exactly as ``canonical_json`` writes it, without building an encoder per call."""
    t = type(v)
    if t is str:
        return _encode_str(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return int.__repr__(v)
    if t is float and math.isfinite(v):
        return float.__repr__(v)
    return _ENCODER.encode(v)


def _digest(source_hash: str, trim: dict | None, engine: str, engine_version: str, assets: dict[str, str],
            request_text: str) -> str:
    payload = {"v": ID_VERSION, "source": source_hash, "trim": trim, "engine": engine,
               "engine_version": engine_version, "assets": assets, "request": None}
    text = canonical_json(payload).replace('"request":null', f'"request":{request_text}', 1)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def fast_variant_id(*, source_hash: str, trim: dict | None, engine: str, engine_version: str, request: dict,
                    assets: dict[str, str], memo: dict) -> str:
    """``variant_id`` with a memo of already serialised sub-objects (same result, faster for many variants)."""
    return _digest(source_hash, trim, engine, engine_version, assets, request_json(request, memo))
