"""The MLLP listener over real sockets: framing, concurrency, resend after a lost ACK,
oversize and malformed frames, idle timeout, graceful shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from gp_samples import SR, referral

from adapters.gp_referral.mllp import Limits, MllpServer


def frame(raw: bytes) -> bytes:
    return b"\x0b" + raw + b"\x1c\r"


async def read_ack(reader: asyncio.StreamReader) -> list[str]:
    data = await reader.readuntil(b"\x1c\r")
    assert data[:1] == b"\x0b"
    return data[1:-2].decode().split("\r")


def with_server(repo: Any, body: Any, limits: Limits | None = None) -> Any:
    async def main() -> Any:
        server = MllpServer(repo, limits=limits or Limits())
        port = await server.start("127.0.0.1", 0)
        try:
            return await body(port, server)
        finally:
            await server.stop()
    return asyncio.run(main())


def test_acks_and_concurrency(repo: Any, fhir: Any) -> None:
    async def body(port: int, server: MllpServer) -> list[str]:
        async def client(n: int) -> list[str]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got = []
            for i in range(5):
                writer.write(frame(referral(f"C{n}-{i}", nhs="9434765919")))
                await writer.drain()
                got.append((await read_ack(reader))[1])
            writer.close()
            return got
        results = await asyncio.gather(*(client(n) for n in range(8)))
        return [a for r in results for a in r]
    acks = with_server(repo, body)
    assert len(acks) == 40 and all(a.startswith("MSA|AA|") for a in acks)
    assert len(fhir.get("ServiceRequest?_count=100").json()["entry"]) == 40


def test_resend_after_lost_ack_does_not_duplicate(repo: Any, fhir: Any) -> None:
    msg = referral("RS1")

    async def body(port: int, server: MllpServer) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(msg))
        await writer.drain()
        writer.close()  # the sender goes away before reading its ACK
        while not server.received:
            await asyncio.sleep(0.001)
        await server.settled()  # landed, and the ACK went nowhere
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(msg))
        await writer.drain()
        got = await read_ack(reader)
        writer.close()
        return got
    got = with_server(repo, body)
    assert got[1] == "MSA|AA|RS1I12"
    sr = fhir.get(f"ServiceRequest?identifier={SR}|RS1").json()["entry"]
    assert len(sr) == 1 and sr[0]["resource"]["meta"]["versionId"] == "1"


def test_bad_content_gets_ae_and_junk_is_skipped(repo: Any) -> None:
    async def body(port: int, server: MllpServer) -> tuple[list[str], list[str]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"garbage before a frame" + frame(referral("B1", nhs="1234567890")))
        await writer.drain()
        first = await read_ack(reader)
        writer.write(frame(b"not hl7 at all"))
        await writer.drain()
        second = await read_ack(reader)
        writer.close()
        return first, second
    first, second = with_server(repo, body)
    assert first[1].startswith("MSA|AE|B1I12") and first[2].startswith("ERR||PID^1^3|102")
    assert second[1].startswith("MSA|AR|")


def test_oversize_message_answered_and_closed(repo: Any) -> None:
    async def body(port: int, server: MllpServer) -> tuple[list[str], bytes, list[str]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0b" + b"MSH|" + b"x" * 5000)
        await writer.drain()
        got = await read_ack(reader)
        rest = await reader.read()
        # the listener is still up for the next sender
        reader, writer2 = await asyncio.open_connection("127.0.0.1", port)
        writer2.write(frame(referral("OK2")))
        await writer2.drain()
        ok = await read_ack(reader)
        writer2.close()
        return got, rest, ok
    got, rest, ok = with_server(repo, body, Limits(max_message=1000))
    assert got[1].startswith("MSA|AR|") and rest == b""
    assert ok[1] == "MSA|AA|OK2I12"


def test_idle_connection_closed(repo: Any) -> None:
    async def body(port: int, server: MllpServer) -> bytes:
        reader, _writer = await asyncio.open_connection("127.0.0.1", port)
        return await reader.read()  # returns when the listener closes the connection
    assert with_server(repo, body, Limits(idle_timeout=0.2)) == b""


def test_graceful_shutdown_finishes_in_flight(repo: Any, fhir: Any) -> None:
    async def main() -> list[str]:
        server = MllpServer(repo)
        port = await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        idle_reader, _idle_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(referral("GS1")))
        await writer.drain()
        while not server.received:
            await asyncio.sleep(0.001)
        stopping = asyncio.create_task(server.stop())
        got = await read_ack(reader)
        await stopping
        assert await idle_reader.read() == b""
        return got
    assert asyncio.run(main())[1] == "MSA|AA|GS1I12"
    assert len(fhir.get(f"ServiceRequest?identifier={SR}|GS1").json()["entry"]) == 1


def test_group_commit_across_connections_acks_after_commit(repo: Any, fhir: Any) -> None:
    """Eight senders at once: their messages share commits (each in its own savepoint), a
    bad one among them is answered AE and lands nothing, and every AA arrives only when
    its message is committed (another connection to the store sees it)."""
    sizes: list[int] = []
    run_batch = repo.run_batch

    def observed(jobs: list[Any]) -> list[Any]:
        sizes.append(len(jobs))
        return run_batch(jobs)

    repo.run_batch = observed
    problems: list[str] = []

    async def body(port: int, server: MllpServer) -> list[str]:
        async def client(n: int) -> list[str]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got = []
            for i in range(4):
                bad = n == 3 and i == 2
                writer.write(frame(referral(f"G{n}-{i}", nhs="9434765918" if bad else "9434765919")))
                await writer.drain()
                msa = (await read_ack(reader))[1]
                got.append(msa)
                committed = fhir.get(f"ServiceRequest?identifier={SR}|G{n}-{i}").json().get("entry", [])
                if msa.startswith("MSA|AA|") and not committed:
                    problems.append(f"AA for G{n}-{i} before its commit")
            writer.close()
            return got
        results = await asyncio.gather(*(client(n) for n in range(8)))
        return [a for r in results for a in r]

    acks = with_server(repo, body, Limits(workers=1))
    assert problems == []
    assert sum(a.startswith("MSA|AA|") for a in acks) == 31
    assert [a for a in acks if not a.startswith("MSA|AA|")] == ["MSA|AE|G3-2I12"]
    assert max(sizes) > 1 and sum(sizes) == 31  # shared commits; the AE never reached the store
    assert len(fhir.get("ServiceRequest?_count=100").json()["entry"]) == 31
    assert fhir.get(f"ServiceRequest?identifier={SR}|G3-2").json().get("entry", []) == []


def test_resend_on_a_new_connection_while_others_send(repo: Any, fhir: Any) -> None:
    """A sender drops its connection before the ACK and resends on a new one while other
    connections keep sending: the message is there once, at version 1."""
    msg = referral("RS2")

    async def body(port: int, server: MllpServer) -> list[str]:
        async def other(n: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(3):
                writer.write(frame(referral(f"O{n}-{i}", nhs="9434765870")))
                await writer.drain()
                await read_ack(reader)
            writer.close()

        async def dropper() -> list[str]:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame(msg))
            await writer.drain()
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame(msg))
            await writer.drain()
            got = await read_ack(reader)
            writer.close()
            return got
        results = await asyncio.gather(dropper(), *(other(n) for n in range(4)))
        return results[0]  # type: ignore[no-any-return]

    got = with_server(repo, body, Limits(workers=0))
    assert got[1] == "MSA|AA|RS2I12"
    sr = fhir.get(f"ServiceRequest?identifier={SR}|RS2").json()["entry"]
    assert len(sr) == 1 and sr[0]["resource"]["meta"]["versionId"] == "1"
    assert len(fhir.get("ServiceRequest?_count=100").json()["entry"]) == 13
