"""Paging links that cannot be edited to change the query.

A next-page link carries the whole applied query and the position, signed with an HMAC
of the server's link secret. The server runs the query in the link, never parameters
added beside it, and refuses a link whose signature does not match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from server.fhir.errors import BadRequest


class PageSigner:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def encode(self, state: dict[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps(state)).rstrip(b"=")
        mac = hmac.new(self.secret, payload, hashlib.sha256).digest()[:16]
        return payload.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def decode(self, token: str) -> dict[str, Any]:
        payload, _, mac = token.partition(".")
        expected = base64.urlsafe_b64encode(
            hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()[:16]
        ).rstrip(b"=").decode()
        if not mac or not hmac.compare_digest(mac, expected):
            raise BadRequest("the paging link has been altered or is not from this server")
        try:
            state = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            raise BadRequest("the paging link is damaged") from None
        if not isinstance(state, dict):
            raise BadRequest("the paging link is damaged")
        return state
