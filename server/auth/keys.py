"""The server's signing key for access tokens and paging links.

In development a key pair is generated on first use under ``var/keys/`` (never committed)
and shared by every process of the checkout, so that ``carebridge token`` mints tokens a
running server accepts. Production supplies its own key file through
``CAREBRIDGE_SIGNING_KEY``.
"""

from __future__ import annotations

import os
import secrets
from functools import cache
from pathlib import Path

from joserfc.jwk import RSAKey

DEV_KEY_NAME = "dev-signing-key.pem"
DEV_SECRET_NAME = "dev-link-secret"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    try:
        os.link(tmp, path)  # the first process to get here wins; the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


@cache
def signing_key(var_dir: Path) -> RSAKey:
    configured = os.environ.get("CAREBRIDGE_SIGNING_KEY")
    path = Path(configured) if configured else var_dir / "keys" / DEV_KEY_NAME
    if not path.exists():
        if configured:
            raise FileNotFoundError(f"CAREBRIDGE_SIGNING_KEY names {path}, which does not exist")
        key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, private=True)
        _write_private(path, key.as_pem(private=True))
    return RSAKey.import_key(path.read_bytes(), {"use": "sig", "alg": "RS256"})


@cache
def link_secret(var_dir: Path) -> bytes:
    """The HMAC secret that signs paging links (so that a link cannot be edited)."""
    configured = os.environ.get("CAREBRIDGE_LINK_SECRET")
    if configured:
        return configured.encode()
    path = var_dir / "keys" / DEV_SECRET_NAME
    if not path.exists():
        _write_private(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()
