"""Derivation hooks: resources the store writes because another one was written.

Some resources are facts about another resource (the scores of a DIALOG response are
Observations derived from the QuestionnaireResponse). They must change in the same
database transaction as their source, whichever way it arrives: create, update, patch,
conditional writes, transaction entries. The unit of work consults the hooks here at
its write points, and a hook does its own writes through the same unit's connection:

- :meth:`WriteHook.check` runs in :func:`~server.store.unit.prepare`, before the write
  lock, and refuses content that does not fit (raise a :class:`FhirError`);
- :meth:`WriteHook.written` runs after a version is written, inside the transaction;
- :meth:`WriteHook.deleted` runs after a resource is deleted, inside the transaction.

An exception from ``written`` or ``deleted`` rolls the whole transaction back. Hooks are
called for every write, so each must return at once for the types it does not handle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from server.store.records import StoredResource
    from server.store.unit import UnitOfWork


class WriteHook(Protocol):
    def check(self, resource: dict[str, Any]) -> None: ...

    def written(
        self, unit: UnitOfWork, stored: StoredResource, resource: dict[str, Any], previous: bytes | None
    ) -> None: ...

    def deleted(self, unit: UnitOfWork, resource_type: str, id: str, previous: bytes | None) -> None: ...


class WriteHooks:
    """The hooks a repository runs, in registration order."""

    def __init__(self, hooks: Iterable[WriteHook] = ()) -> None:
        self.hooks: list[WriteHook] = list(hooks)

    def register(self, hook: WriteHook) -> None:
        self.hooks.append(hook)

    def check(self, resource: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook.check(resource)

    def written(
        self, unit: UnitOfWork, stored: StoredResource, resource: dict[str, Any], previous: bytes | None
    ) -> None:
        for hook in self.hooks:
            hook.written(unit, stored, resource, previous)

    def deleted(self, unit: UnitOfWork, resource_type: str, id: str, previous: bytes | None) -> None:
        for hook in self.hooks:
            hook.deleted(unit, resource_type, id, previous)


def default_hooks() -> WriteHooks:
    """The product's derivations: every repository runs these unless given others."""
    from server.consent.recording import ConsentRecording
    from server.dialog.derived import DialogDerivation

    return WriteHooks([ConsentRecording(), DialogDerivation()])
