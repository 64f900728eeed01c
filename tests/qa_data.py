"""Shared data for the QA tests: the demo shot (1 s), a clean label swap made by rendering the same scene with
the market's label (what a perfect swap produces), and a wrong market's render. Built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ray32.demo_shot import load_truth, make_demo_shot, make_label_art
from ray32.shot import read_chunks

MARKET = ("AQUA FRESCA", "500 ml")
OTHER = ("EAU FRAÎCHE", "50 cl")


def build(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    src = make_demo_shot(root, name="source", seconds=1)
    good = make_demo_shot(root, name="es", seconds=1, label_lines=MARKET, audio=False)
    wrong = make_demo_shot(root, name="fr", seconds=1, label_lines=OTHER, audio=False)
    art = root / "es.png"
    if not art.exists():
        Image.fromarray(make_label_art(MARKET)).save(art)
    return {"root": root, "source": src.path, "truth": src.truth_path, "good": good.path, "wrong": wrong.path,
            "artwork": art, "track": load_truth(src.truth_path).label_corners}


def frames(path) -> np.ndarray:
    return np.concatenate([c.frames for c in read_chunks(path)])
