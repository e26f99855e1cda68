"""Running uvicorn so that Ctrl-C or SIGTERM is a clean stop.

uvicorn re-raises the signal after its graceful shutdown, which leaves a traceback on the
terminal of every ``make run``. This server finishes in-flight requests, frees the port
and returns instead. With several workers the supervisor starts the same server class in
each process, all sharing one listening socket.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.supervisors import multiprocess


class QuietServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(app: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    config = uvicorn.Config(
        app, factory=True, host=host, port=port, workers=workers, log_level=log_level, access_log=False,
        loop="uvloop", http="httptools", timeout_graceful_shutdown=10, lifespan="on",
        timeout_keep_alive=75,
    )
    server = QuietServer(config)
    if workers <= 1:
        server.run()
        return
    # The supervisor builds each worker's server from this module attribute.
    multiprocess.Server = QuietServer  # type: ignore[misc]
    sock = config.bind_socket()
    multiprocess.Multiprocess(config, sockets=[sock]).run()
