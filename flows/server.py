"""Prefect's temporary server, started early.

Without ``PREFECT_API_URL`` the first flow call starts a temporary Prefect server in a subprocess and waits for it
(10-15 s here). ``start_temporary_server`` starts that same server (Prefect's ``SubprocessASGIServer``, the
instance the flow's client uses) from a background thread as soon as a command knows it will run a flow, so that
it boots while the shot is made and the campaign is planned; ``wait_for_temporary_server`` is called before the
flow. Nothing here runs when a server is configured.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

_thread: threading.Thread | None = None


def _boot() -> None:
    try:
        from prefect.settings import PREFECT_API_URL

        if PREFECT_API_URL.value():  # a profile names a server: nothing to start
            return
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().start()
    except Exception as ex:  # the flow call starts it itself then, and reports what is wrong
        log.debug("early start of Prefect's temporary server failed: %s", ex)


def start_temporary_server() -> bool:
    """Start Prefect's temporary server in the background (no-op when ``PREFECT_API_URL`` is set or it was
    started already). Returns True when a start began."""
    global _thread
    if _thread is not None or os.environ.get("PREFECT_API_URL"):
        return False
    _thread = threading.Thread(target=_boot, name="ray32-prefect-server", daemon=True)
    _thread.start()
    return True


def wait_for_temporary_server() -> None:
    """Wait until an early start (if any) has finished, so that the flow finds the server up."""
    if _thread is not None:
        _thread.join()
