"""A small FastAPI app instrumented with uptake: logins, sessions and feature use.

The uptake lines are marked ``# uptake``. ``UptakeMiddleware`` binds each request to the
logged-in user of Starlette's session (``identify``) and keeps a visit id in that session,
so a visit (login to logout) is one uptake session; ``track_feature`` records a feature
as a route dependency.

Run it against a local daemon::

    usage daemon start
    UPTAKE_APP=reports-api uvicorn --app-dir examples/fastapi_app app:app
    curl -c jar -H 'content-type: application/json' \\
        -d '{"user": "ann", "account": "acme"}' localhost:8000/login
    curl -b jar -X POST 'localhost:8000/reports/export?format=xlsx'
    usage report
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

import uptake
from uptake.integrations.fastapi import UptakeMiddleware, track_feature

__all__ = ["create_app"]

REPORTS = ("weekly-revenue", "churned-accounts", "seat-usage")
EXPORT_FORMATS = ("csv", "xlsx", "pdf")


class Credentials(BaseModel):
    """What ``POST /login`` takes (a real app checks a password or a token)."""

    user: str
    account: str


def logged_in_user(scope: MutableMapping[str, Any]) -> tuple[str, str] | None:
    """Who the request is from, for uptake: ``(user, account)``, None when logged out."""
    session = scope.get("session") or {}
    if "user" not in session:
        return None
    return (session["user"], session["account"])


def require_user(request: Request) -> str:
    """A dependency refusing anonymous requests."""
    user = request.session.get("user")
    if user is None:
        raise HTTPException(status_code=401, detail="log in first")
    return str(user)


def create_app() -> FastAPI:
    """Build the app."""
    app = FastAPI()
    app.add_middleware(UptakeMiddleware, identify=logged_in_user)  # uptake
    # Added after uptake's, so it runs outside it: uptake sees the decoded session.
    app.add_middleware(
        SessionMiddleware, secret_key=os.environ.get("SECRET_KEY", "dev-only-not-secret")
    )

    @app.post("/login")
    async def login(credentials: Credentials, request: Request) -> dict[str, str]:
        request.session.update(user=credentials.user, account=credentials.account)
        uptake.login(user=credentials.user, account=credentials.account)  # uptake
        return {"user": credentials.user, "account": credentials.account}

    @app.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        uptake.logout()  # uptake
        request.session.clear()  # the visit ends with this request
        return {"bye": True}

    @app.get(
        "/reports",
        dependencies=[Depends(require_user), Depends(track_feature("list_reports"))],  # uptake
    )
    async def list_reports() -> dict[str, list[str]]:
        return {"reports": list(REPORTS)}

    @app.post("/reports/export", dependencies=[Depends(require_user)])
    async def export_report(format: str = "csv") -> dict[str, Any]:
        if format not in EXPORT_FORMATS:
            raise HTTPException(400, f"format must be one of {', '.join(EXPORT_FORMATS)}")
        uptake.track("export_report", format=format)  # uptake
        return {"exported": True, "format": format}

    return app


app = create_app()
