#!/usr/bin/env python
"""A userspace TCP delay proxy: every byte is forwarded after a fixed one-way delay, in order.

This kernel has no `tc netem`, so real latency between network namespaces is made here: a proxy in front
of a party's listening socket delays everything sent to it (and its replies) by --delay-ms.
Usage: python scripts/delay_proxy.py --listen HOST:PORT --to HOST:PORT --delay-ms D
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
    """Copy src to dst, each chunk released `delay` seconds after it arrived (one FIFO per direction)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    dst.write_eof()
                return
            dst.write(data)
            await dst.drain()

    sender = asyncio.create_task(release())
    try:
        while data := await src.read(1 << 16):
            queue.put_nowait((loop.time() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((loop.time() + delay, b""))
    with contextlib.suppress(ConnectionError, OSError):
        await sender


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def serve(listen: str, target: str, delay_ms: float) -> None:
    delay = delay_ms / 1000.0
    to_host, to_port = _split(target)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(to_host, to_port)
        except OSError:
            writer.close()
            return
        _nodelay(writer)
        _nodelay(up_writer)
        await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay))
        for w in (writer, up_writer):
            w.close()

    host, port = _split(listen)
    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"delay proxy {listen} -> {target}, {delay_ms:g} ms", flush=True)
    async with server:
        await stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    args = ap.parse_args()
    asyncio.run(serve(args.listen, args.to, args.delay_ms))


if __name__ == "__main__":
    main()
