#!/usr/bin/env python3
"""A QUIC peer that is not tether: an aioquic server that echoes every
datagram (RFC 9221) back to its sender.

Used by transports/tests/quic_aioquic.rs. Prints "READY <port>" once bound
(port 0 picks a free port), then serves until killed.

    python3 aioquic_echo.py --cert cert.pem --key key.pem --port 0
"""

import argparse
import asyncio
import sys

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import DatagramFrameReceived


class EchoProtocol(QuicConnectionProtocol):
    def quic_event_received(self, event):
        if isinstance(event, DatagramFrameReceived):
            self._quic.send_datagram_frame(event.data)
            self.transmit()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--alpn", default="tether")
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    args = parser.parse_args()

    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=[args.alpn],
        max_datagram_frame_size=65536,
        idle_timeout=args.idle_timeout,
    )
    configuration.load_cert_chain(args.cert, args.key)
    server = await serve(
        args.host,
        args.port,
        configuration=configuration,
        create_protocol=EchoProtocol,
    )
    port = server._transport.get_extra_info("sockname")[1]
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
