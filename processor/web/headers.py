"""Headers every answer carries, whichever blueprint (ours or rq-dashboard's) produced it."""

from __future__ import annotations

from flask import Flask, Response, request

from processor.web.costs import CSP
from processor.web.dashboard import PREFIX


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith(PREFIX):
            # rq-dashboard's pages are rendered from our templates (templates/rq_dashboard/),
            # whose scripts are static files: the cost dashboard's policy, no inline script
            # or style, never framed (click-jacking of the Requeue buttons).
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response
