"""Approval: reviewers approve or reject variants of a run, with who, when and why, recorded in its manifest.

A variant that failed QA is approved only with an explicit override and its reason. Packaging takes approved
variants only. When the flow runs against a Prefect server it can also pause for a reviewer's input in the
Prefect UI (``ReviewInput``, see ``flows.run``).
"""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path

from flows import manifest as mf

log = logging.getLogger(__name__)


class ApprovalError(mf.RunError):
    """An approval that cannot be recorded: unknown variant, not rendered, failed QA without an override."""


class StaleRenderError(ApprovalError):
    """A decision or comment made on a render that has since been replaced (the reviewer saw an older one)."""


def render_stamp(variant: dict) -> str:
    """What identifies the render a reviewer looked at: changes whenever the variant is rendered again."""
    import hashlib
    import json

    key = [variant.get("variant_id"), variant.get("cache_key"), variant.get("state"), variant.get("outputs"),
           variant.get("timings")]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_stamp(v: dict, slug: str, expect: dict[str, str] | None) -> None:
    if expect and slug in expect and expect[slug] != render_stamp(v):
        raise StaleRenderError(f"{slug} was rendered again since you loaded it; reload the page and look at the "
                               "new render before deciding")


def reviewer() -> str:
    """The default reviewer name: ``$RAY32_USER``, else the login name."""
    try:
        return os.environ.get("RAY32_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _match(manifest: dict, names: list[str]) -> list[str]:
    """Slugs for the names given (slug, variant id or a prefix of it, or ``all``)."""
    variants = manifest["variants"]
    if names == ["all"]:
        return list(variants)
    by_id = {v["variant_id"]: s for s, v in variants.items()}
    out, unknown = [], []
    for n in names:
        if n in variants:
            out.append(n)
        elif n in by_id:
            out.append(by_id[n])
        else:
            hits = [s for vid, s in by_id.items() if len(n) >= 6 and vid.startswith(n)]
            out.extend(hits) if len(hits) == 1 else unknown.append(n)
    if unknown:
        raise ApprovalError(f"run '{manifest['run']}' has no variant {', '.join(map(repr, unknown))}; its variants: "
                            f"{', '.join(sorted(variants))}")
    return list(dict.fromkeys(out))


def record_decision(run_dir: str | os.PathLike, names: list[str], state: str, *, note: str, user: str | None = None,
                    override: str | None = None, expect: dict[str, str] | None = None) -> list[str]:
    """Approve or reject variants of a run.

    Args:
        run_dir: the run folder (``flows.manifest.resolve_run``).
        names: slugs or variant ids, or ``["all"]`` (approving ``all`` skips variants that failed QA unless
            ``override`` is given, and those not rendered).
        state: ``"approved"`` or ``"rejected"``.
        note: why (required).
        user: who (default ``reviewer()``).
        override: the reason for approving a variant that failed QA.
        expect: slug -> ``render_stamp`` of the render the reviewer saw; a variant rendered again since is refused.

    Returns:
        The slugs whose decision was recorded.

    Raises:
        ApprovalError: no note; unknown variant; approving one that was not rendered, or that failed QA (or was
            not judged) without ``override``. StaleRenderError: ``expect`` names an older render.
    """
    if state not in ("approved", "rejected"):
        raise ValueError(f"state must be 'approved' or 'rejected', not {state!r}")
    if not (note or "").strip():
        raise ApprovalError("a decision needs a reason: give --note 'why'")
    user = user or reviewer()
    chosen: list[str] = []

    def change(m):
        slugs = _match(m, names)
        problems = []
        for s in slugs:
            v = m["variants"][s]
            _check_stamp(v, s, expect)
            if state == "approved":
                if v.get("state") != "rendered":
                    if names != ["all"]:
                        problems.append(f"{s} was not rendered ({v.get('state')}"
                                        + (f": {v['error']}" if v.get("error") else "") + ")")
                    continue
                verdict = (v.get("qa") or {}).get("verdict")
                if verdict != "pass" and not override:
                    if names != ["all"]:
                        why = "; ".join((v.get("qa") or {}).get("reasons") or []) or "not judged"
                        problems.append(f"{s} failed QA ({why}); approve it with --override 'reason' to "
                                        "deliver it anyway")
                    continue
            decision = {"state": state, "by": user, "at": mf.now(), "note": note.strip()}
            if state == "approved" and override and (v.get("qa") or {}).get("verdict") != "pass":
                decision["override"] = override.strip()
            v.setdefault("history", []).append(decision)
            v["approval"] = decision
            chosen.append(s)
        if problems:
            chosen.clear()
            raise ApprovalError("nothing recorded: " + "; ".join(problems))

    mf.update_manifest(Path(run_dir), change)
    log.info("%s %d variant(s) of %s", state, len(chosen), run_dir)
    return chosen


def add_comment(run_dir: str | os.PathLike, name: str, *, text: str, frame: int | None = None,
                time: str | None = None, user: str | None = None, expect: str | None = None) -> dict:
    """Pin a reviewer's comment to a frame of a variant, in the run's manifest (``variant["comments"]``).

    Args:
        run_dir: the run folder. name: the variant's slug or id.
        text: the comment (required). frame: the 0-based frame of the variant's clip; or ``time``: a time as
            ``ray32.timecode.parse_time`` reads it (seconds, ``HH:MM:SS:FF``, ``60f``).
        user: who (default ``reviewer()``). expect: the ``render_stamp`` of the render the reviewer saw.

    Returns:
        The comment record: ``{"id", "frame", "timecode", "seconds", "text", "by", "at"}``.

    Raises:
        ApprovalError: empty text; unknown variant; a variant that was not rendered; no time, or a time outside
            the clip. StaleRenderError: the variant was rendered again since ``expect`` was read.
    """
    from fractions import Fraction

    from ray32.timecode import TimeFormatError, format_seconds, format_timecode, parse_time

    if not (text or "").strip():
        raise ApprovalError("a comment needs text: write what you see at this moment")
    if name == "all":
        raise ApprovalError("a comment is on one variant: give its slug, not 'all'")
    if frame is None and (time is None or not str(time).strip()):
        raise ApprovalError("a comment needs a time: give the frame or the time in the clip")
    user = user or reviewer()
    out: dict = {}

    def change(m):
        slug = _match(m, [name])[0]
        v = m["variants"][slug]
        _check_stamp(v, slug, {slug: expect} if expect else None)
        if v.get("state") != "rendered" or not v.get("frames"):
            raise ApprovalError(f"{slug} was not rendered ({v.get('state')}); there is nothing to comment on")
        fps, count = Fraction(str(v.get("fps") or 24)), int(v["frames"])
        try:
            f = int(frame) if frame is not None else parse_time(str(time), fps)
        except TimeFormatError as ex:
            raise ApprovalError(str(ex)) from None
        if not 0 <= f < count:
            raise ApprovalError(f"frame {f} is outside the clip of {slug}: it has frames 0-{count - 1} "
                                f"({format_timecode(0, fps)}-{format_timecode(count - 1, fps)}); pick a time "
                                "inside it")
        comments = v.setdefault("comments", [])
        out.update(id=max((c.get("id", 0) for c in comments), default=0) + 1, frame=f,
                   timecode=format_timecode(f, fps), seconds=format_seconds(Fraction(f) / fps), text=text.strip(),
                   by=user, at=mf.now())
        comments.append(dict(out))

    mf.update_manifest(Path(run_dir), change)
    log.info("comment on %s at %s by %s", name, out.get("timecode"), user)
    return out


def approvable(variant: dict) -> bool:
    """True when packaging may take the variant: approved, rendered, and QA passed or overridden."""
    a = variant.get("approval") or {}
    if a.get("state") != "approved" or variant.get("state") != "rendered":
        return False
    return (variant.get("qa") or {}).get("verdict") == "pass" or bool(a.get("override"))
