"""One progress bar for the CLI, driven by the library's ``progress(done, total)`` callbacks."""

from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def progress_bar(desc: str, *, total: int | None = None, unit: str = "frame", enabled: bool | None = None):
    """Yield a ``callback(done, total)`` that moves a tqdm bar on stderr (hidden when stderr is not a terminal
    unless ``enabled`` is True)."""
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)

    def update(done: int, new_total: int | None = None) -> None:
        if new_total is not None and bar.total != new_total:
            bar.total = new_total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
