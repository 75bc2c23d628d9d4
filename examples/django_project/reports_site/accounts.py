"""Which customer account a request's user belongs to (``settings.UPTAKE_ACCOUNT``)."""

from __future__ import annotations

from django.http import HttpRequest


def account_of(request: HttpRequest) -> str | None:
    """The account of the logged-in user: the first label of their e-mail's domain.

    ``ann@acme.example`` belongs to ``acme``. A real site would read an organisation
    or tenant model here.
    """
    email = getattr(request.user, "email", "") or ""
    domain = email.rpartition("@")[2]
    return domain.split(".")[0] or None
