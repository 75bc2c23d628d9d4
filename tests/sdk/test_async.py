"""asyncio and trio: calls are safe from tasks, and identify() follows each task."""

from __future__ import annotations

import asyncio

import trio

import uptake
from tests.sdk.conftest import ClientFactory
from tests.sdk.fake_daemon import FakeDaemon


async def _asyncio_user(client: uptake.Client, user: str) -> None:
    client.identify(user=user, account=f"acct-{user}")
    for step in range(3):
        await asyncio.sleep(0)  # let the other tasks run between identify and track
        client.track("step", step=step)


def test_identify_follows_asyncio_tasks(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    client = make_client()

    async def main() -> None:
        await asyncio.gather(*(_asyncio_user(client, f"u{i}") for i in range(10)))

    asyncio.run(main())
    assert client.flush(5.0)
    events = daemon.events()
    assert len(events) == 30
    assert all(event.account == f"acct-{event.user}" for event in events)
    assert sorted({event.user or "" for event in events}) == sorted(f"u{i}" for i in range(10))


def test_identify_follows_trio_tasks(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    client = make_client()

    async def user_task(user: str) -> None:
        client.identify(user=user, account=f"acct-{user}")
        with client.session():
            for step in range(3):
                await trio.sleep(0)
                client.track("step", step=step)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(user_task, f"u{i}")

    trio.run(main)
    assert client.flush(5.0)
    events = daemon.events()
    assert len(events) == 50
    assert all(event.account == f"acct-{event.user}" for event in events)
    sessions_by_user: dict[str, set[str | None]] = {}
    for event in events:
        sessions_by_user.setdefault(event.user or "", set()).add(event.session)
    assert len(sessions_by_user) == 10
    assert all(len(sessions) == 1 for sessions in sessions_by_user.values())
    assert len({next(iter(s)) for s in sessions_by_user.values()}) == 10


def test_module_functions_from_asyncio(daemon: FakeDaemon, spool_dir: object) -> None:
    uptake.configure(socket=daemon.address, spool_dir=spool_dir)

    async def handler(user: str) -> None:
        uptake.identify(user=user)
        await asyncio.sleep(0)
        uptake.track("handled")

    async def main() -> None:
        await asyncio.gather(*(handler(f"u{i}") for i in range(5)))
        # flush blocks for at most its timeout; from async code run it in a thread
        assert await asyncio.to_thread(uptake.flush, 5.0)

    asyncio.run(main())
    assert sorted(event.user or "" for event in daemon.events()) == [f"u{i}" for i in range(5)]
