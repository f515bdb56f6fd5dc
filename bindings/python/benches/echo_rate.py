"""Message rate through the ctypes binding: a Python client keeps 64
messages in flight to a tether server whose Python callback echoes them.

Every message crosses ctypes four times (client send, server event, server
send, client event), so the figure is what a Python program gets end to
end, not what libtether can do (see scripts/bench-c for the C figure).

    python3 bindings/python/benches/echo_rate.py [SIZE] [MESSAGES] [ROUNDS]

Prints one line per round and the median, e.g.
    python echo 64 B: median 41000 msg/s (2.6 MB/s) over 5 rounds
"""

from __future__ import annotations

import statistics
import sys
import time

import tether
from tether import Event, EventKind

WINDOW = 64


def one_round(server: tether.Server, size: int, messages: int) -> float:
    payload = bytes(i % 256 for i in range(size))
    with tether.Client(server.url) as client:
        for ev in client.events(timeout=10):
            if ev.kind == EventKind.CONNECTED:
                break
        sent = received = 0
        start = time.perf_counter()
        while received < messages:
            while sent < messages and sent - received < WINDOW:
                client.send(payload)
                sent += 1
            ev = client.next_event(timeout=10)
            if ev.kind == EventKind.MESSAGE:
                assert len(ev.data) == size
                received += 1
                # Take what else is ready without waiting.
                while received < messages:
                    more = client.poll_event()
                    if more is None:
                        break
                    if more.kind == EventKind.MESSAGE:
                        received += 1
            elif ev.kind in (EventKind.DISCONNECTED, EventKind.FAILED):
                raise RuntimeError(f"the connection ended: {ev.detail}")
        return messages / (time.perf_counter() - start)


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    holder: list[tether.Server] = []

    def echo(ev: Event) -> None:
        if ev.kind == EventKind.MESSAGE:
            holder[0].send(ev.conn, ev.data)

    with tether.Server("tcp://127.0.0.1:0", on_event=echo) as server:
        holder.append(server)
        one_round(server, size, messages // 10 + WINDOW)  # warm-up
        rates = []
        for r in range(rounds):
            rate = one_round(server, size, messages)
            rates.append(rate)
            print(f"python echo {size} B: round {r + 1}: {rate:.0f} msg/s")
        median = statistics.median(rates)
        print(
            f"python echo {size} B: median {median:.0f} msg/s ({median * size / 1e6:.1f} MB/s) "
            f"over {rounds} rounds, range {min(rates):.0f}-{max(rates):.0f}"
        )


if __name__ == "__main__":
    main()
