"""QA checks: pure functions over source frames, output frames and facts that return numbers.

A check never opens files, logs to Prefect or decides thresholds (those live in ``qa.expectations``). Each
returns a ``CheckResult``: a per-frame table (index = frame index in the clip) and summary numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class CheckResult:
    """What one check measured.

    Attributes:
        name: the check ("label", "identity", ...).
        frames: per-frame numbers (and texts), indexed by frame index; may be empty.
        summary: one number per metric for the whole clip (NaN when it could not be measured).
    """

    name: str
    frames: pd.DataFrame
    summary: dict[str, float] = field(default_factory=dict)


def frame_table(rows: list[dict], index: list[int]) -> pd.DataFrame:
    """A per-frame table from row dicts and their frame indices."""
    return pd.DataFrame(rows, index=pd.Index(index, name="frame"))
