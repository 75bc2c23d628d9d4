"""Settings of the example reports site; the uptake lines are marked ``# uptake``.

``REPORTS_DB`` (env) puts the SQLite database elsewhere (the tests use a tmp path).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "uptake.integrations.django.UptakeMiddleware",  # uptake: after authentication
]

UPTAKE_ACCOUNT = "reports_site.accounts.account_of"  # uptake: the user's customer account

ROOT_URLCONF = "reports_site.urls"
WSGI_APPLICATION = "reports_site.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REPORTS_DB", str(BASE_DIR / "db.sqlite3")),
        # Several gunicorn workers share the file: wait for each other's writes.
        "OPTIONS": {"timeout": 20},
    }
}

USE_TZ = True
