"""A small Flask app instrumented with uptake: logins, sessions and feature use.

The uptake lines are marked ``# uptake``. The ``Uptake`` extension binds each request to
the logged-in user (``identify``) and makes each visit (login to logout) one uptake
session: it keeps a visit id in Flask's signed session cookie, every request of the visit
re-enters it, so all its events carry the same session id and the daemon sees one session
from the first request to the last, whichever worker served each.

Run it against a local daemon::

    usage daemon start
    UPTAKE_APP=reports-web flask --app examples/flask_app/app.py run
    curl -c jar -d user=ann -d account=acme localhost:5000/login
    curl -b jar -X POST 'localhost:5000/reports/export?format=xlsx'
    usage report
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Request, jsonify, request, session

import uptake
from uptake.integrations.flask import Uptake

__all__ = ["create_app"]

REPORTS = ("weekly-revenue", "churned-accounts", "seat-usage")
EXPORT_FORMATS = ("csv", "xlsx", "pdf")


def logged_in_user(request: Request) -> tuple[str, str] | None:
    """Who the request is from, for uptake: ``(user, account)``, None when logged out."""
    if "user" not in session:
        return None
    return (session["user"], session["account"])


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides Flask settings (tests pass ``TESTING``)."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    app.config.update(config or {})

    Uptake(app, identify=logged_in_user)  # uptake

    @app.post("/login")
    def login() -> Any:
        user, account = request.form.get("user"), request.form.get("account")
        if not user or not account:
            return jsonify(error="user and account are required"), 400
        session.update(user=user, account=account)
        uptake.login(user=user, account=account, method="password")  # uptake
        return jsonify(user=user, account=account)

    @app.post("/logout")
    def logout() -> Any:
        uptake.logout()  # uptake
        session.clear()  # the visit ends with this request
        return jsonify(bye=True)

    @app.get("/reports")
    def list_reports() -> Any:
        if "user" not in session:
            return jsonify(error="log in first"), 401
        uptake.track("list_reports")  # uptake
        return jsonify(reports=list(REPORTS))

    @app.post("/reports/export")
    def export_report() -> Any:
        if "user" not in session:
            return jsonify(error="log in first"), 401
        export_format = request.args.get("format", "csv")
        if export_format not in EXPORT_FORMATS:
            return jsonify(error=f"format must be one of {', '.join(EXPORT_FORMATS)}"), 400
        uptake.track("export_report", format=export_format)  # uptake
        return jsonify(exported=True, format=export_format)

    return app


app = create_app()

if __name__ == "__main__":
    app.run(debug=False)
