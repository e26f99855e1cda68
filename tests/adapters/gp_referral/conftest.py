"""Fixtures shared by the GP referral tests: a repository over the test's own store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carebridge.config import Settings
from server.api.app import build_state


@pytest.fixture
def repo(settings: Settings) -> Iterator[Any]:
    state = build_state(settings)
    yield state.repository
    state.repository.engine.dispose()
