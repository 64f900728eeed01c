"""The run's record on disk: where things live, the manifest, the render cache and the campaign lock.

Layout under the runs folder (default ``./runs``)::

    runs/<campaign>/
        .run.lock                       held (flock) by the one run of this campaign in progress
        renders/<variant_id>/           finished renders, shared by every run of the campaign (the cache):
            <slug>.mp4 ...              the exported formats
            qa.pkl                      the QA measurements (for the report)
            record.json                 written last: what is there (its presence means "finished")
        <run>/manifest.json             the run: plan, per-variant state, QA verdicts, approvals, packaging
        <run>/qa_report.html            the run's QA report
        latest                          a text file naming the newest run

A render is made in a temporary folder and renamed into ``renders/<variant_id>`` when complete, so a run killed
at any moment leaves either a finished render or nothing (temporary folders are removed by the next run). The
manifest is the record of what exists: Prefect's temporary server can drop task records, this file does not.
Every write is atomic (temp name, then ``os.replace``); updates take a short lock on ``manifest.json.lock`` so
that ``ray32 campaign approve`` and a running flow never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ray32.errors import Ray32Error

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RECORD = "record.json"
LATEST = "latest"


class RunError(Ray32Error):
    """A run that cannot start or be found: the campaign is already running, an unknown run or variant."""


def now() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as JSON atomically (temp file in the same folder, fsync, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def campaign_dir(runs_dir: str | os.PathLike, campaign: str) -> Path:
    """``runs/<campaign>``."""
    return Path(runs_dir) / campaign


def render_dir(runs_dir: str | os.PathLike, campaign: str, variant_id: str) -> Path:
    """Where the finished render of a variant lives (the cache entry keyed by its variant id)."""
    return campaign_dir(runs_dir, campaign) / "renders" / variant_id


def cached_record(runs_dir: str | os.PathLike, campaign: str, variant_id: str) -> dict | None:
    """The record of a finished render of ``variant_id``, or None when there is none (or it is unreadable)."""
    folder = render_dir(runs_dir, campaign, variant_id)
    try:
        record = read_json(folder / RECORD)
    except (OSError, ValueError):
        return None
    if not all((folder / rel).exists() for rel in record.get("outputs", {}).values()):
        log.warning("render cache entry %s is incomplete; rendering again", folder)
        return None
    return record


def clean_partials(runs_dir: str | os.PathLike, campaign: str) -> int:
    """Remove temporary render folders left by a killed run. Returns how many were removed."""
    root = campaign_dir(runs_dir, campaign) / "renders"
    n = 0
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n


@contextlib.contextmanager
def campaign_lock(runs_dir: str | os.PathLike, campaign: str) -> Iterator[Path]:
    """Hold the campaign's run lock for the duration of the ``with`` block.

    The lock is an ``flock`` on ``runs/<campaign>/.run.lock``: the operating system releases it when the process
    ends, even by SIGKILL, so a killed run never blocks the next one.

    Raises:
        RunError: another run of the same campaign holds the lock (the message names its pid, start time and run).
    """
    folder = campaign_dir(runs_dir, campaign)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except ValueError:
            holder = {}
        os.close(fd)
        raise RunError(f"campaign '{campaign}' is already running (pid {holder.get('pid', '?')}, run "
                       f"'{holder.get('run', '?')}', started {holder.get('started', '?')}); wait for it to finish "
                       f"or stop it, then run again (lock: {path})") from None
    try:
        os.ftruncate(fd, 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def describe_lock(path: Path, run: str) -> None:
    """Write who holds the lock into it (read by a refused second run for its message)."""
    with open(path, "r+", encoding="utf-8") as fh:
        fh.truncate(0)
        fh.write(json.dumps({"pid": os.getpid(), "run": run, "started": now()}))
        fh.flush()


@contextlib.contextmanager
def _manifest_lock(run_dir: Path) -> Iterator[None]:
    fd = os.open(run_dir / f"{MANIFEST}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_manifest(run_dir: str | os.PathLike) -> dict:
    """The run's manifest.

    Raises:
        RunError: the folder holds no readable manifest.
    """
    path = Path(run_dir) / MANIFEST
    try:
        return read_json(path)
    except FileNotFoundError:
        raise RunError(f"{run_dir}: not a run folder (no {MANIFEST}); run 'ray32 campaign run CAMPAIGN' first") \
            from None
    except ValueError as ex:
        raise RunError(f"{path}: unreadable manifest ({ex})") from ex


def save_manifest(run_dir: str | os.PathLike, manifest: dict) -> Path:
    """Write the whole manifest atomically (under the manifest lock)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _manifest_lock(run_dir):
        manifest["updated"] = now()
        return write_json(run_dir / MANIFEST, manifest)


def update_manifest(run_dir: str | os.PathLike, change: Callable[[dict], None]) -> dict:
    """Read, change (``change(manifest)`` in place) and write the manifest under its lock. Returns it."""
    run_dir = Path(run_dir)
    with _manifest_lock(run_dir):
        manifest = load_manifest(run_dir)
        change(manifest)
        manifest["updated"] = now()
        write_json(run_dir / MANIFEST, manifest)
    return manifest


def new_run_id() -> str:
    """A run name from the current UTC time, e.g. ``20261121-093012``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def resolve_run(run: str | os.PathLike, runs_dir: str | os.PathLike = "runs") -> Path:
    """Find a run folder from what a user typed.

    Accepted: a path to a run folder (holds manifest.json); ``CAMPAIGN/RUN`` or ``CAMPAIGN/latest`` under
    ``runs_dir``; a bare ``RUN`` name (searched in every campaign under ``runs_dir``) or a campaign name (its
    latest run).

    Raises:
        RunError: nothing matches, or a bare name matches runs of several campaigns.
    """
    p = Path(run)
    if (p / MANIFEST).is_file():
        return p
    runs_dir = Path(runs_dir)
    candidates = []
    parts = Path(run).parts
    if len(parts) == 2:
        candidates.append(_latest(runs_dir / parts[0]) if parts[1] == LATEST else runs_dir / parts[0] / parts[1])
    elif len(parts) == 1 and runs_dir.is_dir():
        if (runs_dir / run / LATEST).is_file():
            candidates.append(_latest(runs_dir / run))
        for camp in sorted(runs_dir.iterdir()):
            if (camp / run / MANIFEST).is_file():
                candidates.append(camp / run)
    found = [c for c in candidates if c is not None and (c / MANIFEST).is_file()]
    if not found:
        raise RunError(f"no run '{run}' (looked for a run folder, CAMPAIGN/RUN and RUN under {runs_dir}); "
                       "'ray32 campaign run' prints the run folder")
    if len({c.resolve() for c in found}) > 1:
        raise RunError(f"run '{run}' is ambiguous: {', '.join(map(str, found))}; give CAMPAIGN/RUN or the folder")
    return found[0]


def _latest(camp: Path) -> Path | None:
    try:
        return camp / (camp / LATEST).read_text().strip()
    except OSError:
        return None


def mark_latest(runs_dir: str | os.PathLike, campaign: str, run: str) -> None:
    """Point ``runs/<campaign>/latest`` at ``run`` (atomically)."""
    path = campaign_dir(runs_dir, campaign) / LATEST
    tmp = path.with_name(f".{LATEST}.{os.getpid()}.partial")
    tmp.write_text(run + "\n")
    os.replace(tmp, path)


def delivery_summary(variants) -> dict[str, dict]:
    """Per delivery target of a run's rendered variants (manifest ``variants`` values): how many pass, fail or
    were not checked, and each distinct failure reason with how many variants give it.

    Returns:
        ``{target: {"pass": n, "fail": n, "not checked": n, "reasons": {reason: n}}}`` in ``ray32.targets`` order.
    """
    from ray32.targets import target_names

    out: dict[str, dict] = {}
    for v in variants:
        for target, d in (v.get("deliveries") or {}).items():
            s = out.setdefault(target, {"pass": 0, "fail": 0, "not checked": 0, "reasons": {}})
            qa = d.get("qa") or {}
            verdict = qa.get("verdict") if qa.get("verdict") in ("pass", "fail") else "not checked"
            s[verdict] += 1
            for why in qa.get("reasons") or []:
                s["reasons"][why] = s["reasons"].get(why, 0) + 1
    order = {name: k for k, name in enumerate(target_names())}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
