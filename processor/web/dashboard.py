"""The RQ dashboard at ``/rq``, behind the API token (bearer, or basic auth with it).

Its failed registry is the quarantine (workers/failures.py): Requeue replays a body. Deleting
is disabled; its actions are accepted from its own pages only.

Its pages are ours: ``templates/rq_dashboard/`` overrides the blueprint's templates of the same
names (Flask looks in the app's folder first). They run no inline script and no ``eval`` (the
blueprint's use inline blocks and Underscore templates): ``static/rq/*.js`` read the URL
prefix, poll interval and view (queue, registry, page, job id) from ``data-*`` attributes and
put the JSON the blueprint answers in the page with ``textContent``; ``processor.web.headers``
gives every answer under ``/rq`` the cost dashboard's Content-Security-Policy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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
            return _same_site_only()
        return Response(
            "authentication required",
            401,
            {"WWW-Authenticate": 'Basic realm="wa-billing dashboard"'},
            mimetype="text/plain",
        )


def _same_site_only() -> Response | None:
    """The dashboard's actions (requeue) are POSTs its own pages send; a browser holding the
    basic-auth password must not send them for another site (CSRF), nor by a mere link."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        path = request.path
        if path.endswith("/requeue") or path.startswith(f"{PREFIX}/requeue/"):  # GET works too
            return Response("use POST", 405, {"Allow": "POST"}, mimetype="text/plain")
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    cross = fetch_site not in (None, "same-origin", "none") or (
        origin is not None and urlsplit(origin).netloc != request.host  # scheme: TLS proxies
    )
    if cross:
        return Response("cross-site request refused", 403, mimetype="text/plain")
    return None
