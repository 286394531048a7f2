"""A Wayland compositor just real enough to test the security-context mode (Debian 12 has none).

    python3 fake_compositor.py SOCKET RECORD

Listens at SOCKET and serves any number of clients: ``wl_display.get_registry``
is answered with globals, ``wl_display.sync`` with ``done`` (and
``delete_id``), ``wl_registry.bind`` is remembered, and
``wp_security_context_manager_v1.create_listener`` takes the listening socket
and close fd, whose context's metadata and ``commit`` it records.  Clients
that connect through a committed listener are offered only the unprivileged
globals (no manager, no screencopy), as a real compositor's policy would
hide them.  When a close fd hangs up, that listener stops accepting and is
closed.  Every event goes to RECORD as one JSON line, flushed at once:
``{"event": "ready"}``, ``{"event": "listener", "engine":, "app_id":,
"instance_id":}``, ``{"event": "client", "via": "main"|"listener"}``,
``{"event": "hangup"}``, ``{"event": "error", "what":}``.

Stdlib only, one thread, no trust in clients beyond the test's needs.
"""

from __future__ import annotations

import array
import json
import os
import selectors
import socket
import struct
import sys

HEADER = struct.Struct("=II")
PRIVILEGED = {"wp_security_context_manager_v1": 1, "zwlr_screencopy_manager_v1": 3}
PLAIN = {"wl_compositor": 4, "wl_shm": 1, "xdg_wm_base": 2}


def record(out, **event: object) -> None:
    out.write(json.dumps(event) + "\n")
    out.flush()


def string(value: str) -> bytes:
    data = value.encode() + b"\0"
    return struct.pack("=I", len(data)) + data + b"\0" * (-len(data) % 4)


def msg(obj: int, opcode: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(obj, (8 + len(payload)) << 16 | opcode) + payload


class Client:
    def __init__(self, conn: socket.socket, via: str) -> None:
        self.conn, self.via = conn, via
        self.buffer = b""
        self.fds: list[int] = []
        #: object id → interface ("wl_registry", "wp_security_context_manager_v1", "context")
        self.objects: dict[int, str] = {}
        self.contexts: dict[int, dict[str, object]] = {}

    def globals(self) -> dict[str, int]:
        return PLAIN | PRIVILEGED if self.via == "main" else dict(PLAIN)


class Compositor:
    def __init__(self, path: str, out) -> None:
        self.out = out
        self.sel = selectors.DefaultSelector()
        main = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        main.bind(path)
        main.listen(16)
        self.sel.register(main, selectors.EVENT_READ, ("accept", "main"))

    def run(self) -> None:
        record(self.out, event="ready")
        while True:
            for key, _ in self.sel.select():
                kind, data = key.data
                if kind == "accept":
                    conn, _ = key.fileobj.accept()
                    record(self.out, event="client", via=data)
                    self.sel.register(conn, selectors.EVENT_READ, ("client", Client(conn, data)))
                elif kind == "client":
                    self.read(data)
                elif kind == "close_fd":
                    listener, close_fd = data
                    record(self.out, event="hangup")
                    self.sel.unregister(close_fd)
                    os.close(close_fd)
                    self.sel.unregister(listener)
                    listener.close()

    def drop(self, c: Client) -> None:
        self.sel.unregister(c.conn)
        c.conn.close()
        for fd in c.fds:
            os.close(fd)

    def read(self, c: Client) -> None:
        try:
            data, anc, _, _ = c.conn.recvmsg(4096, socket.CMSG_SPACE(28 * 4))
        except OSError:
            data, anc = b"", []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % 4])
                c.fds.extend(fds)
        if not data:
            self.drop(c)
            return
        c.buffer += data
        while len(c.buffer) >= 8:
            obj, word = HEADER.unpack_from(c.buffer)
            size, opcode = word >> 16, word & 0xFFFF
            if size < 8 or len(c.buffer) < size:
                break
            payload, c.buffer = c.buffer[8:size], c.buffer[size:]
            self.request(c, obj, opcode, payload)

    def request(self, c: Client, obj: int, opcode: int, payload: bytes) -> None:
        words = lambda n: struct.unpack_from(f"={n}I", payload)  # noqa: E731
        if obj == 1 and opcode == 0:  # sync
            (cb,) = words(1)
            c.conn.sendall(msg(cb, 0, struct.pack("=I", 1)) + msg(1, 1, struct.pack("=I", cb)))
        elif obj == 1 and opcode == 1:  # get_registry
            (reg,) = words(1)
            c.objects[reg] = "wl_registry"
            for name, (iface, version) in enumerate(
                sorted(c.globals().items(), key=lambda kv: kv[0]), start=1
            ):
                c.conn.sendall(msg(reg, 0, struct.pack("=I", name) + string(iface)
                                   + struct.pack("=I", version)))  # fmt: skip
        elif c.objects.get(obj) == "wl_registry" and opcode == 0:  # bind
            (name, length) = struct.unpack_from("=II", payload)
            iface = payload[8 : 8 + length - 1].decode()
            new = struct.unpack_from("=I", payload, 8 + length + (-length % 4) + 4)[0]
            if iface not in c.globals():
                record(self.out, event="error", what=f"bind of hidden {iface}")
                self.drop(c)
                return
            c.objects[new] = iface
        elif c.objects.get(obj) == "wp_security_context_manager_v1" and opcode == 1:
            (new,) = words(1)
            if len(c.fds) < 2:
                record(self.out, event="error", what="create_listener without two fds")
                return
            listen_fd, close_fd = c.fds.pop(0), c.fds.pop(0)
            c.objects[new] = "context"
            c.contexts[new] = {"listen": listen_fd, "close": close_fd}
        elif c.objects.get(obj) == "context" and opcode in (1, 2, 3):
            (length,) = words(1)
            key = {1: "engine", 2: "app_id", 3: "instance_id"}[opcode]
            c.contexts[obj][key] = payload[4 : 4 + length - 1].decode()
        elif c.objects.get(obj) == "context" and opcode == 4:  # commit
            ctx = c.contexts.pop(obj)
            listener = socket.socket(fileno=int(ctx.pop("listen")))
            close_fd = int(ctx.pop("close"))
            record(self.out, event="listener", **ctx)
            self.sel.register(listener, selectors.EVENT_READ, ("accept", "listener"))
            self.sel.register(close_fd, selectors.EVENT_READ, ("close_fd", (listener, close_fd)))


def main() -> None:
    path, record_path = sys.argv[1], sys.argv[2]
    with open(record_path, "a") as out:
        Compositor(path, out).run()


if __name__ == "__main__":
    main()
