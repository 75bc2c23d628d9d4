"""Views of the example reports site: log in, list reports, export one, log out.

``login``/``logout`` events come from Django's auth signals and every request runs under
its user (the middleware); views only track features (marked ``# uptake``). The views
answer JSON for scripts and curl, so they are exempt from CSRF checks; a site with HTML
forms keeps them.
"""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import uptake

REPORTS = ("weekly-revenue", "churned-accounts", "seat-usage")
EXPORT_FORMATS = ("csv", "xlsx", "pdf")


@csrf_exempt
@require_POST
def log_in(request: HttpRequest) -> JsonResponse:
    """Log in with ``username`` and ``password`` (form fields)."""
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return JsonResponse({"error": "wrong username or password"}, status=401)
    login(request, user)  # uptake: records `login` (user_logged_in signal)
    return JsonResponse({"user": user.get_username()})


@csrf_exempt
@require_POST
def log_out(request: HttpRequest) -> JsonResponse:
    """Log out (records ``logout`` through the user_logged_out signal)."""
    logout(request)
    return JsonResponse({"bye": True})


@require_GET
def list_reports(request: HttpRequest) -> JsonResponse:
    """The reports the user can open."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first"}, status=401)
    uptake.track("list_reports")  # uptake
    return JsonResponse({"reports": list(REPORTS)})


@csrf_exempt
@require_POST
def export_report(request: HttpRequest) -> JsonResponse:
    """Export a report in ``?format=`` (csv, xlsx or pdf)."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first"}, status=401)
    export_format = request.GET.get("format", "csv")
    if export_format not in EXPORT_FORMATS:
        return JsonResponse({"error": f"format must be one of {EXPORT_FORMATS}"}, status=400)
    uptake.track("export_report", format=export_format)  # uptake
    return JsonResponse({"exported": True, "format": export_format})
