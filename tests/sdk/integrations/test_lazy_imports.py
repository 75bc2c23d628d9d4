"""Importing an integration imports no framework: each loads its framework when used."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = ["django", "flask", "celery", "kombu", "starlette", "fastapi", "werkzeug"]


def test_integrations_import_no_framework() -> None:
    code = (
        "import json, sys\n"
        "import uptake.integrations.wsgi, uptake.integrations.asgi, uptake.integrations.django\n"
        "import uptake.integrations.flask, uptake.integrations.fastapi\n"
        "import uptake.integrations.celery\n"
        f"print(json.dumps(sorted(set({FRAMEWORKS!r}) & set(sys.modules))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []
