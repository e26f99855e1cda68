"""The MLLP listener: HL7 v2 over TCP, one ACK per framed message.

Messages from every connection go to one queue; a single writer lands whatever is waiting
in one commit (each message in its own savepoint) and only then answers. So an AA always
follows the commit, and a message resent after a lost ACK finds what it wrote and writes
nothing new (conditional updates on business identifiers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from adapters.common.landing import land
from adapters.common.result import Problem
from adapters.gp_referral.ack import ack
from adapters.gp_referral.convert import convert
from adapters.gp_referral.mapping import Mapping, load
from server.store.repository import Repository

log = logging.getLogger("carebridge.mllp")
SB, EB, CR = 0x0B, 0x1C, 0x0D


@dataclass
class Limits:
    idle_timeout: float = 300.0
    max_message: int = 1 << 20
    batch: int = 200


@dataclass
class MllpServer:
    repo: Repository
    mapping: Mapping = field(default_factory=load)
    limits: Limits = field(default_factory=Limits)
    _queue: asyncio.Queue[tuple[bytes, asyncio.Future[bytes]]] | None = None
    _server: asyncio.base_events.Server | None = None
    _writer_task: asyncio.Task[None] | None = None
    _connections: set[asyncio.Task[Any]] = field(default_factory=set)
    _reading: set[asyncio.Task[Any]] = field(default_factory=set)
    _stopping: bool = False

    async def start(self, host: str = "127.0.0.1", port: int = 2575) -> int:
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._writer())
        self._server = await asyncio.start_server(self._connection, host, port, limit=self.limits.max_message + 16)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, let connections finish the message they are in, then land what is queued."""
        self._stopping = True
        if self._server:
            self._server.close()
        for task in list(self._reading):  # waiting for a next message: nothing in flight
            task.cancel()
        if self._queue is not None:
            await self._queue.join()
        # the rest are writing the ACK of a landed message; they stop after it
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._writer_task:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task

    async def _writer(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < self.limits.batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                acks = await loop.run_in_executor(None, self._land, [raw for raw, _ in items])
            except Exception as exc:  # the shared commit failed: nothing landed, the sender may retry
                log.exception("commit failed")
                acks = [ack(None, [Problem(f"store unavailable: {exc}", code="207", reject=True)])] * len(items)
            for (_, fut), reply in zip(items, acks, strict=True):
                if not fut.done():
                    fut.set_result(reply)
                self._queue.task_done()

    def _land(self, raws: list[bytes]) -> list[bytes]:
        converted = [convert(r, self.mapping) for r in raws]
        ready = [c for c in converted if c.ok]
        outcomes = iter(land(self.repo, [c.landable() for c in ready]))
        replies = []
        for c in converted:
            problems = list(c.problems) if not c.ok else next(outcomes).problems
            replies.append(ack(c.message, problems))
        return replies

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
        assert self._queue is not None
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        await self._queue.put((message, fut))
        return await asyncio.shield(fut)


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
