"""Client behaviour (``uptake._tracker``) against the fake daemon: calls, identity, limits."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import uptake
from tests.sdk.conftest import ClientFactory
from tests.sdk.fake_daemon import FakeDaemon
from uptake._model import Event


def test_events_reach_the_daemon_with_every_field(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client(app="billing")
    client.identify(user="u1", account="acme")
    client.login()
    with client.session() as session_id:
        client.track("export_csv", format="xlsx", rows=3, beta=True, ratio=0.5)
    client.set_seats("acme", 50)
    client.mark_release("2.4.0")
    client.logout()
    before = time.time_ns() // 1000
    assert client.flush(5.0)
    events = daemon.events()
    kinds = [event.kind for event in events]
    assert kinds == [
        "login",
        "session_start",
        "feature",
        "session_end",
        "seats",
        "release",
        "logout",
    ]
    feature = events[2]
    assert feature.name == "export_csv"
    assert (feature.user, feature.account, feature.session) == ("u1", "acme", session_id)
    assert feature.props == {"format": "xlsx", "rows": 3, "beta": True, "ratio": 0.5}
    assert feature.source == "billing"
    assert 0 < feature.ts <= before
    assert events[3].value is not None and events[3].value >= 0
    assert (events[4].account, events[4].value, events[4].user) == ("acme", 50, None)
    assert events[5].name == "2.4.0"
    assert len({event.id for event in events}) == len(events)
    assert [event.id for event in events] == sorted(event.id for event in events)
    stats = client.stats()
    assert (stats.sent, stats.queued, stats.dropped, stats.rejected) == (7, 0, 0, 0)


def test_identity_is_per_thread(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    client = make_client()
    client.identify(user="main", account="acme")

    def worker(name: str) -> None:
        client.identify(user=name)
        client.track("clicked")

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.track("clicked")
    assert client.flush(5.0)
    users = sorted(event.user or "" for event in daemon.events())
    assert users == ["main", "t0", "t1", "t2", "t3", "t4"]


def test_login_with_arguments_identifies_and_logout_forgets(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client()
    client.login(user="u9", account="globex")
    client.track("after_login")
    client.logout()
    client.track("after_logout")
    assert client.flush(5.0)
    events = daemon.events()
    assert [(e.kind, e.user, e.account) for e in events] == [
        ("login", "u9", "globex"),
        ("feature", "u9", "globex"),
        ("logout", "u9", "globex"),
        ("feature", None, None),
    ]


def test_identify_with_traits_records_an_identify_event(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client()
    client.identify(user="u1", account="acme", plan="pro")
    client.identify(user="u2")
    assert client.flush(5.0)
    events = daemon.events()
    assert [(e.kind, e.user, e.props) for e in events] == [("identify", "u1", {"plan": "pro"})]


def test_start_and_end_session_explicitly(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    client = make_client()
    session_id = client.start_session("s-1")
    client.track("inside")
    client.end_session()
    client.track("outside")
    client.end_session()  # no session: ignored, not raised
    assert client.flush(5.0)
    assert [(e.kind, e.session) for e in daemon.events()] == [
        ("session_start", "s-1"),
        ("feature", "s-1"),
        ("session_end", "s-1"),
        ("feature", None),
    ]
    assert session_id == "s-1"


def test_record_keeps_timestamp_and_fills_an_empty_id(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client()
    ts = 1_600_000_000_000_000
    client.record(Event(id=b"", ts=ts, kind="login", user="backfill"))
    given = b"\x01" * 16
    client.record(Event(id=given, ts=ts + 1, kind="feature", name="x"))
    assert client.flush(5.0)
    first, second = daemon.events()
    assert (first.ts, first.user, len(first.id)) == (ts, "backfill", 16)
    assert second.id == given


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda c: c.track(42), "feature_name"),
        (lambda c: c.track(""), "feature_name"),
        (lambda c: c.track(feature="x"), "feature_name"),  # the name is positional
        (lambda c: c.track("x" * 201), "feature_name"),
        (lambda c: c.track("ok", **{f"p{i}": i for i in range(33)}), "too_many_props"),
        (lambda c: c.track("ok", when=object()), "props"),
        (lambda c: c.track("ok", big=2**64), "props"),
        (lambda c: c.track("ok", blob="x" * 9000), "oversize"),
        (lambda c: c.set_seats("acme", "fifty"), "value"),
        (lambda c: c.record("not an event"), "invalid_event"),
        (lambda c: c.record(Event(id=b"short", ts=1, kind="login")), "invalid_event"),
        (lambda c: c.record(Event(id=b"", ts=10**17, kind="login")), "future_ts"),
        (lambda c: c.record(Event(id=b"", ts=1, kind="zap")), "invalid_event"),  # type: ignore[arg-type]
        (lambda c: (c.identify(user=7), c.track("ok"), c.identify()), "identity"),  # type: ignore[arg-type]
    ],
)
def test_invalid_input_is_rejected_counted_and_never_raised(
    daemon: FakeDaemon,
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    call: object,
    reason: str,
) -> None:
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="uptake"):
        call(client)  # type: ignore[operator]
        client.track("valid")
        assert client.flush(5.0)
    stats = client.stats()
    assert stats.rejected_by_reason == {reason: 1}
    assert daemon.features() == ["valid"]


def test_each_rejection_reason_is_logged_once(
    daemon: FakeDaemon, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from uptake import _stats

    _stats.reset_logged()
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="uptake"):
        for _ in range(5):
            client.track("ok", **{f"p{i}": i for i in range(40)})
        assert client.flush(5.0)
    assert client.stats().rejected_by_reason == {"too_many_props": 5}
    assert sum("too_many_props" in record.getMessage() for record in caplog.records) == 1


def test_disabled_makes_every_call_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPTAKE_DISABLED", "1")
    uptake.configure()
    uptake.identify(user="u1")
    uptake.track("x", a=1)
    uptake.login()
    with uptake.session():
        uptake.set_seats("acme", 3)
    assert uptake.flush(0.1)
    stats = uptake.stats()
    assert (stats.queued, stats.sent, stats.dropped) == (0, 0, 0)
    assert uptake.default_client().processor._thread is None


def test_module_functions_use_the_configured_default(daemon: FakeDaemon, spool_dir: object) -> None:
    uptake.configure(socket=daemon.address, spool_dir=spool_dir, app="web")
    uptake.identify(user="u1", account="acme")
    uptake.login()
    with uptake.session():
        uptake.track("export_csv", format="xlsx")
    uptake.set_seats("acme", 5)
    uptake.mark_release("1.0")
    uptake.record(Event(id=b"", ts=5, kind="logout", user="u1"))
    sid = uptake.start_session()
    uptake.end_session(sid)
    uptake.logout()
    assert uptake.flush(5.0)
    assert len(daemon.events()) == 10
    assert uptake.stats().sent == 10
    assert uptake.shutdown(2.0)
    uptake.track("after_shutdown")  # ignored and counted, never raised
    assert len(daemon.events()) == 10
    assert uptake.stats().dropped_by_reason == {"after_shutdown": 1}


def test_bad_configuration_is_logged_and_replaced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("UPTAKE_MAX_BATCH", "lots")
    monkeypatch.setenv("UPTAKE_FLUSH_INTERVAL", "-1")
    with caplog.at_level(logging.WARNING, logger="uptake"):
        client = uptake.Client(max_queue="many", nonsense=1, disabled=True)
    assert client.config.max_batch == 1000
    assert client.config.flush_interval == 1.0
    assert client.config.max_queue == 100_000
    text = caplog.text
    assert "UPTAKE_MAX_BATCH" in text and "max_queue" in text and "nonsense" in text


def test_environment_configures_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPTAKE_APP", "envapp")
    monkeypatch.setenv("UPTAKE_MAX_BATCH", "10")
    monkeypatch.setenv("UPTAKE_MAX_QUEUE", "50")
    monkeypatch.setenv("UPTAKE_SPOOL", "off")
    client = uptake.Client(max_queue=70, disabled=True)
    assert (client.config.app, client.config.max_batch, client.config.max_queue) == (
        "envapp",
        10,
        70,
    )
    assert client.config.spool is False


def test_many_clients_are_reported(
    daemon: FakeDaemon, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from uptake import _stats

    _stats.reset_logged()
    with caplog.at_level(logging.WARNING, logger="uptake"):
        for _ in range(20):
            make_client().track("per_request_client")
    assert "create one Client per process" in caplog.text


def test_a_logging_handler_that_tracks_and_flushes_does_not_recurse(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    from uptake import _stats

    _stats.reset_logged()
    client = make_client()

    class TrackingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            client.track("uptake_warning")
            client.flush(5.0)  # from the worker thread: returns at once

    handler = TrackingHandler()
    logger = logging.getLogger("uptake")
    logger.addHandler(handler)
    try:
        client.track("bad", **{f"p{i}": i for i in range(40)})  # the worker logs a warning
        assert client.flush(5.0)
        assert client.flush(5.0)
    finally:
        logger.removeHandler(handler)
    assert daemon.features() == ["uptake_warning"]


def test_reused_thread_does_not_carry_a_session_to_another_user(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client()
    client.identify(user="u1", account="acme")
    client.start_session("s-u1")
    client.track("one")
    client.identify(user="u1", account="acme")  # same user, next request: session kept
    client.track("two")
    client.identify(user="u2", account="acme")  # another user on this thread
    client.track("three")
    client.identify(user="u3", session="web-7")  # resume the app's own session id
    client.track("four")
    assert client.flush(5.0)
    sessions = {e.name: e.session for e in daemon.events() if e.kind == "feature"}
    assert sessions == {"one": "s-u1", "two": "s-u1", "three": None, "four": "web-7"}
    assert [e.kind for e in daemon.events()].count("session_start") == 1


def test_session_scope_ends_on_error_and_decorates_with_the_default_of_each_call(
    daemon: FakeDaemon, spool_dir: object
) -> None:
    @uptake.session()
    def handler(fail: bool) -> str | None:
        uptake.track("in_handler")
        if fail:
            raise KeyError("boom")
        return uptake._context.current_identity()[2]

    first = uptake.configure(socket=daemon.address, spool_dir=spool_dir, app="one")
    session_id = handler(False)
    with pytest.raises(KeyError):
        handler(True)
    assert first.flush(5.0)
    # A later configure(): the decorated function records with the new default client.
    second = uptake.configure(socket=daemon.address, spool_dir=spool_dir, app="two")
    handler(False)
    with uptake.session("outer") as outer, uptake.session() as inner:
        assert outer == "outer" and inner != outer
    assert second.flush(5.0)
    events = daemon.events()
    assert [(e.kind, e.source) for e in events[:6]] == [
        ("session_start", "one"),
        ("feature", "one"),
        ("session_end", "one"),
        ("session_start", "one"),
        ("feature", "one"),
        ("session_end", "one"),
    ]
    assert events[0].session == session_id and events[3].session != session_id
    assert [e.source for e in events[6:]] == ["two"] * 7
    assert [e.kind for e in events[9:]] == ["session_start"] * 2 + ["session_end"] * 2
