"""Transaction entries keyed on business identifiers, so that landing the same input twice
finds what the first run wrote (conditional update) and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.common.identity import condition, stable_id


@dataclass
class BundleBuilder:
    """Entries in order; one entry per business identifier however often the input names it."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    _by_condition: dict[str, str] = field(default_factory=dict)

    def claim(self, resource_type: str, system: str, value: str) -> tuple[str, bool]:
        """The fullUrl for this identity and whether it is new to the Bundle."""
        url = condition(resource_type, system, value)
        if url in self._by_condition:
            return self._by_condition[url], False
        full_url = f"urn:uuid:{stable_id(url)}"
        self._by_condition[url] = full_url
        return full_url, True

    def put_conditional(self, full_url: str, resource: dict[str, Any], system: str, value: str) -> None:
        self.entries.append({
            "fullUrl": full_url, "resource": resource,
            "request": {"method": "PUT", "url": condition(resource["resourceType"], system, value)},
        })

    def put(self, full_url: str, resource: dict[str, Any]) -> None:
        self.entries.append({
            "fullUrl": full_url, "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
        })

    def bundle(self) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}
