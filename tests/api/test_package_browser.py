"""The /profiles pages in a real browser: Debian's chromium, headless, against a real uvicorn server.

``make browser-deps`` installs chromium (apt); where it is absent the test skips and says so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from carebridge.config import Settings
from server.api.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: run `make browser-deps` (apt-get)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path, var_dir: Path) -> Iterator[str]:
    port = _free_port()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}", var_dir=var_dir,
                        host="127.0.0.1", port=port)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    pause = threading.Event()
    while not server.started and thread.is_alive():
        pause.wait(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


def dump_dom(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_profiles_pages_render_in_chromium(live_server: str, tmp_path: Path) -> None:
    index = dump_dom(f"{live_server}/profiles", tmp_path / "chromium")
    assert "<h1>carebridge.fhir.r4 0.1.0</h1>" in index
    assert 'href="/profiles/StructureDefinition-cap-referral"' in index
    page: Any = dump_dom(f"{live_server}/profiles/StructureDefinition-cap-referral", tmp_path / "chromium")
    assert "Central Access Point referral" in page
    assert "https://fhir.carebridge.example/StructureDefinition/triage-due" in page
