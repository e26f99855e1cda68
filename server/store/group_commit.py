"""Group commit for the embedded SQLite store.

A SQLite commit writes every page the transaction touched to the WAL, and a resource
touches a page in each of the store's b-trees, so committing each create on its own
spends most of its time writing the same pages again and again. When several writes are
waiting at once, this committer runs them in one transaction, each inside a savepoint of
its own: a write that fails rolls back alone and answers with its own error, the others
commit together, and no write is answered before the commit that makes it durable.

Batches form by themselves: the flush is scheduled with ``call_soon``, after every
handler that is ready to run has queued its write, so an idle server adds no delay.

By default the batch runs on the event loop (the API's single-resource writes take well
under a millisecond each). With ``in_thread`` it runs on a thread of its own, one batch at
a time, while the loop goes on reading: whatever arrives during a commit forms the next
batch. That suits writers whose jobs are longer (an MLLP listener landing whole referrals).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from server.consent.context import AccessContext
from server.store.repository import Repository
from server.store.unit import UnitOfWork

T = TypeVar("T")
#: a job and the future of its ``(ok, result or exception)`` from ``Repository.run_batch``
Job = tuple[AccessContext, Callable[[UnitOfWork], Any], "asyncio.Future[tuple[bool, Any]]"]


class GroupCommitter:
    def __init__(self, repository: Repository, max_batch: int = 64, *, in_thread: bool = False) -> None:
        self.repository = repository
        self.max_batch = max_batch
        self._queue: list[Job] = []
        self._scheduled = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit") if in_thread else None
        self._running = False

    async def submit(self, ctx: AccessContext, fn: Callable[[UnitOfWork], T]) -> T:
        """``fn``'s result once its batch has committed; its own exception if it failed (its
        savepoint rolled back); the commit's exception if the shared commit failed."""
        ok, value = await self.submit_outcome(ctx, fn)
        if ok:
            return cast(T, value)
        raise value

    async def submit_outcome(self, ctx: AccessContext, fn: Callable[[UnitOfWork], Any]) -> tuple[bool, Any]:
        """``(True, result)`` or ``(False, exception)`` for ``fn`` once its batch has committed,
        as :meth:`Repository.run_batch` gives them; raises only when the shared commit failed
        (then nothing of the batch landed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        self._queue.append((ctx, fn, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def close(self) -> None:
        """Let the commit thread go once the batch it runs (if any) is done."""
        if self._thread is not None:
            self._thread.shutdown(wait=False)

    def _take(self) -> list[Job]:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return [job for job in batch if not job[2].cancelled()]

    def _flush(self) -> None:
        self._scheduled = False
        if self._running:
            return  # the batch being committed schedules the next when it is done
        loop = asyncio.get_running_loop()
        live = self._take()
        if self._queue:
            self._scheduled = True
            loop.call_soon(self._flush)
        if not live:
            return
        jobs = [(ctx, fn) for ctx, fn, _ in live]
        if self._thread is None:
            try:
                outcomes = self.repository.run_batch(jobs)
            except BaseException as exc:  # the shared commit failed: nobody's write landed
                self._fail(live, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            self._deliver(live, outcomes)
            return
        self._running = True
        done = loop.run_in_executor(self._thread, self.repository.run_batch, jobs)
        done.add_done_callback(lambda f: self._finished(live, f))

    def _finished(self, live: list[Job], done: asyncio.Future[list[tuple[bool, Any]]]) -> None:
        self._running = False
        exc = done.exception() if not done.cancelled() else RuntimeError("the commit was cancelled")
        if exc is not None:
            self._fail(live, exc)
        else:
            self._deliver(live, done.result())
        if self._queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    @staticmethod
    def _fail(live: list[Job], exc: BaseException) -> None:
        for _, _, future in live:
            if not future.done():
                future.set_exception(exc)

    @staticmethod
    def _deliver(live: list[Job], outcomes: list[tuple[bool, Any]]) -> None:
        for (_, _, future), outcome in zip(live, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
