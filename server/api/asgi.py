"""The ASGI entry point for uvicorn workers: settings come from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from carebridge import heap
from carebridge.config import from_environment
from server.api.app import create_app


def app_factory() -> FastAPI:
    app = create_app(from_environment())
    heap.settle()  # the definitions and validators built for this worker stay out of the collector's walks
    return app
