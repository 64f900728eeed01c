"""Packaging: the approved variants of a run as deliverables.

Layout (``deliverables`` folder chosen by the user)::

    deliverables/<campaign>/<run>/
        <market>/<slug>/<slug>.mp4 ...   the requested formats (a campaign without ``deliver:``)
        <market>/<slug>/<target>/...     with ``deliver:``: one folder per delivery target (``master`` holds the
                                         campaign's formats), each file made to the target's spec
        <market>/<slug>/poster.jpg       the middle frame
        <market>/<slug>/manifest.json    checksums, request, QA numbers and verdict, approval, versions; per
                                         delivery target its spec, the measured values and its checks' verdict
        <market>.zip                     that market's folders
        timeline.otio                    OpenTimelineIO: a track per market, clip metadata = matrix keys + QA
        manifest.json                    the run's deliverables: variants, zips, checksums

Every file and folder is built under a temporary name and renamed into place, so nothing half-written ever
looks finished. Packaging again is idempotent: unchanged files are left as they are (same bytes, same mtime);
a variant no longer approved is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from flows import manifest as mf
from flows.approval import approvable
from ray32.render import sha256_file as sha256

log = logging.getLogger(__name__)

ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _tree_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _same_file(a: Path, b: Path) -> bool:
    """Same content: the same inode (a hard link, no reading), else the same size and sha256."""
    sa, sb = a.stat(), b.stat()
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    return sa.st_size == sb.st_size and sha256(a) == sha256(b)


def _same_tree(a: Path, b: Path) -> bool:
    files_a, files_b = _tree_files(a), _tree_files(b)
    if [p.relative_to(a) for p in files_a] != [p.relative_to(b) for p in files_b]:
        return False
    return all(_same_file(x, y) for x, y in zip(files_a, files_b))


def _replace_dir(tmp: Path, final: Path) -> bool:
    """Put ``tmp`` at ``final`` unless ``final`` already has the same files; returns True when replaced."""
    if final.is_dir() and _same_tree(final, tmp):
        shutil.rmtree(tmp)
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return True


def _replace_file(tmp: Path, final: Path) -> bool:
    if final.is_file() and _same_file(final, tmp):
        tmp.unlink()
        return False
    os.replace(tmp, final)
    return True


def link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link ``src`` at ``dest`` (no bytes copied); copy when the file system cannot link (another device)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def link_tree(src: Path, dest: Path) -> None:
    """``src`` (a file, or a folder such as an EXR sequence) at ``dest``, file by file hard-linked."""
    if not src.is_dir():
        link_or_copy(src, dest)
        return
    for p in sorted(src.rglob("*")):
        target = dest / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(p, target)


POSTER = "poster.jpg"


def cached_poster(render: Path, video: Path) -> Path | None:
    """The render's poster frame, made once and kept in its render cache entry (``poster.jpg``)."""
    poster = render / POSTER
    if poster.is_file():
        return poster
    tmp = render / f".{POSTER}.{os.getpid()}.partial.jpg"
    if poster_frame(video, tmp) is None:
        return None
    os.replace(tmp, poster)
    return poster


def poster_frame(video: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """Write the middle frame of ``video`` as a JPEG. Returns the path, or None when it cannot be decoded.

    Decodes with PyAV in one thread, from the start (a poster is one frame of a short clip)."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            mid = max(0, (stream.frames or 1) // 2)
            frame = None
            for i, f in enumerate(container.decode(stream)):
                frame = f
                if i >= mid:
                    break
            if frame is None:
                raise ValueError("no frames")
            image = frame.to_image()
    except (av.error.FFmpegError, ValueError, IndexError) as ex:
        log.warning("no poster frame from %s: %s", video, ex)
        return None
    image.save(out, quality=90)
    return Path(out)


def _variant_manifest(run: dict, v: dict, files: dict[str, str]) -> dict:
    return {"campaign": run["campaign"], "run": run["run"], "variant_id": v["variant_id"], "slug": v["slug"],
            "axes": v["axes"], "prompt": v["prompt"], "request": v["request"],
            "engine": run["engine"], "engine_version": v.get("engine_version") or run["engine_version"],
            "source": run["source"], "source_hash": run["source_hash"],
            "qa": {"verdict": (v.get("qa") or {}).get("verdict"), "reasons": (v.get("qa") or {}).get("reasons"),
                   "metrics": v.get("qa_summary")},
            "approval": v.get("approval"), "comments": v.get("comments", []), "versions": run.get("versions", {}),
            "frames": v.get("frames"), "fps": v.get("fps"), "width": v.get("width"), "height": v.get("height"),
            "deliveries": {name: _delivery_entry(d) for name, d in sorted((v.get("deliveries") or {}).items())},
            "files": files}


def output_checksums(render: Path, outputs: dict[str, str]) -> dict[str, str]:
    """sha256 of every file of a render's outputs (relative paths), from its record when it has them."""
    try:
        known = mf.read_json(render / mf.RECORD).get("checksums") or {}
    except (OSError, ValueError):
        known = {}
    out = {}
    for name in outputs.values():
        src = render / name
        files = [src] if not src.is_dir() else _tree_files(src)
        for f in files:
            rel = f.relative_to(render).as_posix()
            out[rel] = known.get(rel) or sha256(f)
    return out


def _delivery_entry(d: dict) -> dict:
    """A delivery target in a variant's manifest: its spec, files, measured values and verdict."""
    qa = d.get("qa") or {}
    return {"spec": d.get("spec"), "folder": d.get("target"), "files": d.get("files"), "main": d.get("file"),
            "verdict": qa.get("verdict"), "reasons": qa.get("reasons") or [], "measured": qa.get("metrics") or {},
            "loudness": d.get("loudness"), "reframe_notes": d.get("notes") or []}


def package_variant(run: dict, v: dict, runs_dir: Path, dest: Path) -> tuple[Path, bool]:
    """Build one variant's deliverable folder (temp folder, then rename). Returns (folder, changed).

    The formats and the poster are hard links to the render cache entry (no bytes copied); their checksums come
    from the render record, so nothing is read again."""
    src = mf.render_dir(runs_dir, run["campaign"], v.get("cache_key") or v["variant_id"])
    final = dest / v["axes"].get("market", "all") / v["slug"]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{v['slug']}.", dir=final.parent))
    try:
        from flows.pipeline import DELIVER_DIR

        deliveries = v.get("deliveries") or {}
        if deliveries:  # one folder per target, holding the target's files (hard-linked from the render cache)
            files = {}
            for target, d in sorted(deliveries.items()):
                (tmp / target).mkdir()
                for name in d.get("files") or []:
                    link_tree(src / DELIVER_DIR / target / name, tmp / target / name)
                files.update({f.relative_to(tmp).as_posix(): sha256(f) for f in _tree_files(tmp / target)})
        else:
            for fmt, name in sorted(v["outputs"].items()):
                link_tree(src / name, tmp / name)
            files = output_checksums(src, v["outputs"])
        video = next((src / v["outputs"][f] for f in ("draft", "prores", "hdr10", "hlg") if f in v["outputs"]), None)
        if video is None or not video.is_file():
            video = next((src / DELIVER_DIR / t / d["file"] for t, d in sorted(deliveries.items()) if d.get("file")),
                         None)
        poster = cached_poster(src, video) if video is not None else None
        if poster is not None:
            link_or_copy(poster, tmp / POSTER)
            files[POSTER] = sha256(poster)
        files = dict(sorted(files.items()))
        mf.write_json(tmp / "manifest.json", _variant_manifest(run, v, files))
        changed = _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, changed


def _zip_key(folder: Path, root: Path) -> bytes:
    """What a market's zip holds, cheaply: member names, sizes and inodes (hard links of the render cache keep
    their inode), and the bytes of each variant's manifest.json (which holds every file's sha256)."""
    h = hashlib.sha256()
    for p in _tree_files(folder):
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0".encode())
        if p.name == "manifest.json":
            h.update(p.read_bytes())
        else:
            h.update(f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}".encode())
    return b"ray32:" + h.hexdigest().encode()


def write_zip(folder: Path, root: Path, out: Path) -> bool:
    """Zip ``folder`` (names relative to ``root``) deterministically; True when the zip changed.

    A zip whose comment holds the same content key (``_zip_key``) is left as it is, without reading a member."""
    key = _zip_key(folder, root)
    if out.is_file():
        try:
            with zipfile.ZipFile(out) as zf:
                if zf.comment == key:
                    return False
        except (OSError, zipfile.BadZipFile):
            pass
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in _tree_files(folder):
            info = zipfile.ZipInfo(p.relative_to(root).as_posix(), date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            with open(p, "rb") as fh, zf.open(info, "w") as dst:
                shutil.copyfileobj(fh, dst, 1 << 20)
        zf.comment = key
    return _replace_file(tmp, out)


def write_timeline(run: dict, packaged: list[dict], dest: Path) -> bool:
    """The run as an OpenTimelineIO timeline: a track per market; each clip's metadata holds the matrix keys,
    the variant id, the QA verdict and the approval. True when the file changed."""
    from fractions import Fraction

    import opentimelineio as otio

    timeline = otio.schema.Timeline(name=f"{run['campaign']} {run['run']}")
    timeline.metadata["ray32"] = {"campaign": run["campaign"], "run": run["run"], "source": run["source"]}
    if any(v.get("deliveries") for v in packaged):
        _delivery_tracks(timeline, packaged)
    for market in sorted({v["axes"].get("market", "all") for v in packaged if not v.get("deliveries")}):
        track = otio.schema.Track(name=market, kind=otio.schema.TrackKind.Video)
        for v in sorted((v for v in packaged if v["axes"].get("market", "all") == market), key=lambda v: v["slug"]):
            fps = Fraction(v.get("fps") or "24")
            rate = float(fps)
            frames = int(v.get("frames") or 0)
            media = next((v["outputs"][f] for f in ("draft", "prores", "hdr10", "hlg", "exr") if f in v["outputs"]),
                         None)
            ref = otio.schema.ExternalReference(
                target_url=f"{market}/{v['slug']}/{media}" if media else "",
                available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                        otio.opentime.RationalTime(frames, rate)))
            clip = otio.schema.Clip(name=v["slug"], media_reference=ref,
                                    source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                                         otio.opentime.RationalTime(frames, rate)))
            clip.metadata["ray32"] = {"variant_id": v["variant_id"], "axes": dict(v["axes"]),
                                      "qa_verdict": (v.get("qa") or {}).get("verdict"),
                                      "qa_reasons": list((v.get("qa") or {}).get("reasons") or []),
                                      "approved_by": (v.get("approval") or {}).get("by"),
                                      "override": (v.get("approval") or {}).get("override")}
            for c in v.get("comments", []):  # reviewers' comments pinned to a frame (flows.approval.add_comment)
                clip.markers.append(otio.schema.Marker(
                    name=c["text"], color=otio.schema.MarkerColor.YELLOW,
                    marked_range=otio.opentime.TimeRange(otio.opentime.RationalTime(c["frame"], rate),
                                                         otio.opentime.RationalTime(0, rate)),
                    metadata={"ray32": {"by": c.get("by"), "at": c.get("at"), "timecode": c.get("timecode")}}))
            track.append(clip)
        timeline.tracks.append(track)
    out = dest / "timeline.otio"
    tmp = dest / f".timeline.{os.getpid()}.otio"
    otio.adapters.write_to_file(timeline, str(tmp))
    return _replace_file(tmp, out)


def _delivery_tracks(timeline, packaged: list[dict]) -> None:
    """One track per market and delivery target; each clip points at the target's file and carries the target's
    spec name, its checks' verdict and the measured loudness."""
    from fractions import Fraction

    import opentimelineio as otio

    pairs = sorted({(v["axes"].get("market", "all"), t) for v in packaged for t in (v.get("deliveries") or {})})
    for market, target in pairs:
        track = otio.schema.Track(name=f"{market} {target}", kind=otio.schema.TrackKind.Video)
        track.metadata["ray32"] = {"market": market, "target": target}
        for v in sorted((v for v in packaged if v["axes"].get("market", "all") == market
                         and target in (v.get("deliveries") or {})), key=lambda v: v["slug"]):
            d = v["deliveries"][target]
            rate = float(Fraction(v.get("fps") or "24"))
            span = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                           otio.opentime.RationalTime(int(v.get("frames") or 0), rate))
            ref = otio.schema.ExternalReference(target_url=f"{market}/{v['slug']}/{target}/{d.get('file') or ''}",
                                                available_range=span)
            clip = otio.schema.Clip(name=f"{v['slug']} {target}", media_reference=ref, source_range=span)
            qa = d.get("qa") or {}
            clip.metadata["ray32"] = {"variant_id": v["variant_id"], "axes": dict(v["axes"]), "target": target,
                                      "qa_verdict": (v.get("qa") or {}).get("verdict"),
                                      "delivery_verdict": qa.get("verdict"),
                                      "delivery_reasons": list(qa.get("reasons") or []),
                                      "loudness": d.get("loudness"),
                                      "approved_by": (v.get("approval") or {}).get("by")}
            track.append(clip)
        timeline.tracks.append(track)


def package_run(run_dir: str | os.PathLike, runs_dir: str | os.PathLike, deliverables_dir: str | os.PathLike) -> dict:
    """Package the approved variants of a run (see the module docstring); safe to run again.

    Args:
        run_dir: the run folder. runs_dir: the runs folder (holds the render cache).
        deliverables_dir: where deliverables go (``<deliverables>/<campaign>/<run>/``).

    Returns:
        ``{"folder", "variants": [slug], "zips": {market: path}, "timeline", "changed": [paths]}``.

    Raises:
        RunError: the run folder has no manifest.
    """
    run_dir, runs_dir = Path(run_dir), Path(runs_dir)
    run = mf.load_manifest(run_dir)
    dest = Path(deliverables_dir) / run["campaign"] / run["run"]
    dest.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in run["variants"].values() if approvable(v)]
    changed: list[str] = []
    entries = {}
    for v in sorted(chosen, key=lambda v: v["slug"]):
        folder, did = package_variant(run, v, runs_dir, dest)
        entries[v["slug"]] = {"market": v["axes"].get("market", "all"), "folder": folder.relative_to(dest).as_posix(),
                              "variant_id": v["variant_id"], "qa": (v.get("qa") or {}).get("verdict"),
                              "approval": v.get("approval"), "comments": v.get("comments", []),
                              "deliveries": {t: {"verdict": (d.get("qa") or {}).get("verdict"),
                                                 "reasons": (d.get("qa") or {}).get("reasons") or []}
                                             for t, d in sorted((v.get("deliveries") or {}).items())}}
        if did:
            changed.append(str(folder))
    keep = {(e["market"], s) for s, e in entries.items()}
    markets = sorted({m for m, _ in keep})
    for market_dir in [p for p in dest.iterdir() if p.is_dir() and not p.name.startswith(".")]:
        for vdir in [p for p in market_dir.iterdir() if p.is_dir()]:
            if (market_dir.name, vdir.name) not in keep:
                shutil.rmtree(vdir)
                changed.append(f"removed {vdir}")
        if not any(market_dir.iterdir()):
            market_dir.rmdir()
    zips = {}
    for market in markets:
        out = dest / f"{market}.zip"
        if write_zip(dest / market, dest, out):
            changed.append(str(out))
        zips[market] = out
    for z in dest.glob("*.zip"):
        if z.stem not in markets:
            z.unlink()
            changed.append(f"removed {z}")
    if write_timeline(run, chosen, dest):
        changed.append(str(dest / "timeline.otio"))
    try:
        before = mf.read_json(dest / "manifest.json").get("zips") or {}
    except (OSError, ValueError):
        before = {}
    zip_sums = {m: (before[m]["sha256"] if str(p) not in changed and (before.get(m) or {}).get("file") == p.name
                    else sha256(p)) for m, p in zips.items()}
    summary = {"campaign": run["campaign"], "run": run["run"], "variants": entries,
               "zips": {m: {"file": p.name, "sha256": zip_sums[m]} for m, p in zips.items()},
               "timeline": {"file": "timeline.otio", "sha256": sha256(dest / "timeline.otio")},
               "versions": run.get("versions", {})}
    tmp = dest / f".manifest.json.{os.getpid()}.partial"
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    if _replace_file(tmp, dest / "manifest.json"):
        changed.append(str(dest / "manifest.json"))

    def note(m):
        m["package"] = {"folder": str(dest), "variants": sorted(entries), "at": mf.now()}
        m["status"] = "packaged" if entries else m.get("status")

    mf.update_manifest(run_dir, note)
    return {"folder": dest, "variants": sorted(entries), "zips": zips, "timeline": dest / "timeline.otio",
            "changed": changed}
