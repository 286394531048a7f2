"""A stub Wayland compositor, the proxy in a thread, and a raw test client.

The stub speaks just enough of the protocol to drive the proxy: it answers
``wl_display.get_registry`` with :data:`GLOBALS`, ``wl_display.sync`` with
``wl_callback.done``, records binds and the fds it receives, and has a few
test hooks on made-up object ids (see :class:`Stub`).  One thread per
connection, blocking I/O: it is the trusted side, and simple.
"""

from __future__ import annotations

import array
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hakurei.app.wlproxy import DEFAULT_ALLOW, Proxy, wire

GLOBALS = [
    (1, b"wl_compositor", 4),
    (2, b"zwlr_screencopy_manager_v1", 3),
    (3, b"wl_shm", 1),
    (4, b"zwp_virtual_keyboard_manager_v1", 1),
    (5, b"xdg_wm_base", 2),
]
SHOWN = [g for g in GLOBALS if g[1] in DEFAULT_ALLOW]

#: Test hooks: requests on these object ids make the stub act.
HOOK_FD_BACK = 0xFEED0001  # send an event carrying a fresh pipe's write end
HOOK_FLOOD = 0xFEED0002  # send u32 arg * 1 KiB of events, nonblocking; note EAGAIN
HOOK_ERROR = 0xFEED0003  # send wl_display.error and hang up
HOOK_REMOVE = 0xFEED0004  # global_remove for every global, on every registry
#: Events sent by the stub on this object id carry test payloads.
EVENT_OBJ = 0xFEED0100


class Stub:
    """A compositor stub listening at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.binds: list[tuple[int, bytes]] = []
        self.fds_seen = 0
        self.blocked = threading.Event()
        self.read_ends: list[int] = []  # pipes' read ends whose write ends it sent
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        registries: list[int] = []
        try:
            while True:
                data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(253 * 4))
                for fd in recv_fds(anc):
                    with self.lock:
                        self.fds_seen += 1
                    if _is_pipe_writer(fd):
                        os.write(fd, b"s")
                    os.close(fd)
                if not data:
                    return
                buf += data
                while len(buf) >= 8:
                    obj, opcode, size = wire.header(buf)
                    if len(buf) < size:
                        break
                    msg = bytes(buf[:size])
                    del buf[:size]
                    if not self._handle(conn, registries, obj, opcode, msg):
                        return
        except (OSError, wire.WireError):
            return
        finally:
            with self.lock:
                if conn in self.conns:
                    self.conns.remove(conn)
            conn.close()

    def _handle(
        self, conn: socket.socket, registries: list[int], obj: int, opcode: int, msg: bytes
    ) -> bool:
        if obj == 1 and opcode == wire.DISPLAY_GET_REGISTRY:
            reg = wire.new_id(msg)
            registries.append(reg)
            conn.sendall(b"".join(wire.encode_global(reg, n, i, v) for n, i, v in GLOBALS))
        elif obj == 1 and opcode == wire.DISPLAY_SYNC:
            conn.sendall(wire.message(wire.new_id(msg), 0, struct.pack("=I", 42)))
        elif obj in registries and opcode == wire.REGISTRY_BIND:
            name, iface, _, _ = wire.bind(msg)
            with self.lock:
                self.binds.append((name, iface))
        elif obj == HOOK_FD_BACK:
            r, w = os.pipe()
            with self.lock:  # before the event: a client that got it may look at once
                self.read_ends.append(r)
            send(conn, wire.message(EVENT_OBJ, 1, b""), [w])
            os.close(w)
        elif obj == HOOK_FLOOD:
            (kib,) = struct.unpack_from("=I", msg, 8)
            chunk = wire.message(EVENT_OBJ, 2, b"\0" * 1016)
            conn.setblocking(False)
            data = memoryview(chunk * kib)
            while data:
                try:
                    data = data[conn.send(data) :]
                except BlockingIOError:
                    self.blocked.set()
                    conn.setblocking(True)
                    conn.sendall(data)
                    break
            conn.setblocking(True)
        elif obj == HOOK_ERROR:
            conn.sendall(wire.display_error(1, 3, b"stub says no"))
            return False
        elif obj == HOOK_REMOVE:
            for reg in registries:
                for n, _, _ in GLOBALS:
                    conn.sendall(wire.message(reg, 1, struct.pack("=I", n)))
        return True


def _is_pipe_writer(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_WRONLY)


def recv_fds(anc: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % 4])
            fds.extend(a)
    return fds


def send(sock: socket.socket, data: bytes, fds: Sequence[int] = ()) -> None:
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sent = sock.sendmsg([data], anc)
    if sent < len(data):
        sock.sendall(data[sent:])


class Client:
    """A raw Wayland client: sends bytes and fds, reads whole messages."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.connect(str(path))
        self.sock.settimeout(20)
        self.buf = bytearray()
        self.fds: list[int] = []
        self.next_id = 2
        self.eof = False

    def close(self) -> None:
        self.sock.close()
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        send(self.sock, data, fds)

    def read(self) -> bool:
        """One read; False at EOF (or a reset, which is how a dropped client may see it)."""
        try:
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(253 * 4))
        except ConnectionResetError:
            data, anc = b"", []
        self.fds.extend(recv_fds(anc))
        self.buf += data
        self.eof = not data
        return bool(data)

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """Whole messages read so far, consumed."""
        while len(self.buf) >= 8:
            obj, opcode, size = wire.header(self.buf)
            if len(self.buf) < size:
                return
            msg = bytes(self.buf[:size])
            del self.buf[:size]
            yield obj, opcode, msg

    def until(self, obj: int, opcode: int) -> list[tuple[int, int, bytes]]:
        """Messages up to and including the first on ``obj`` with ``opcode``."""
        seen: list[tuple[int, int, bytes]] = []
        while True:
            for m in self.messages():
                seen.append(m)
                if m[:2] == (obj, opcode):
                    return seen
            if not self.read():
                raise EOFError(f"hung up before {obj}.{opcode}; saw {[m[:2] for m in seen]}")

    def roundtrip(self) -> list[tuple[int, int, bytes]]:
        cb = self.new_id()
        self.send(wire.encode_sync(cb))
        return self.until(cb, 0)

    def registry(self) -> tuple[int, list[tuple[int, bytes, int]]]:
        reg = self.new_id()
        self.send(wire.encode_get_registry(reg))
        return reg, [wire.global_(m) for o, op, m in self.roundtrip() if (o, op) == (reg, 0)]

    def until_eof(self) -> list[tuple[int, int, bytes]]:
        seen: list[tuple[int, int, bytes]] = []
        while True:
            seen.extend(self.messages())
            if not self.read():
                return seen


class ProxyThread:
    """The proxy's loop in a thread of this process, stoppable, failing loudly."""

    def __init__(self, listen: Path, upstream: Path) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(str(listen))
        sock.listen(64)
        self.proxy = Proxy(sock, str(upstream), DEFAULT_ALLOW, log=False)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        #: The most bytes one client's pair ever held, sampled after each poll.
        self.max_held = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.proxy.poll(0.02)
                for p in self.proxy.pairs:
                    held = sum(len(e.out) + len(e.inbuf) for e in (p.client, p.upstream))
                    self.max_held = max(self.max_held, held)
        except BaseException as e:
            self.error = e
            raise

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.proxy.close()
        self.proxy.listener.close()
        assert self.error is None, self.error


@contextmanager
def proxied(tmp: Path) -> Iterator[tuple[Stub, ProxyThread, Path]]:
    """A stub compositor at ``tmp/up`` and the proxy at ``tmp/proxy`` in front of it."""
    stub = Stub(tmp / "up")
    proxy = ProxyThread(tmp / "proxy", tmp / "up")
    try:
        yield stub, proxy, tmp / "proxy"
    finally:
        proxy.close()
        stub.close()


def open_fds() -> set[int]:
    """This process's open fds (not counting the one that lists them, closed by then)."""
    return {int(n) for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{n}")}


def settle_fds(baseline: set[int], deadline: float = 10.0) -> set[int]:
    """Poll until this process holds no more fds than ``baseline`` (threads close theirs async).

    Counted, not matched by number: the proxy keeps one spare upstream
    socket for its next client, which a client's visit moves to a new number.
    """
    end = time.monotonic() + deadline
    while True:
        now = open_fds()
        if len(now) <= len(baseline):
            return set()
        if time.monotonic() > end:
            return now - baseline
        time.sleep(0.01)
