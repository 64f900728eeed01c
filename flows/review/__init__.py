"""Review in the browser (``ray32 review RUN``): watch each variant beside its source, read its QA verdict, pin
comments to a timecode, approve or reject. Every decision and comment goes through ``flows.approval`` into the
run's manifest, and the run is packaged again, as ``ray32 campaign approve`` does.

Example:
    >>> from flows.review import serve_review
    >>> serve_review("runs/demo/latest", host="127.0.0.1", port=8765)  # doctest: +SKIP
"""

from flows.review.app import ReviewServer, create_app, needs_token, review_url, serve_review

__all__ = ["ReviewServer", "create_app", "needs_token", "review_url", "serve_review"]
