"""URLs of the example reports site."""

from __future__ import annotations

from django.urls import path

from reports_site import views

urlpatterns = [
    path("login", views.log_in),
    path("logout", views.log_out),
    path("reports", views.list_reports),
    path("reports/export", views.export_report),
]
