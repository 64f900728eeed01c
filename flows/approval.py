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
                    override: str | None = None) -> list[str]:
    """Approve or reject variants of a run.

    Args:
        run_dir: the run folder (``flows.manifest.resolve_run``).
        names: slugs or variant ids, or ``["all"]`` (approving ``all`` skips variants that failed QA unless
            ``override`` is given, and those not rendered).
        state: ``"approved"`` or ``"rejected"``.
        note: why (required).
        user: who (default ``reviewer()``).
        override: the reason for approving a variant that failed QA.

    Returns:
        The slugs whose decision was recorded.

    Raises:
        ApprovalError: no note; unknown variant; approving one that was not rendered, or that failed QA (or was
            not judged) without ``override``.
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


def approvable(variant: dict) -> bool:
    """True when packaging may take the variant: approved, rendered, and QA passed or overridden."""
    a = variant.get("approval") or {}
    if a.get("state") != "approved" or variant.get("state") != "rendered":
        return False
    return (variant.get("qa") or {}).get("verdict") == "pass" or bool(a.get("override"))
