"""QA checks: one module per check, each with one declaration ``CHECK = Check(...)`` (``qa.checks.base``),
listed once in ``qa.registry.CHECKS``.

A check never opens files, logs to Prefect or decides thresholds: its declaration holds its metrics' bounds and
explanations, and ``qa.metrics.measure`` runs it.
"""

from qa.checks.base import (MODES, NEEDS, REGIONS, Batch, Check, CheckResult, Clip, Failure, Metric,  # noqa: F401
                            frame_table, per_mode)
