"""Settings, read once from the environment and overridden by command-line flags.

Every setting has an environment variable so that a deployment needs no flags, and a
development default so that a fresh clone needs no configuration at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from carebridge import paths


def _default_database_url() -> str:
    return f"sqlite:///{paths.VAR / 'carebridge.sqlite'}"


@dataclass(frozen=True)
class Settings:
    """What a carebridge process needs to know about its surroundings."""

    database_url: str = field(default_factory=_default_database_url)
    host: str = "127.0.0.1"
    port: int = 8080
    #: The base URL clients see; paging links and fullUrls are built from it.
    public_base_url: str | None = None
    #: Folder for keys and the embedded store.
    var_dir: Path = paths.VAR
    #: Largest page a search may ask for (``_count`` is capped to this).
    max_page_size: int = 1000
    default_page_size: int = 50
    #: Access tokens issued by ``carebridge token`` live this long (seconds).
    dev_token_lifetime: int = 12 * 3600
    workers: int = 1

    @property
    def fhir_base_url(self) -> str:
        base = self.public_base_url or f"http://{self.host}:{self.port}"
        return base.rstrip("/") + "/fhir"

    @property
    def token_url(self) -> str:
        """The token endpoint's URL, beside ``/fhir``: the ``aud`` every client assertion must name."""
        return self.fhir_base_url.removesuffix("/fhir") + "/auth/token"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given (non-None) values replaced."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def from_environment(env: dict[str, str] | None = None) -> Settings:
    """Settings from ``CAREBRIDGE_*`` environment variables over the defaults."""
    env = dict(os.environ) if env is None else env
    s = Settings()
    return s.with_overrides(
        database_url=env.get("CAREBRIDGE_DATABASE_URL") or None,
        host=env.get("CAREBRIDGE_HOST") or None,
        port=int(env["CAREBRIDGE_PORT"]) if env.get("CAREBRIDGE_PORT") else None,
        public_base_url=env.get("CAREBRIDGE_PUBLIC_BASE_URL") or None,
        var_dir=Path(env["CAREBRIDGE_VAR_DIR"]) if env.get("CAREBRIDGE_VAR_DIR") else None,
        workers=int(env["CAREBRIDGE_WORKERS"]) if env.get("CAREBRIDGE_WORKERS") else None,
    )
