"""An echo server process for the restart tests: binds tcp://127.0.0.1:PORT
(0 = kernel's choice), prints the port, echoes every message until killed."""

from __future__ import annotations

import signal
import sys

import tether


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tether.Server(f"tcp://127.0.0.1:{int(sys.argv[1])}") as server:
        print(server.port, flush=True)
        for ev in server.events():
            if ev.kind == tether.EventKind.MESSAGE:
                server.send(ev.conn, ev.data)


if __name__ == "__main__":
    main()
