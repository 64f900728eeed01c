"""The review web app: a Starlette application over one run folder, served by uvicorn.

Routes::

    GET  /                       the page (jinja2, autoescaped; the only script is /static/review.js)
    GET  /static/<name>          review.js, review.css
    GET  /report                 the run's static QA report (failing frames side by side, plots)
    GET  /media/<slug>/draft     a variant's draft (H.264), with HTTP range requests
    GET  /media/source           the run's source shot, trimmed like the run, as H.264 (made once, in the run)
    POST /api/decision           {variant, state: approved|rejected, note, override, user, stamp}
    POST /api/comment            {variant, frame | time, text, user, stamp}

Safety: bound to 127.0.0.1 (or localhost, ::1) it answers only requests addressed to those names (no DNS
rebinding); bound to any other address it needs a token, carried by every request (``?token=`` on the first
page load, then a same-site cookie; or the ``X-Ray32-Token`` header). POSTs need the page's CSRF token in the
``X-CSRF-Token`` header and a JSON body. Files are looked up by variant in the manifest, never from a path in
the request, and only files under the campaign's runs folder or the deliverables folder are served.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from flows import approval
from flows import manifest as mf

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""Addresses served without a token: only this machine can reach them."""
COOKIE = "ray32_review_token"
STATIC = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_TEXT = 4000
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
SOURCE_PROXY = Path("review") / "source.mp4"
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


class ReviewError(mf.RunError):
    """The review server cannot start: no run, a port in use, an address that needs a token."""


def needs_token(host: str) -> bool:
    """True when binding to ``host`` exposes the app beyond this machine's loopback names (a token is required)."""
    return host.strip("[]") not in LOOPBACK


def review_url(host: str, port: int, token: str | None = None) -> str:
    """The URL a reviewer opens (with the token when there is one)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _text(body: dict, key: str, *, required: bool = False, what: str | None = None) -> str:
    value = body.get(key)
    if value is None:
        value = ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise _BadRequest(f"'{key}' must be text")
    value = str(value).strip()
    if len(value) > MAX_TEXT:
        raise _BadRequest(f"'{key}' is {len(value)} characters long; keep it under {MAX_TEXT}")
    if required and not value:
        raise _BadRequest(what or f"'{key}' is required")
    return value


def make_source_proxy(run_dir: Path, manifest: dict) -> Path | None:
    """The run's source shot, trimmed like the run, as a browser-playable H.264 file in ``<run>/review/`` (made
    once). Returns None when the source cannot be found or read (the page then shows the draft alone)."""
    out = run_dir / SOURCE_PROXY
    if out.is_file():
        return out
    from ray32.errors import Ray32Error
    from ray32.export import export_stream
    from ray32.shot import open_shot, read_chunks

    source = Path(manifest.get("campaign_dir") or "") / manifest.get("source", "")
    if not source.is_file():
        log.warning("source shot %s not found; the review page shows the drafts alone", source)
        return None
    trim = manifest.get("trim") or {}
    tmp = Path(tempfile.mkdtemp(prefix=".source.", dir=run_dir))
    try:
        shot = open_shot(source, start=trim.get("start"), end=trim.get("end"), detect_cuts=False)
        paths = export_stream(["draft"], read_chunks(shot), tmp, stem="source", fps=shot.fps,
                              frame_count=shot.frame_count, width=shot.width, height=shot.height, source=shot)
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(paths["draft"]).replace(out)
    except (Ray32Error, OSError) as ex:
        log.warning("cannot make the source proxy from %s: %s", source, ex)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _review_state(v: dict) -> str:
    state = (v.get("approval") or {}).get("state")
    return state if state in ("approved", "rejected") else "awaiting"


def _qa_state(v: dict) -> str:
    if v.get("state") != "rendered":
        return "not-rendered"
    return "pass" if (v.get("qa") or {}).get("verdict") == "pass" else "fail"


def page_model(manifest: dict, has_source: bool) -> dict:
    """What the page shows, from the manifest (plain values; the template escapes them)."""
    from ray32.timecode import format_seconds, format_timecode

    axes = list(manifest.get("axes") or [])
    variants = []
    for slug, v in sorted(manifest["variants"].items()):
        fps = Fraction(str(v.get("fps") or 24))
        qa = v.get("qa") or {}
        reasons = []
        frames = list(qa.get("frames") or [])
        for i, reason in enumerate(qa.get("reasons") or []):
            frame = frames[i] if i < len(frames) else None
            reasons.append({"text": reason, "frame": frame,
                            "timecode": None if frame is None else format_timecode(frame, fps),
                            "time": None if frame is None else format_seconds(Fraction(frame) / fps)})
        variants.append({
            "slug": slug, "variant_id": v.get("variant_id"), "axes": v.get("axes") or {}, "prompt": v.get("prompt"),
            "state": v.get("state"), "error": v.get("error"), "qa": _qa_state(v), "reasons": reasons,
            "failed": sorted((qa.get("failed") or {}).items()), "review": _review_state(v),
            "approval": v.get("approval") or {}, "history": v.get("history") or [],
            "comments": v.get("comments") or [], "frames": int(v.get("frames") or 0), "fps": str(fps),
            "fps_float": float(fps), "stamp": approval.render_stamp(v),
            "draft": "draft" in (v.get("outputs") or {}) and v.get("state") == "rendered",
            "notes": v.get("qa_notes") or [],
        })
    values = {a: sorted({str(x["axes"].get(a)) for x in variants if x["axes"].get(a) is not None}) for a in axes}
    counts = {"variants": len(variants), "fail": sum(x["qa"] != "pass" for x in variants),
              "awaiting": sum(x["review"] == "awaiting" for x in variants),
              "approved": sum(x["review"] == "approved" for x in variants),
              "rejected": sum(x["review"] == "rejected" for x in variants)}
    return {"campaign": manifest.get("campaign"), "run": manifest.get("run"), "status": manifest.get("status"),
            "variants": variants, "axes": values, "counts": counts, "has_source": has_source,
            "package": manifest.get("package")}


class ReviewServer:
    """The app's state: the run, where deliverables go, the token, the CSRF token, who reviews."""

    def __init__(self, run_dir: str | Path, *, runs_dir: str | Path | None = None,
                 deliverables: str | Path = "deliverables", token: str | None = None, user: str | None = None,
                 package: bool = True, check_host: bool = True):
        self.run_dir = Path(run_dir).resolve()
        manifest = mf.load_manifest(self.run_dir)
        self.runs_dir = Path(runs_dir).resolve() if runs_dir else self.run_dir.parent.parent
        self.deliverables = Path(deliverables).resolve()
        self.token = token or None
        self.user = (user or "").strip() or None
        self.package = package
        self.check_host = check_host and not self.token
        self.csrf = secrets.token_urlsafe(24)
        self.lock = threading.Lock()
        self.roots = [mf.campaign_dir(self.runs_dir, manifest["campaign"]).resolve(), self.run_dir,
                      self.deliverables]
        self.source = make_source_proxy(self.run_dir, manifest)
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    # --- guards -------------------------------------------------------------------------------------------------
    def refuse(self, request: Request) -> Response | None:
        """A response refusing ``request`` (wrong host, no token), or None when it may proceed."""
        if self.check_host:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
            if host not in LOOPBACK:
                return PlainTextResponse(f"this review server answers only on {', '.join(LOOPBACK)}; open the URL "
                                         "that 'ray32 review' printed", status_code=421)
        if self.token:
            given = (request.query_params.get("token") or request.headers.get("x-ray32-token")
                     or request.cookies.get(COOKIE) or "")
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return PlainTextResponse("this review server needs its token: open the URL that 'ray32 review' "
                                         "printed (it ends in ?token=...)", status_code=403)
        return None

    def check_post(self, request: Request) -> None:
        given = request.headers.get("x-csrf-token") or ""
        if not secrets.compare_digest(given.encode(), self.csrf.encode()):
            raise _BadRequest("missing or wrong CSRF token: reload the page and try again", 403)
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise _BadRequest(f"request from another site ({origin}) refused", 403)

    def served(self, path: Path) -> Response:
        """The file at ``path`` (range requests answered), if it lies under the run's folders; else 404."""
        real = path.resolve()
        if not any(real.is_relative_to(root) for root in self.roots) or not real.is_file():
            return PlainTextResponse("no such file in this run", status_code=404)
        return FileResponse(real, media_type="video/mp4")

    # --- the work -------------------------------------------------------------------------------------------------
    def variant(self, manifest: dict, name: str) -> tuple[str, dict]:
        if not name:
            raise _BadRequest("'variant' is required: the variant's slug")
        if name not in manifest["variants"]:
            raise _BadRequest(f"run '{manifest['run']}' has no variant {name!r}; reload the page", 404)
        return name, manifest["variants"][name]

    def who(self, body: dict) -> str:
        return self.user or _text(body, "user", required=True,
                                  what="type your name once (top of the page) so the record says who decided")

    def republish(self) -> dict:
        """Package the run again and rewrite its report, as ``ray32 campaign approve`` does."""
        if not self.package:
            return {}
        from flows.package import package_run
        from flows.pipeline import write_run_report

        with self.lock:
            out = package_run(self.run_dir, self.runs_dir, self.deliverables)
            write_run_report(self.run_dir, self.runs_dir)
        return {"deliverables": str(out["folder"]), "packaged": out["variants"]}

    def decide(self, body: dict) -> dict:
        manifest = mf.load_manifest(self.run_dir)
        slug, v = self.variant(manifest, _text(body, "variant"))
        state = _text(body, "state")
        if state not in ("approved", "rejected"):
            raise _BadRequest(f"'state' must be 'approved' or 'rejected', not {state!r}")
        note = _text(body, "note", required=True, what="write a note: why you approve or reject this variant")
        override = _text(body, "override")
        user = self.who(body)
        if state == "approved" and _qa_state(v) == "fail" and not override:
            why = "; ".join((v.get("qa") or {}).get("reasons") or []) or "not judged"
            raise _BadRequest(f"{slug} failed QA ({why}); write the override reason to deliver it anyway")
        approval.record_decision(self.run_dir, [slug], state, note=note, user=user, override=override or None,
                                 expect={slug: _text(body, "stamp")} if body.get("stamp") else None)
        out = self.republish()
        m = mf.load_manifest(self.run_dir)["variants"][slug]
        return {"ok": True, "variant": slug, "approval": m.get("approval"), "review": _review_state(m), **out,
                "message": f"{state} {slug}" + (f"; {len(out['packaged'])} variant(s) packaged" if out else "")}

    def comment(self, body: dict) -> dict:
        manifest = mf.load_manifest(self.run_dir)
        slug, _ = self.variant(manifest, _text(body, "variant"))
        text = _text(body, "text", required=True, what="write the comment first")
        user = self.who(body)
        frame = body.get("frame")
        if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
            raise _BadRequest(f"'frame' must be a whole frame number, not {frame!r}")
        record = approval.add_comment(self.run_dir, slug, text=text, frame=frame, time=_text(body, "time") or None,
                                      user=user, expect=_text(body, "stamp") or None)
        out = self.republish()
        return {"ok": True, "variant": slug, "comment": record, **out,
                "message": f"comment at {record['timecode']} on {slug}"}

    # --- routes -------------------------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        manifest = mf.load_manifest(self.run_dir)
        model = page_model(manifest, self.source is not None)
        body = self.env.get_template("review.html.j2").render(**model, csrf=self.csrf, user=self.user)
        resp = HTMLResponse(body)
        if self.token:
            resp.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return resp

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("no such file", status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name])

    async def media(self, request: Request) -> Response:
        slug, kind = request.path_params["slug"], request.path_params["kind"]
        manifest = mf.load_manifest(self.run_dir)
        v = manifest["variants"].get(slug)
        if v is None or kind != "draft" or "draft" not in (v.get("outputs") or {}):
            return PlainTextResponse(f"no draft of variant {slug!r} in this run", status_code=404)
        folder = mf.render_dir(self.runs_dir, manifest["campaign"], v.get("cache_key") or v["variant_id"])
        return self.served(folder / v["outputs"]["draft"])

    async def report(self, request: Request) -> Response:
        path = self.run_dir / "qa_report.html"
        if not path.is_file():
            return PlainTextResponse("this run has no QA report yet", status_code=404)
        resp = FileResponse(path, media_type="text/html; charset=utf-8")
        resp.headers["Content-Security-Policy"] = REPORT_CSP   # the report's own: inline styles and images only
        return resp

    async def source_media(self, request: Request) -> Response:
        if self.source is None:
            return PlainTextResponse("the source shot of this run is not available", status_code=404)
        return self.served(self.source)


def create_app(run_dir: str | Path, **kwargs) -> Starlette:
    """The review app over ``run_dir`` (keyword arguments are ``ReviewServer``'s)."""
    server = ReviewServer(run_dir, **kwargs)

    def api(method):
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            try:
                server.check_post(request)
                if "application/json" not in (request.headers.get("content-type") or ""):
                    raise _BadRequest("send the request as JSON (Content-Type: application/json)", 415)
                try:
                    body = await request.json()
                except ValueError:
                    raise _BadRequest("the request body is not valid JSON") from None
                if not isinstance(body, dict):
                    raise _BadRequest("the request body must be a JSON object")
                return JSONResponse(await run_in_threadpool(method, body))
            except _BadRequest as ex:
                return JSONResponse({"ok": False, "error": str(ex)}, status_code=ex.status)
            except approval.StaleRenderError as ex:
                return JSONResponse({"ok": False, "error": str(ex), "stale": True}, status_code=409)
            except mf.RunError as ex:
                return JSONResponse({"ok": False, "error": str(ex)}, status_code=400)
        return endpoint

    routes = [Route("/", server.page), Route("/static/{name}", server.static), Route("/report", server.report),
              Route("/media/source", server.source_media), Route("/media/{slug}/{kind}", server.media),
              Route("/api/decision", api(server.decide), methods=["POST"]),
              Route("/api/comment", api(server.comment), methods=["POST"])]
    async def guard(request: Request, call_next):
        refused = server.refuse(request)
        response = refused if refused is not None else await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store" if response.media_type != "video/mp4" else "private"
        return response

    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])
    app.state.review = server
    return app


def _port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as ex:
            raise ReviewError(f"cannot listen on {host}:{port} ({ex.strerror}); choose another --port or --host") \
                from None


def serve_review(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 announce=print, **kwargs) -> None:
    """Serve the review app until interrupted.

    Args:
        run_dir: the run folder. host, port: where to listen (default 127.0.0.1:8765).
        token: required of every request; generated when ``host`` is not a loopback name and none is given.
        announce: called with the URL to open (default ``print``).
        **kwargs: ``ReviewServer``'s (runs_dir, deliverables, user, package).

    Raises:
        ReviewError: the address cannot be bound. RunError: no run there.
    """
    import uvicorn

    if needs_token(host) and not token:
        token = secrets.token_urlsafe(18)
    _port_free(host, port)
    app = create_app(run_dir, token=token, **kwargs)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:  # listening now: the printed URL answers
                announce(f"review: {review_url(host, port, token)}  (Ctrl-C stops)")

    Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)).run()
