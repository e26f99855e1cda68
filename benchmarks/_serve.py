"""Shared helpers for the benchmark scripts: free loopback ports, a carebridge server started
and stopped by its PID, a token, PostgreSQL scratch databases, and percentiles.

Not a benchmark of its own; imported by ``search_at_scale.py`` and ``transaction_1000.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CAREBRIDGE = str(VENV_BIN / "carebridge")
RESULTS = ROOT / "benchmarks" / "results"
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest rank on the sorted list (the load generator's definition)."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def stats_ms(latencies: list[float]) -> dict[str, float | None]:
    values = sorted(latencies)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {
        "p50_ms": ms(percentile(values, 0.50)), "p90_ms": ms(percentile(values, 0.90)),
        "p99_ms": ms(percentile(values, 0.99)), "max_ms": ms(values[-1] if values else None),
        "mean_ms": ms(sum(values) / len(values) if values else None),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, object]:
    info: dict[str, object] = {"nproc": os.cpu_count()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    info["python"] = sys.version.split()[0]
    return info


class Server:
    """``carebridge serve`` on a free loopback port, with its own var dir (signing key) and a token.

    Stopped by the PID it started (SIGTERM, then SIGKILL after a grace period), children too.
    """

    def __init__(self, database_url: str, workers: int = 1, log_path: Path | None = None,
                 start_timeout: float = 180.0):
        self.database_url = database_url
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self._var = tempfile.mkdtemp(prefix="carebridge-bench-var-")
        self.env = dict(os.environ, CAREBRIDGE_VAR_DIR=self._var)
        self.log_path = log_path or Path(self._var) / "serve.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def __enter__(self) -> Server:
        self.token = subprocess.run(
            [CAREBRIDGE, "token", "--client", "bench", "--scope", "system/*.cruds"], env=self.env,
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
        if self.workers > 1:
            # several workers on an empty store race to record the search-parameter state; set it
            # up from one process first (an import of nothing migrates and records it)
            subprocess.run([CAREBRIDGE, "import", "/dev/null", "--quiet", "--database-url", self.database_url],
                           env=self.env, capture_output=True, check=True, timeout=300)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [CAREBRIDGE, "serve", "--port", str(self.port), "--workers", str(self.workers),
             "--database-url", self.database_url, "--log-level", "warning"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(ROOT),
        )
        try:
            self._wait_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_up(self) -> None:
        import httpx

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"carebridge serve exited ({self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/metadata", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"carebridge serve did not answer within {self.start_timeout:.0f} s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The server's PID and, with several workers, its worker processes."""
        if self.proc is None:
            return []
        out = [self.proc.pid]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True,
                                  timeout=10).stdout.split()
            out += [int(k) for k in kids]
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        with contextlib.suppress(Exception):
            self._log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        import shutil

        shutil.rmtree(self._var, ignore_errors=True)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"}


def _pg_connect(admin_url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@contextlib.contextmanager
def pg_database(admin_url: str = PG_ADMIN_DEFAULT, tag: str = "bench") -> Iterator[str]:
    """A fresh PostgreSQL database for the duration of the block, dropped WITH (FORCE) after."""
    name = f"cb_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with _pg_connect(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with _pg_connect(admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def results_dir(kind: str, given: str | None) -> Path:
    out = Path(given) if given else RESULTS / f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    return out
