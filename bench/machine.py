"""Machine facts and result files for the benchmarks: every result says where and with what it was measured."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("numpy", "av", "opencv-python-headless", "opencolorio", "openexr", "torch", "diffusers", "prefect",
            "pandas", "great-expectations", "rapidocr", "onnxruntime", "dlib-bin")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except Exception:
        return None


def machine_facts() -> dict:
    import psutil

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    facts = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _git_commit(),
    }
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            facts["gpu"] = out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        ff = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=10)
        facts["ffmpeg"] = ff.stdout.splitlines()[0] if ff.stdout else None
    except OSError:
        pass
    return facts


def write_result(name: str, results: dict, folder: str | os.PathLike | None = None) -> Path:
    """Write ``<folder>/<name>.json`` (default folder ``bench/results``) = {"benchmark", "machine", "results"}
    and return its path."""
    folder = Path(folder) if folder is not None else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_facts(), "results": results}
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path
