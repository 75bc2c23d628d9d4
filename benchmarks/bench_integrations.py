"""What do the framework integrations cost per request? Middleware vs none, same run.

Run: ``.venv/bin/python benchmarks/bench_integrations.py [--requests 20000 --rounds 7]``.

Every candidate is called in this process, the way its server would call it, and the
candidates are interleaved round by round (so noise on a shared machine hits them alike),
the garbage collector off while timing. The figure is the median over rounds of the time
per request; each middleware is reported as extra microseconds per request and as a ratio
to the same app without it, measured in the same round.

- WSGI: a minimal app (``start_response``, one chunk), the body iterated and closed as a
  PEP 3333 server does; then a Flask "hello" with and without the ``Uptake`` extension.
- ASGI: a minimal app awaited in one asyncio loop; then a Starlette "hello" with and
  without ``UptakeMiddleware``.
- Middleware variants: ``anonymous`` (identify returns None), ``identified`` (a user and
  account, no cookie) and ``visit`` (identified with a session cookie: the visit's
  ``session_end`` is one event per request). Each request also tracks one feature in the
  app so the SDK's background worker is busy as in production: events go to a sink that
  discards them (``uptake.configure(sink=...)``), with the real worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import uptake
from uptake.integrations.asgi import UptakeMiddleware as AsgiMiddleware
from uptake.integrations.wsgi import UptakeMiddleware as WsgiMiddleware
from uptake.protocol import Event

Runner = Callable[[int], None]


class _DiscardSink:
    def write(self, events: list[Event]) -> None:
        del events


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    del status, headers, exc_info


def _wsgi_hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    uptake.track("page")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _environ(cookie: bool) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench",
        "HTTP_X_USER": "u1",
        "wsgi.url_scheme": "http",
    }
    if cookie:
        environ["HTTP_COOKIE"] = "csrftoken=abc; sessionid=0123456789abcdefghijklmnopqrstuv"
    return environ


def _wsgi_runner(
    app: Callable[..., Iterable[bytes]], cookie: bool = False, cookie_header: str = ""
) -> Runner:
    template = _environ(cookie)
    if cookie_header:
        template["HTTP_COOKIE"] = cookie_header

    def run(requests: int) -> None:
        for _ in range(requests):
            body = app(dict(template), _start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return run


def _identified(environ: dict[str, Any]) -> tuple[str, str]:
    return (environ["HTTP_X_USER"], "acme")


def _anonymous(environ: Any) -> None:
    return None


def _flask_apps() -> tuple[Any, Any, str] | None:
    try:
        from flask import Flask
    except ImportError:
        return None
    from uptake.integrations.flask import Uptake

    def build(with_uptake: bool) -> Any:
        app = Flask("bench")
        app.config["SECRET_KEY"] = "bench"

        @app.get("/")
        def hello() -> str:
            uptake.track("page")
            return "ok"

        if with_uptake:
            Uptake(app, identify=lambda request: ("u1", "acme"))
        return app

    bare, instrumented = build(False), build(True)
    # A returning visitor: the session cookie that holds the extension's visit id; both
    # apps get it, so both decode the same session.
    cookie = instrumented.test_client().get("/").headers["Set-Cookie"].split(";")[0]
    return bare.wsgi_app, instrumented, cookie


def _scope(cookie: bool) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"x-user", b"u1")]
    if cookie:
        headers.append((b"cookie", b"csrftoken=abc; session=0123456789abcdefghijklmnopqrstuv"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("bench", 80),
        "client": ("127.0.0.1", 5000),
    }


async def _asgi_hello(scope: Any, receive: Any, send: Any) -> None:
    uptake.track("page")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    del message


def _asgi_runner(loop: asyncio.AbstractEventLoop, app: Any, cookie: bool = False) -> Runner:
    template = _scope(cookie)

    async def many(requests: int) -> None:
        for _ in range(requests):
            await app(dict(template), _receive, _send)

    def run(requests: int) -> None:
        loop.run_until_complete(many(requests))

    return run


def _starlette_apps() -> tuple[Any, Any] | None:
    try:
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
    except ImportError:
        return None

    async def hello(request: Any) -> PlainTextResponse:
        uptake.track("page")
        return PlainTextResponse("ok")

    def build(with_uptake: bool) -> Any:
        app = Starlette(routes=[Route("/", hello)])
        if with_uptake:
            app.add_middleware(AsgiMiddleware, identify=lambda scope: ("u1", "acme"))
        return app

    return build(False), build(True)


def _asgi_identified(scope: Any) -> tuple[str, str]:
    return ("u1", "acme")


def _measure(candidates: dict[str, Runner], requests: int, rounds: int) -> dict[str, float]:
    for run in candidates.values():
        run(max(1, requests // 10))  # warm up: imports, caches, the worker thread
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter_ns()
                run(requests)
                times[name].append((time.perf_counter_ns() - start) / requests / 1000)
            finally:
                gc.enable()
            uptake.flush(5.0)  # untimed: the buffer never fills
    return {name: statistics.median(values) for name, values in times.items()}


def _report(title: str, figures: dict[str, float], baselines: dict[str, str]) -> None:
    print(f"\n{title}")
    print(f"  {'candidate':<34} {'us/request':>10} {'extra us':>9} {'ratio':>7}")
    for name, value in figures.items():
        base = baselines.get(name)
        if base is None:
            print(f"  {name:<34} {value:>10.2f} {'':>9} {'':>7}")
        else:
            extra, ratio = value - figures[base], value / figures[base]
            print(f"  {name:<34} {value:>10.2f} {extra:>+9.2f} {ratio:>6.2f}x")


def main() -> None:
    """Measure and print the per-request overhead of each integration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    uptake.configure(app="bench", sink=_DiscardSink(), max_queue=1_000_000)

    wsgi: dict[str, Runner] = {
        "wsgi: bare app": _wsgi_runner(_wsgi_hello),
        "wsgi: middleware, anonymous": _wsgi_runner(WsgiMiddleware(_wsgi_hello, _anonymous)),
        "wsgi: middleware, identified": _wsgi_runner(WsgiMiddleware(_wsgi_hello, _identified)),
        "wsgi: middleware, visit (cookie)": _wsgi_runner(
            WsgiMiddleware(_wsgi_hello, _identified), cookie=True
        ),
    }
    baselines = {name: "wsgi: bare app" for name in wsgi if "middleware" in name}
    flask_apps = _flask_apps()
    if flask_apps is not None:
        bare_flask, instrumented, flask_cookie = flask_apps
        wsgi["flask: hello"] = _wsgi_runner(bare_flask, cookie_header=flask_cookie)
        wsgi["flask: hello + Uptake extension"] = _wsgi_runner(
            instrumented, cookie_header=flask_cookie
        )
        baselines["flask: hello + Uptake extension"] = "flask: hello"
    _report("WSGI", _measure(wsgi, args.requests, args.rounds), baselines)

    loop = asyncio.new_event_loop()
    asgi: dict[str, Runner] = {
        "asgi: bare app": _asgi_runner(loop, _asgi_hello),
        "asgi: middleware, anonymous": _asgi_runner(loop, AsgiMiddleware(_asgi_hello, _anonymous)),
        "asgi: middleware, identified": _asgi_runner(
            loop, AsgiMiddleware(_asgi_hello, _asgi_identified)
        ),
        "asgi: middleware, visit (cookie)": _asgi_runner(
            loop, AsgiMiddleware(_asgi_hello, _asgi_identified), cookie=True
        ),
    }
    baselines = {name: "asgi: bare app" for name in asgi if "middleware" in name}
    starlette_apps = _starlette_apps()
    if starlette_apps is not None:
        asgi["starlette: hello"] = _asgi_runner(loop, starlette_apps[0])
        asgi["starlette: hello + UptakeMiddleware"] = _asgi_runner(loop, starlette_apps[1])
        baselines["starlette: hello + UptakeMiddleware"] = "starlette: hello"
    _report("ASGI", _measure(asgi, args.requests, args.rounds), baselines)
    loop.close()
    uptake.shutdown(2.0)


if __name__ == "__main__":
    main()
