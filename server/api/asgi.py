"""The ASGI entry point for uvicorn workers: settings come from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from carebridge.config import from_environment
from server.api.app import create_app


def app_factory() -> FastAPI:
    return create_app(from_environment())
