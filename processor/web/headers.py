"""Headers every answer carries, whichever blueprint (ours or rq-dashboard's) produced it."""

from __future__ import annotations

from flask import Flask, Response, request

from processor.web.dashboard import PREFIX


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith(PREFIX) and response.mimetype == "text/html":
            # rq-dashboard's pages run inline scripts of their own, so no script-src can be
            # set without editing them; they may at least never be framed (click-jacking of
            # the Requeue buttons).
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response
