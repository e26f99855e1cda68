"""The MLLP listener: HL7 v2 over TCP, one ACK per framed message.

Each message is converted, checked and indexed off the event loop (in worker processes
when there are several cores), then handed to a group committer: the messages that are
waiting from every connection land in one database transaction, each in its own
savepoint, and every connection gets its ACK only after that commit. So an AA always
follows the commit, a bad message rolls back alone (AE/AR, nothing of it lands), and a
message resent after a lost ACK finds what it wrote and writes nothing new (its
Provenance, and conditional updates on business identifiers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from adapters.common.landing import Planner, job, outcome
from adapters.common.result import Problem
from adapters.gp_referral import ingest
from adapters.gp_referral.ack import ack
from adapters.gp_referral.mapping import Mapping, load
from server.consent.context import AccessContext
from server.store.group_commit import GroupCommitter
from server.store.repository import Repository

log = logging.getLogger("carebridge.mllp")
SB, EB, CR = 0x0B, 0x1C, 0x0D


@dataclass
class Limits:
    idle_timeout: float = 300.0
    max_message: int = 1 << 20
    #: most messages in one commit
    batch: int = 200
    #: processes converting messages (None: one per core when there are several; 0: threads)
    workers: int | None = None


def _prepare_one(raw: bytes) -> ingest.Packed:
    return ingest.prepare_chunk([raw], keep_message=True)[0]


@dataclass
class MllpServer:
    repo: Repository
    mapping: Mapping = field(default_factory=load)
    limits: Limits = field(default_factory=Limits)
    _committer: GroupCommitter | None = None
    _pool: Executor | None = None
    _planner: Planner | None = None
    _server: asyncio.base_events.Server | None = None
    _connections: set[asyncio.Task[Any]] = field(default_factory=set)
    _reading: set[asyncio.Task[Any]] = field(default_factory=set)
    _in_flight: int = 0
    _received: int = 0
    _idle: asyncio.Event | None = None
    _stopping: bool = False

    async def start(self, host: str = "127.0.0.1", port: int = 2575) -> int:
        self._committer = GroupCommitter(self.repo, self.limits.batch, in_thread=True)
        self._planner = Planner(self.repo)
        workers = ingest.default_workers() if self.limits.workers is None else self.limits.workers
        if workers > 0:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=ingest.start_worker,
                                             initargs=(self.repo, self.mapping, self._planner.key))
        self._idle = asyncio.Event()
        self._idle.set()
        self._server = await asyncio.start_server(self._connection, host, port, limit=self.limits.max_message + 16)
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def in_flight(self) -> int:
        """Messages received and not yet answered."""
        return self._in_flight

    @property
    def received(self) -> int:
        """Messages received since the start."""
        return self._received

    async def settled(self) -> None:
        """Wait until no message is being landed (every one received so far has its outcome)."""
        assert self._idle is not None
        await self._idle.wait()

    async def stop(self) -> None:
        """Stop accepting, let connections finish the message they are in, then stop."""
        self._stopping = True
        if self._server:
            self._server.close()
        for task in list(self._reading):  # waiting for a next message: nothing in flight
            task.cancel()
        await self.settled()
        # the rest are writing the ACK of a landed message; they stop after it
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._committer is not None:
            self._committer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    async def _land(self, raw: bytes) -> bytes:
        """The ACK for one message, once it has landed (or why it did not)."""
        assert self._committer is not None and self._planner is not None
        loop = asyncio.get_running_loop()
        if self._pool is not None:
            c = ingest.unpack(await loop.run_in_executor(self._pool, _prepare_one, raw))
        else:
            c = await loop.run_in_executor(None, ingest.prepare, raw, self.mapping, self._planner)
        if not c.ok:
            return ack(c.message, c.problems)
        item = c.planned or c.landable()
        try:
            ok, value = await self._committer.submit_outcome(AccessContext.system("carebridge-mllp"), job(item))
        except Exception as exc:  # the shared commit failed: nothing landed, the sender may retry
            log.exception("commit failed")
            return ack(c.message, [Problem(f"store unavailable: {exc}", code="207", reject=True)])
        return ack(c.message, outcome(item, ok, value).problems)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("connection %s ended: %s", peer, exc)
        finally:
            self._connections.discard(task)
            self._reading.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        while not self._stopping:
            task = asyncio.current_task()
            assert task is not None
            self._reading.add(task)
            try:
                chunk = await asyncio.wait_for(reader.read(65536), self.limits.idle_timeout)
            except TimeoutError:
                log.info("idle timeout")
                return
            finally:
                self._reading.discard(task)
            if not chunk:
                return
            buf += chunk
            while True:
                start = buf.find(SB)
                if start < 0:
                    if buf.strip():
                        log.warning("discarding %d bytes outside an MLLP frame", len(buf))
                    buf.clear()
                    break
                if start > 0:
                    del buf[:start]
                end = buf.find(bytes([EB, CR]))
                if end < 0:
                    if len(buf) > self.limits.max_message:
                        writer.write(_frame(ack(None, [Problem(
                            f"message larger than {self.limits.max_message} bytes", code="207", reject=True)])))
                        await writer.drain()
                        return
                    break
                message = bytes(buf[1:end])
                del buf[: end + 2]
                if SB in message:  # a new start block before the end: the first frame is broken
                    message = message[message.rfind(SB) + 1 :]
                reply = await self._submit(message)
                writer.write(_frame(reply))
                await writer.drain()

    async def _submit(self, message: bytes) -> bytes:
        """Land one message; shielded, so that a dropped connection does not cut a landing short."""
        assert self._idle is not None
        self._in_flight += 1
        self._received += 1
        self._idle.clear()
        task = asyncio.ensure_future(self._land(message))

        def finished(_: asyncio.Future[bytes]) -> None:
            self._in_flight -= 1
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()

        task.add_done_callback(finished)
        return await asyncio.shield(task)


def _frame(payload: bytes) -> bytes:
    return bytes([SB]) + payload + bytes([EB, CR])


def serve_forever(repo: Repository, host: str, port: int, limits: Limits) -> None:
    async def main() -> None:
        server = MllpServer(repo, limits=limits)
        bound = await server.start(host, port)
        print(f"carebridge mllp: listening on {host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()
        print("carebridge mllp: stopped", flush=True)

    asyncio.run(main())
