"""ray32 QA: checks over frames (``qa.checks``), the metrics table (``qa.metrics``), expectations and verdicts
(``qa.expectations``) and the HTML report (``qa.report``). Imports ray32 only for reading frames."""
