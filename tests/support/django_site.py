"""One Django configuration per test process (Django's settings can be set only once).

``configure_django(workdir)`` sets up auth, sessions and uptake's middleware over a SQLite
file in ``workdir`` and migrates it; tests pick their URLs and uptake settings with
``override_settings`` (``ROOT_URLCONF``, ``UPTAKE_ACCOUNT``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIDDLEWARE", "configure_django"]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "uptake.integrations.django.UptakeMiddleware",
]


def configure_django(workdir: Path) -> None:
    """Configure and set up Django once for this process; later calls do nothing."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-not-secret",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=MIDDLEWARE,
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(workdir / "db")}
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast tests
        ROOT_URLCONF="tests.sdk.integrations.test_django",
        USE_TZ=True,
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
