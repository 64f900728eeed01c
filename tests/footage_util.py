"""Real-footage variants for the QA tests and bench/qa_defects.py: the composite engine renders a label swap
(and a lighting preset's grade) on a short trim of a real clip, optionally with a defect seeded into the
rendered frames before they are encoded, exactly as a faulty engine would deliver them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ray32.demo_shot import make_label_art

FOOTAGE = Path(__file__).parent / "data" / "footage"
CUP = FOOTAGE / "cup.mp4"
CUP_LABEL = [[312.0, 270.0], [408.0, 270.0], [408.0, 370.0], [312.0, 370.0]]
"""The printed graphics on the cup at frame 0 (tl, tr, br, bl): where the market label goes."""
CUP_FRAMES = 24
"""The trim the tests use: the first 24 frames (0.9 s), where the cup's print is trackable."""

LIGHTING = {  # the demo campaign's three presets (campaigns/demo/campaign.yaml), LUT left out
    "golden": {"temperature": 3800, "tint": 0.05, "exposure": 0.25, "contrast": 1.08, "saturation": 1.12},
    "overcast": {"temperature": 7200, "tint": -0.02, "exposure": -0.1, "contrast": 0.92, "saturation": 0.9},
    "neon": {"temperature": 9000, "tint": 0.3, "exposure": -0.4, "contrast": 1.2, "saturation": 1.3,
             "keyframes": [{"time": "0", "exposure": -0.6}, {"time": "0.5", "exposure": -0.3}]},
}


def artwork(root: Path, lines: tuple[str, ...], name: str) -> Path:
    path = root / f"{name}.png"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        Image.fromarray(make_label_art(lines, size=(300, 300))).save(path)
    return path


def open_trim(path: Path = CUP, frames: int = CUP_FRAMES):
    from ray32.shot import open_shot

    return open_shot(path, end=f"{frames}f", detect_cuts=False)


def request(art: Path, text: str, grade: dict | None = None, corners=CUP_LABEL) -> dict:
    return {"label_swap": {"artwork": str(art), "text": text, "corners": corners, "frame": 0},
            "grade": grade, "outputs": ["draft"]}


def render(shot, req: dict, out_dir: Path, stem: str, *, cache_dir: Path,
           tamper: Callable[[int, np.ndarray], np.ndarray] | None = None, engine=None):
    """Render ``req`` with the composite engine, pass every frame through ``tamper(i, frame)`` (a seeded
    defect), export a draft and return (its path, the prepared shot)."""
    from ray32.engines import get_engine
    from ray32.export import export_stream
    from ray32.request import RenderRequest

    engine = engine or get_engine("composite")
    r = RenderRequest.model_validate(req)
    settings = {**engine.prepare_settings(r, shot), "cache_dir": str(cache_dir)}
    prepared = engine.prepare(shot, settings)

    def frames():
        i = 0
        for chunk in engine.render(prepared, r):
            chunk = chunk.copy()
            for k in range(len(chunk)):
                if tamper is not None:
                    chunk[k] = tamper(i, chunk[k])
                i += 1
            yield chunk

    w, h = engine.output_size(prepared, r)
    paths = export_stream(["draft"], frames(), out_dir, stem=stem, fps=shot.fps, frame_count=shot.frame_count,
                          width=w, height=h, source=shot)
    return paths["draft"], prepared


def facts_for(req: dict, name: str, **extra):
    from qa.facts import facts_from_request

    return facts_from_request(req, variant=name, **extra)


def hue_rotate(frame: np.ndarray, degrees: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Turn the hue of ``frame`` (inside ``mask``) by ``degrees`` (OpenCV HSV)."""
    import cv2

    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(round(degrees / 2))) % 180
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    if mask is None:
        return out
    res = frame.copy()
    res[mask] = out[mask]
    return res


def quad_mask(shape, quad) -> np.ndarray:
    import cv2

    m = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(m, np.round(np.asarray(quad)).astype(np.int32), 1)
    return m.astype(bool)


def shift_region(frame: np.ndarray, quad, dx: float, dy: float, grow: float = 0.1) -> np.ndarray:
    """The label's region (its quad grown by ``grow`` of its size on every side) moved by (dx, dy) px inside
    the frame, as an engine that paints the label in the wrong place would: a misplaced or sliding label."""
    import cv2

    from qa.checks.label import expand

    if not np.all(np.isfinite(quad)) or (dx == 0 and dy == 0):
        return frame
    out = frame.copy()
    m = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(m, np.round(expand(quad, grow)).astype(np.int32), 1)
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(frame, shift, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    mm = cv2.warpAffine(m, shift, frame.shape[1::-1]) > 0
    out[mm] = moved[mm]
    return out
