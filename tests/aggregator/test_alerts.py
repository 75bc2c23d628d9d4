"""Alert delivery: a command past its timeout is killed, a failing command or webhook is logged."""

from __future__ import annotations

import http.server
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uptake_aggregator.alerts import Notifier
from uptake_aggregator.config import Alerts

MESSAGE = {"goal": "product.mau >= 5", "subject": "product", "from": None, "to": "critical"}


def test_the_command_reads_the_change_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    notifier = Notifier(Alerts(command=(sys.executable, "-c", script)))
    notifier.send([MESSAGE])
    notifier.close(timeout=30)
    assert json.loads(out.read_text()) == MESSAGE
    assert (notifier.delivered, notifier.failed) == (1, 0)


def test_a_command_past_its_timeout_is_killed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    hang = (sys.executable, "-c", "import time; time.sleep(60)")
    fails = (sys.executable, "-c", "import sys; sys.exit('no pager configured')")
    with caplog.at_level(logging.ERROR, logger="uptake_aggregator.alerts"):
        for command in (hang, fails):
            notifier = Notifier(Alerts(command=command, command_timeout_s=0.2))
            notifier.send([MESSAGE])
            notifier.close(timeout=30)
            assert (notifier.delivered, notifier.failed) == (0, 1)
    assert "did not finish within 0.2 s; killed" in caplog.text
    assert "exited 1: no pager configured" in caplog.text


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first two POSTs, then 200."""

    def do_POST(self) -> None:
        server: Any = self.server
        server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(503 if len(server.bodies) <= 2 else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_failing_webhook_is_retried_with_backoff(
    flaky: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{flaky.server_address[1]}/"
    notifier = Notifier(Alerts(webhook=url, webhook_retries=3, retry_wait_s=0.01))
    with caplog.at_level(logging.WARNING, logger="uptake_aggregator.alerts"):
        notifier.send([MESSAGE])
        notifier.close(timeout=30)
    assert [json.loads(body) for body in flaky.bodies] == [MESSAGE] * 3
    assert (notifier.delivered, notifier.failed) == (1, 0)
    assert caplog.text.count("HTTP 503 Service Unavailable") == 2
    gives_up = Notifier(Alerts(webhook=url.replace("127.0.0.1", "[::1"), webhook_retries=0))
    gives_up.send([MESSAGE])
    gives_up.close(timeout=30)
    assert gives_up.failed == 1
