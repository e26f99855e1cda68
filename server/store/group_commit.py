"""Group commit for the embedded SQLite store.

A SQLite commit writes every page the transaction touched to the WAL, and a resource
touches a page in each of the store's b-trees, so committing each create on its own
spends most of its time writing the same pages again and again. When several writes are
waiting at once, this committer runs them in one transaction, each inside a savepoint of
its own: a write that fails rolls back alone and answers with its own error, the others
commit together, and no write is answered before the commit that makes it durable.

Batches form by themselves: the flush is scheduled with ``call_soon``, after every
handler that is ready to run has queued its write, so an idle server adds no delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from server.consent.context import AccessContext
from server.store.repository import Repository
from server.store.unit import UnitOfWork

T = TypeVar("T")
Job = tuple[AccessContext, Callable[[UnitOfWork], Any], "asyncio.Future[Any]"]


class GroupCommitter:
    def __init__(self, repository: Repository, max_batch: int = 64) -> None:
        self.repository = repository
        self.max_batch = max_batch
        self._queue: list[Job] = []
        self._scheduled = False

    async def submit(self, ctx: AccessContext, fn: Callable[[UnitOfWork], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((ctx, fn, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        if self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        live = [job for job in batch if not job[2].cancelled()]
        if not live:
            return
        try:
            outcomes = self.repository.run_batch([(ctx, fn) for ctx, fn, _ in live])
        except BaseException as exc:  # the shared commit failed: nobody's write landed
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), (ok, value) in zip(live, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
