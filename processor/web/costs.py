"""The cost dashboard at ``/dashboard`` (``/`` redirects there).

Behind the API token: HTTP basic (any user name, the token as password, like ``/rq``), a
bearer header, or a session cookie from the sign-in page. Server-rendered (Jinja); the charts
are drawn by Chart.js (shipped in ``static/vendor/chart.js`` with its licence) from data the
page carries in a ``<script type="application/json">`` block, read by the static
``dashboard.js``: no inline script, so the Content-Security-Policy allows scripts from this
origin only. Every figure has a stable ``data-metric`` attribute.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    redirect,
    render_template,
    request,
    stream_with_context,
)
from werkzeug.wrappers import Response as BaseResponse

from processor.context import Context
from processor.core.recon_days import per_day
from processor.core.reconcile import counts
from processor.reports import EXPORT_COLUMNS, print_usage
from processor.store.alerts import Alerts
from processor.store.budgets import Budgets
from processor.store.dashboard import ALL, Dashboard
from processor.web.auth import authorized, context
from processor.web.session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    new_csrf,
    new_session,
    same,
    session_csrf,
    valid_session,
)

bp = Blueprint(
    "costs",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)
MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
WABA = re.compile(r"[0-9]{1,32}")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOWNLOADS = ("usage.csv", "usage.json", "records.csv", "records.jsonl")


def init_app(app: Flask) -> None:
    """The dashboard's blueprint (its own page headers below); ``X-Content-Type-Options`` on
    every answer of the app is set in one place, ``processor.web.headers``."""
    app.register_blueprint(bp)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Origin null
    if not request.path.startswith("/dashboard/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


_ctx = context


def _token() -> str:
    return _ctx().settings.api_token


def _signed_in() -> bool:
    return authorized(request, _token()) or valid_session(
        _token(), request.cookies.get(SESSION_COOKIE)
    )


def _set_cookie(response: BaseResponse, name: str, value: str, max_age: int, path: str) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, secure=True, httponly=True, samesite="Strict"
    )


# -- pages ----------------------------------------------------------------------------------------


@bp.get("/")
def root() -> BaseResponse:
    return redirect("/dashboard", 302)


@bp.get("/dashboard")
def dashboard() -> BaseResponse | str:
    if not _signed_in():
        return redirect("/dashboard/sign-in", 302)
    ctx = _ctx()
    board = Dashboard(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book)
    waba, month = _choice(board)
    view = board.view(waba, month, int(time.time()))
    cookie = request.cookies.get(SESSION_COOKIE)
    csrf = session_csrf(_token(), cookie) if cookie and valid_session(_token(), cookie) else None
    recon = _reconciliation(ctx, waba, month)
    return render_template(
        "dashboard/main.html",
        view=view,
        budget=_budget(ctx, waba, month),
        alerts=_alerts(ctx, waba),
        s=view["summary"],
        wabas=board.wabas(),
        months=sorted({month, *board.months()}, reverse=True),
        chart_data=_chart_data(view, recon),
        recon=recon,
        query=f"waba_id={view['waba_id']}&month={month}",
        csrf=csrf,
    )


def _budget(ctx: Context, waba: str | None, month: str) -> dict[str, Any] | None:
    if waba is None:
        return None
    status = Budgets(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.budget_file).status(
        waba, month
    )
    return status if status["budget"] is not None else None


def _reconciliation(ctx: Context, waba: str | None, month: str) -> dict[str, Any] | None:
    """The stored reconciliation of the WABA-month (the document ``GET /v1/reconciliation``
    answers, read through the same store), added up per day; None when none is stored."""
    from processor.reconciling import store

    result = store(ctx).get(waba, month) if waba is not None else None
    if result is None:
        return None
    return {
        "fetched_at": result.get("fetched_at"),
        "currency": result.get("currency"),
        "totals": result.get("totals", {}),
        "counts": {s: n for s, n in counts(result).items() if n},
        "days": per_day(result),
    }


def _alerts(ctx: Context, waba: str | None, limit: int = 10) -> list[dict[str, Any]]:
    """The newest alerts (of the WABA), with their delivery state."""
    alerts = Alerts(ctx.redis, ctx.keys).all()
    return [a for a in alerts if waba is None or a.get("waba_id") == waba][:limit]


def _choice(board: Dashboard) -> tuple[str | None, str]:
    waba = request.args.get("waba_id") or ALL
    month = request.args.get("month") or time.strftime("%Y-%m", time.gmtime())
    if waba != ALL and not WABA.fullmatch(waba):
        abort(400, "waba_id must be 'all' or a WABA id")
    if not MONTH.fullmatch(month):
        abort(400, "month must be YYYY-MM")
    return (None if waba == ALL else waba), month


def _chart_data(view: dict[str, Any], recon: dict[str, Any] | None) -> dict[str, Any]:
    """What dashboard.js draws (numbers for the charts only; the page shows exact decimals)."""
    categories = sorted({c for d in view["days"] for c in d["by_category"]})
    return {
        "recon": _recon_chart(recon),
        "currency": view["currency"],
        "days": [d["day"][8:] for d in view["days"]],
        "daily": [
            {"label": c, "data": [float(d["by_category"].get(c, 0)) for d in view["days"]]}
            for c in categories
        ],
        "markets": {
            "labels": [m["market"] for m in view["markets"]],
            "data": [float(m["billed_cost"]) for m in view["markets"]],
        },
        "numbers": {
            "labels": [n["phone_number_id"] for n in view["numbers"]],
            "data": [float(n["billed_cost"]) for n in view["numbers"]],
        },
    }


def _recon_chart(recon: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ours vs Meta per day: cost (a gap where a day's cost is unknown) and volume."""
    if recon is None:
        return None
    days = recon["days"]

    def money(name: str) -> list[float | None]:
        return [None if d[name] is None else float(d[name]) for d in days]

    return {
        "days": [d["day"][8:] for d in days],
        "ours_cost": money("ours_cost"),
        "meta_cost": money("meta_cost"),
        "ours_volume": [d["ours_volume"] for d in days],
        "meta_volume": [d["meta_volume"] for d in days],
    }


# -- signing in and out ---------------------------------------------------------------------------


@bp.get("/dashboard/sign-in")
def sign_in_form() -> Response:
    token = new_csrf()
    response = Response(render_template("dashboard/sign_in.html", csrf=token, error=None))
    _set_cookie(response, CSRF_COOKIE, token, 3600, "/dashboard/sign-in")
    return response


@bp.post("/dashboard/sign-in")
def sign_in() -> BaseResponse:
    if not _same_origin() or not same(request.form.get("csrf"), request.cookies.get(CSRF_COOKIE)):
        abort(403, "the form expired or came from another site: load the sign-in page again")
    if not same(request.form.get("password", ""), _token()):
        token = new_csrf()
        page = render_template("dashboard/sign_in.html", csrf=token, error="Wrong password.")
        response: BaseResponse = Response(page, 401)
        _set_cookie(response, CSRF_COOKIE, token, 3600, "/dashboard/sign-in")
        return response
    response = redirect("/dashboard", 303)
    _set_cookie(response, SESSION_COOKIE, new_session(_token()), SESSION_SECONDS, "/")
    response.delete_cookie(CSRF_COOKIE, path="/dashboard/sign-in")
    return response


@bp.post("/dashboard/sign-out")
def sign_out() -> BaseResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    if (
        not _same_origin()
        or not cookie
        or not same(request.form.get("csrf"), session_csrf(_token(), cookie))
    ):
        abort(403, "the form expired or came from another site")
    response = redirect("/dashboard/sign-in", 303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response


def _same_origin() -> bool:
    """A form post whose Origin (or Referer) is another site is refused."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


# -- downloads ------------------------------------------------------------------------------------


@bp.get("/dashboard/download/<name>")
def download(name: str) -> Response:
    """What the page shows, as files: usage (CSV, JSON) and the month's records (CSV, JSONL)."""
    if not _signed_in():
        abort(401, "sign in first")
    if name not in DOWNLOADS:
        abort(404)
    ctx = _ctx()
    board = Dashboard(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book)
    waba, month = _choice(board)
    stem = f"wa-billing-{waba or ALL}-{month}"
    disposition = {"Content-Disposition": f'attachment; filename="{stem}-{name}"'}
    if name.startswith("usage."):
        usage = board.view(waba, month, int(time.time()))["usage"]
        out = io.StringIO()
        print_usage(usage, name.split(".")[1], out)
        mimetype = "text/csv" if name.endswith(".csv") else "application/json"
        return Response(out.getvalue(), mimetype=mimetype, headers=disposition)
    wabas = [waba] if waba else board.wabas(month)
    fmt = name.split(".")[1]
    body = stream_with_context(_records(ctx, wabas, month, fmt))
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(body, mimetype=mimetype, headers=disposition)


def _records(ctx: Context, wabas: list[str], month: str, fmt: str) -> Iterator[str]:
    """The month's records, streamed in chunks (the columns of ``wa-billing export``)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    if fmt == "csv":
        writer.writeheader()
    count = 0
    for waba in wabas:
        for record in ctx.queries.records(waba, month):
            if fmt == "csv":
                writer.writerow(record)
            else:
                out.write(json.dumps(record) + "\n")
            count += 1
            if count % 500 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    yield out.getvalue()
