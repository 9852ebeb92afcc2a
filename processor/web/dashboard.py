"""The RQ dashboard at ``/rq``, behind the API token (bearer, or basic auth with it)."""

from __future__ import annotations

from flask import Flask, Response, request

from processor.context import Context
from processor.web.auth import authorized

PREFIX = "/rq"


def init_app(app: Flask, ctx: Context) -> None:
    import rq_dashboard

    app.config["RQ_DASHBOARD_REDIS_URL"] = ctx.redis_url
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 5000)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    rq_dashboard.web.setup_rq_connection(app)

    @app.before_request
    def _guard() -> Response | None:
        if not request.path.startswith(PREFIX):
            return None
        if authorized(request, ctx.settings.api_token):
            return None
        return Response(
            "authentication required",
            401,
            {"WWW-Authenticate": 'Basic realm="wa-billing dashboard"'},
            mimetype="text/plain",
        )
