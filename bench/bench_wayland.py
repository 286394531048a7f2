"""The filtering Wayland proxy's cost: frames per second and wl_display.sync latency.

    bench/run.sh bench_wayland.py [-n ROUNDS] [--seconds S] [--syncs N]

Starts its own headless weston (pixman renderer, so frames are really
composited) and the proxy (``python -m hakurei.app.wlproxy``) in front of it,
then runs, per round and in alternating order, direct and proxied:

* **frames**: ``weston-simple-shm`` for ``--seconds``; a frame is a
  ``wl_callback.done`` in its ``WAYLAND_DEBUG=client`` trace (the trace costs
  both variants the same).  CPU per frame is the client's (``wait4``) plus
  weston's and, proxied, the proxy's (``/proc/PID/stat`` deltas) over the
  frames counted.  Weston's headless output repaints at 60 Hz, so frames per
  second only shows whether the proxy makes the client *miss* frames; CPU
  per frame is where its work shows.
* **sync**: a stdlib client sends ``wl_display.sync`` and waits for its
  ``wl_callback.done``, ``--syncs`` times on one connection; median and p99.

With a C compiler (``cc``) on the machine, a third variant runs through
``null_relay`` (bench/null_relay.c, built here): a relay in C that parses
nothing and only passes bytes and fds on, the cheapest proxy any process
could be.  What it adds to a round trip is the floor of every proxy that
lives in a process of its own; hakurei's proxy is measured against both.

Report the medians over rounds; the proxied/direct ratio is the number issue
8 asks to keep within 10 %.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CLK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """User + system seconds of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def wait_for(path: str, proc: subprocess.Popen[bytes], deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
                return
            except OSError:
                if time.monotonic() > end:
                    raise SystemExit(f"nothing listens at {path} after {deadline} s") from None
        time.sleep(0.05)


def frames(env: dict[str, str], seconds: float, others: list[int]) -> tuple[float, float]:
    """(frames per second, CPU ms per frame) of weston-simple-shm for ``seconds``."""
    proc = subprocess.Popen(
        ["weston-simple-shm"],
        env={**env, "WAYLAND_DEBUG": "client"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    count, buf, start, cpu0 = 0, b"", 0.0, 0.0
    end = float("inf")
    while time.monotonic() < end:
        if not select.select([fd], [], [], 5)[0]:
            raise SystemExit("weston-simple-shm drew nothing for 5 s")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise SystemExit(f"weston-simple-shm exited with {proc.wait()}")
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop()
        for line in lines:
            if b"wl_callback@" in line and b".done(" in line:
                if not start:  # the first frame starts the clock
                    start, end = time.monotonic(), time.monotonic() + seconds
                    cpu0 = sum(cpu_of(p) for p in others)
                    client0 = cpu_of(proc.pid)
                else:
                    count += 1
    elapsed = time.monotonic() - start
    others_cpu = sum(cpu_of(p) for p in others) - cpu0
    client_cpu = cpu_of(proc.pid) - client0
    proc.kill()
    proc.wait()
    return count / elapsed, (client_cpu + others_cpu) / max(count, 1) * 1e3


def syncs(path: str, n: int) -> list[float]:
    """Round-trip times (s) of ``n`` wl_display.sync on one connection."""
    out: list[float] = []
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        buf = b""
        for i in range(n):
            cb = 2 + i
            t = time.perf_counter()
            s.sendall(struct.pack("=III", 1, 12 << 16, cb))
            while True:
                while len(buf) >= 8:
                    obj, word = struct.unpack_from("=II", buf)
                    size = word >> 16
                    if len(buf) < size:
                        break
                    buf = buf[size:]
                    if obj == cb:
                        break
                else:
                    buf += s.recv(65536)
                    continue
                break
            out.append(time.perf_counter() - t)
            # the delete_id that follows done is read with the next round's reply
    return out


def build_relay(tmp: str) -> str | None:
    """bench/null_relay.c compiled into ``tmp`` with the system's cc, or None without one."""
    cc = shutil.which("cc")
    if cc is None:
        return None
    out = os.path.join(tmp, "null_relay")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "null_relay.c")
    subprocess.run([cc, "-O2", "-o", out, src], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--syncs", type=int, default=2000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hk-wlb.", dir="/tmp")
    runtime = os.path.join(tmp, "rt")
    os.mkdir(runtime, 0o700)
    base = {"PATH": os.environ["PATH"], "HOME": tmp, "XDG_RUNTIME_DIR": runtime}
    weston = subprocess.Popen(
        ["weston", "--backend=headless-backend.so", "--use-pixman", "--socket=wayland-b",
         "--idle-time=0"],
        env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    upstream = os.path.join(runtime, "wayland-b")
    proxy_path = os.path.join(runtime, "proxy")
    proxy: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    relay_bin = build_relay(tmp)
    try:
        wait_for(upstream, weston)
        proxy = subprocess.Popen(
            [sys.executable, "-m", "hakurei.app.wlproxy", "--listen", proxy_path,
             "--upstream", upstream],
            env=base,
        )  # fmt: skip
        wait_for(proxy_path, proxy)
        variants = {
            "direct": (upstream, [weston.pid]),
            "proxy": (proxy_path, [weston.pid, proxy.pid]),
        }
        if relay_bin is not None:
            relay_path = os.path.join(runtime, "relay")
            relay = subprocess.Popen([relay_bin, relay_path, upstream], env=base)
            wait_for(relay_path, relay)
            variants["relay"] = (relay_path, [weston.pid, relay.pid])
        res: dict[str, dict[str, list[float]]] = {
            v: {"fps": [], "cpu": [], "p50": [], "p99": []} for v in variants
        }
        for path, _ in variants.values():  # warm-up
            syncs(path, 200)
        for r in range(args.rounds):
            names = list(variants)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                path, pids = variants[name]
                fps, cpu = frames({**base, "WAYLAND_DISPLAY": path}, args.seconds, pids)
                lat = sorted(syncs(path, args.syncs))
                res[name]["fps"].append(fps)
                res[name]["cpu"].append(cpu)
                res[name]["p50"].append(lat[len(lat) // 2] * 1e6)
                res[name]["p99"].append(lat[int(len(lat) * 0.99)] * 1e6)
        med = {v: {k: statistics.median(x) for k, x in d.items()} for v, d in res.items()}
        for v in variants:
            m = med[v]
            print(
                f"{v:7s} frames {m['fps']:6.1f}/s  cpu/frame {m['cpu']:.3f} ms  "
                f"sync p50 {m['p50']:.1f} us  p99 {m['p99']:.1f} us"
            )
        d = med["direct"]
        for v in variants:
            if v == "direct":
                continue
            p = med[v]
            print(
                f"{v}/direct: frames {p['fps'] / d['fps']:.3f}, "
                f"cpu/frame {p['cpu'] / d['cpu']:.2f}, "
                f"sync p50 {p['p50'] / d['p50']:.2f} (+{p['p50'] - d['p50']:.1f} us)"
            )
        print(f"[{args.rounds} rounds of {args.seconds} s and {args.syncs} syncs, interleaved]")
    finally:
        for helper in (proxy, relay):
            if helper is not None:
                helper.terminate()
                helper.wait()
        weston.terminate()
        weston.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
