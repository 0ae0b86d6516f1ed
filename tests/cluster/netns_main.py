"""Run ``voicepocket serve --cluster auto`` inside a private network namespace.

Started as ``unshare -n -- python netns_main.py SOCKET PORT``: brings up ``lo`` and a veth
with an address of its own (as a host has), starts the
service (Ray and all its gRPC servers see only this namespace's loopback), and bridges the
Unix socket SOCKET (a file, reachable from the test's own namespace) to 127.0.0.1:PORT
here. SIGTERM stops the service, then the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

HOST_ADDRESS = "10.231.0.1"
"""The namespace's own non-loopback address (a veth whose peer is in it too)."""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _bridge(socket_path: str, port: int, service: subprocess.Popen[bytes]) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))

    server = await asyncio.start_unix_server(handle, path=socket_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    while not stop.is_set() and service.poll() is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    server.close()
    if service.poll() is None:
        service.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(service.wait, 60)
        except subprocess.TimeoutExpired:
            service.kill()


def main() -> None:
    socket_path, port = sys.argv[1], int(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # An address besides loopback, as a real host has: Ray takes the outbound one as its
    # node IP unless the service keeps it on loopback (the listener test checks it does).
    for command in (
        "link add vp-host type veth peer name vp-peer", f"addr add {HOST_ADDRESS}/24 dev vp-host",
        "link set vp-host up", "link set vp-peer up", "route add default dev vp-host",
    ):
        subprocess.run(["ip", *command.split()], check=True)
    service = subprocess.Popen(
        [sys.executable, "-m", "voicepocket.cli", "serve", "--cluster", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        env=os.environ.copy(),
    )  # fmt: skip
    asyncio.run(_bridge(socket_path, port, service))
    sys.exit(service.returncode or 0)


if __name__ == "__main__":
    main()
