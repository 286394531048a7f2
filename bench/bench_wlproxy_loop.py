"""The Wayland proxy's own cost per round trip, without the scheduler in it.

    bench/run.sh bench_wlproxy_loop.py [--rounds N] [--trips N]

``bench_wayland.py`` measures what a client sees, which on a loaded machine is
mostly the two wake-ups a proxy adds.  This drives one
:class:`~hakurei.app.wlproxy.loop.Proxy` by hand in one process: a client
socket sends ``wl_display.sync``, ``Proxy.poll`` forwards it to a plain
listening socket standing in for the compositor, which answers with
``wl_callback.done`` and ``wl_display.delete_id``, and ``Proxy.poll``
forwards those back.  Only the two ``poll`` calls are timed: the proxy's
epoll_wait, recvmsg and send plus its Python, per round trip.  Prints the
median of each round; the lowest is the best guide on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import struct
import tempfile
import time

from hakurei.app.wlproxy.allow import DEFAULT_ALLOW
from hakurei.app.wlproxy.loop import Proxy

REQUEST = struct.pack("=III", 1, 12 << 16, 5)  # wl_display.sync(callback 5)
REPLY = struct.pack("=III", 5, 12 << 16, 42) + struct.pack("=III", 1, 12 << 16 | 1, 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--trips", type=int, default=5000)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="hk-wll.", dir="/tmp")
    try:
        upstream = socket.socket(socket.AF_UNIX)
        upstream.bind(f"{d}/up")
        upstream.listen(1)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(f"{d}/px")
        listener.listen(1)
        proxy = Proxy(listener, f"{d}/up", DEFAULT_ALLOW, log=False)
        client = socket.socket(socket.AF_UNIX)
        client.connect(f"{d}/px")
        proxy.poll(5.0)  # accepts, and connects upstream
        compositor, _ = upstream.accept()

        def trip() -> int:
            client.send(REQUEST)
            t0 = time.perf_counter_ns()
            proxy.poll(5.0)
            t1 = time.perf_counter_ns()
            if compositor.recv(100) != REQUEST:
                raise SystemExit("the request did not arrive intact")
            compositor.send(REPLY)
            t2 = time.perf_counter_ns()
            proxy.poll(5.0)
            t3 = time.perf_counter_ns()
            if client.recv(100) != REPLY:
                raise SystemExit("the reply did not arrive intact")
            return t1 - t0 + t3 - t2

        for _ in range(1000):  # warm-up
            trip()
        meds = [
            statistics.median(trip() for _ in range(args.trips)) / 1e3 for _ in range(args.rounds)
        ]
        print(
            f"proxy per sync round trip: min {min(meds):.2f} us, "
            f"median {statistics.median(meds):.2f} us"
            f"  (round medians {', '.join(f'{m:.2f}' for m in meds)}; {args.trips} trips each)"
        )
        proxy.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
