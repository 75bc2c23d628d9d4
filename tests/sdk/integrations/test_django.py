"""The Django middleware and auth signals, through Django's test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import uptake
from tests.support.django_site import configure_django
from uptake.testing import UsageEvents

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def account_of(request: Any) -> str | None:
    """The tests' UPTAKE_ACCOUNT: the part of the username after the dot."""
    return request.user.get_username().partition(".")[2] or None


def _page(request: Any) -> Any:
    from django.http import HttpResponse

    uptake.track("page")
    return HttpResponse(uptake.current_context()[0] or "-")


def _boom(request: Any) -> Any:
    uptake.track("before_boom")
    raise RuntimeError("view failed")


def _stream(request: Any) -> Any:
    from django.http import StreamingHttpResponse

    def chunks() -> Iterator[bytes]:
        for index in range(2):
            uptake.track("chunk", index=index)
            yield b"x"

    return StreamingHttpResponse(chunks())


async def _async_page(request: Any) -> Any:
    from django.http import HttpResponse

    await asyncio.sleep(0)  # let the other requests' tasks run in between
    uptake.track("async_page")
    return HttpResponse(uptake.current_context()[0] or "-")


async def _async_stream(request: Any) -> Any:
    from django.http import StreamingHttpResponse

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(2):
            uptake.track("async_chunk", index=index)
            await asyncio.sleep(0)
            yield b"x"

    return StreamingHttpResponse(chunks())


def _log_in(request: Any) -> Any:
    from django.contrib.auth import authenticate, login
    from django.http import HttpResponse

    user = authenticate(request, username=request.POST["username"], password="pw")
    assert user is not None
    login(request, user)
    uptake.track("after_login")
    return HttpResponse("ok")


def _log_out(request: Any) -> Any:
    from django.contrib.auth import logout
    from django.http import HttpResponse

    logout(request)
    return HttpResponse("bye")


def _urls() -> list[Any]:
    from django.urls import path

    return [
        path("page", _page),
        path("boom", _boom),
        path("stream", _stream),
        path("login", _log_in),
        path("logout", _log_out),
        path("async/page", _async_page),
        path("async/stream", _async_stream),
    ]


def __getattr__(name: str) -> Any:
    # ROOT_URLCONF points here; the URL patterns are built once Django is set up.
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    configure_django(tmp_path_factory.mktemp("django"))
    from django.contrib.auth.models import User

    created = {}
    for name in ("ann.acme", "bob.globex"):
        user, _ = User.objects.get_or_create(username=name)
        user.set_password("pw")
        user.save()
        created[name] = user.pk
    return created


@pytest.fixture
def client(users: dict[str, int], usage_events: UsageEvents) -> Iterator[Any]:
    from django.test import Client, override_settings

    with override_settings(
        ROOT_URLCONF=__name__, UPTAKE_ACCOUNT=f"{__name__}.account_of", UPTAKE_USER=None
    ):
        yield Client(raise_request_exception=False)


def test_a_visit_from_login_to_logout(
    client: Any, users: dict[str, int], usage_events: UsageEvents
) -> None:
    ann = str(users["ann.acme"])
    assert client.get("/page").content == b"-"
    assert client.post("/login", {"username": "ann.acme"}).status_code == 200
    usage_events.assert_tracked(kind="login", user=ann, account="acme", count=1)
    usage_events.assert_tracked("after_login", user=ann, account="acme", count=1)
    for _ in range(2):
        assert client.get("/page").content == ann.encode()
    cookie = client.cookies["sessionid"].value
    client.post("/logout")
    client.get("/page")
    usage_events.assert_tracked(kind="logout", user=ann, account="acme", count=1)
    pages = usage_events.find("page", user=ann)
    assert len(pages) == 2
    [session_id] = {event.session for event in pages}
    assert session_id is not None and cookie not in session_id
    usage_events.assert_tracked(kind="session_start", user=ann, count=1)
    assert len(usage_events.find("page", user=None)) == 2
    assert uptake.current_context() == (None, None, None)


def test_errors_and_streams_are_tracked_and_cleared(
    client: Any, users: dict[str, int], usage_events: UsageEvents
) -> None:
    bob = str(users["bob.globex"])
    client.post("/login", {"username": "bob.globex"})
    assert client.get("/boom").status_code == 500
    usage_events.assert_tracked("before_boom", user=bob, account="globex", count=1)
    response = client.get("/stream")
    assert b"".join(response.streaming_content) == b"xx"
    response.close()
    assert len(usage_events.find("chunk", user=bob)) == 2
    assert uptake.current_context() == (None, None, None)


def test_the_test_clients_login_records_without_binding(
    client: Any, users: dict[str, int], usage_events: UsageEvents
) -> None:
    from django.contrib.auth.models import User

    client.force_login(User.objects.get(username="ann.acme"))
    usage_events.assert_tracked(kind="login", user=str(users["ann.acme"]), count=1)
    assert uptake.current_context() == (None, None, None)


def test_uptake_user_setting(client: Any, usage_events: UsageEvents, tmp_path: Path) -> None:
    from django.test import override_settings

    with override_settings(UPTAKE_USER=f"{__name__}.username_of"):
        client.post("/login", {"username": "ann.acme"})
        client.get("/page")
    usage_events.assert_tracked("page", user="ann.acme", account="acme", count=1)


def username_of(request: Any) -> str | None:
    """The tests' UPTAKE_USER: the username rather than the primary key."""
    user = request.user
    return user.get_username() if user.is_authenticated else None


def test_the_async_middleware_chain_binds_each_task(
    client: Any, users: dict[str, int], usage_events: UsageEvents
) -> None:
    from django.contrib.auth.models import User
    from django.test import AsyncClient

    async_clients = {}
    for name in ("ann.acme", "bob.globex"):
        async_client = AsyncClient()
        async_client.force_login(User.objects.get(username=name))  # sync: before the loop
        async_clients[str(users[name])] = async_client
    usage_events.clear()

    async def visit(user: str, async_client: Any) -> list[bytes]:
        pages = [await async_client.get("/async/page") for _ in range(3)]
        stream = await async_client.get("/async/stream")
        body = b"".join([chunk async for chunk in stream.streaming_content])
        return [page.content for page in pages] + [body]

    async def main() -> list[list[bytes]]:
        return await asyncio.gather(*(visit(u, c) for u, c in async_clients.items()))

    answers = asyncio.run(main())
    assert answers == [[user.encode()] * 3 + [b"xx"] for user in async_clients]
    for user, account in zip(async_clients, ("acme", "globex"), strict=True):
        usage_events.assert_tracked("async_page", user=user, account=account, count=3)
        usage_events.assert_tracked("async_chunk", user=user, account=account, count=2)
        usage_events.assert_tracked(kind="session_end", user=user, count=4)
    assert uptake.current_context() == (None, None, None)
