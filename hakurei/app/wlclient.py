"""A minimal Wayland client over the wire protocol: the launcher's own talk with the compositor.

The launcher asks the user's compositor two things, as the user, before the
app starts: which globals it offers (to choose a mode) and, where it offers
``wp_security_context_manager_v1``, for a listening socket of the app's own.
That needs a handful of requests, so this speaks the protocol with the
stdlib (``socket``, ``sendmsg`` with ``SCM_RIGHTS``) rather than depend on
pywayland (whose 0.4 segfaults at exit while a display is connected).

The wire format (wayland.freedesktop.org, "Wire Format"): each message is a
header of two native-endian 32-bit words, the object id and ``size << 16 |
opcode`` (size in bytes, header included, a multiple of 4), then arguments:
``uint``/``int``/``object``/``new_id`` one word each, a ``string`` a length
word (with the NUL) and the bytes padded to 4, an ``fd`` nothing in the
bytes (it travels as ancillary data with the message).  Object 1 is
``wl_display``; this client allocates ids from 2 up.

Everything the compositor sends is checked before use (lengths, NULs,
bounds): a confused or hostile compositor gets a ``WaylandError``, never an
exception from deep inside.
"""

from __future__ import annotations

import array
import os
import select
import socket
import struct
import time
from collections.abc import Sequence

#: wl_display requests and events (object 1)
DISPLAY = 1
SYNC, GET_REGISTRY = 0, 1
EV_ERROR, EV_DELETE_ID = 0, 1
#: wl_registry: request bind, events global and global_remove; wl_callback: event done
BIND = 0
EV_GLOBAL, EV_GLOBAL_REMOVE = 0, 1
EV_DONE = 0
#: libwayland's largest message
MAX_MESSAGE = 4096
_HEADER = struct.Struct("=II")
_WORD = struct.Struct("=I")


class WaylandError(Exception):
    """The compositor cannot be reached, refused a request, or spoke nonsense; one line."""


def uint(value: int) -> bytes:
    return _WORD.pack(value)


def string(value: str) -> bytes:
    """A ``string`` argument: its length with the NUL, the bytes, padding to 4."""
    data = value.encode() + b"\0"
    return _WORD.pack(len(data)) + data + b"\0" * (-len(data) % 4)


def message(obj: int, opcode: int, payload: bytes = b"") -> bytes:
    size = _HEADER.size + len(payload)
    if size > MAX_MESSAGE:
        raise WaylandError(f"message of {size} bytes is over the protocol's {MAX_MESSAGE}")
    return _HEADER.pack(obj, size << 16 | opcode) + payload


class Reader:
    """Arguments of one received message, read in order, every read bounds-checked."""

    def __init__(self, payload: bytes) -> None:
        self.data = payload
        self.at = 0

    def uint(self) -> int:
        if self.at + 4 > len(self.data):
            raise WaylandError("compositor sent a truncated message")
        (value,) = _WORD.unpack_from(self.data, self.at)
        self.at += 4
        return int(value)

    def string(self) -> str:
        length = self.uint()
        padded = length + (-length % 4)
        if length == 0 or self.at + padded > len(self.data):
            raise WaylandError("compositor sent a bad string")
        raw = self.data[self.at : self.at + length]
        self.at += padded
        if raw[-1:] != b"\0" or b"\0" in raw[:-1]:
            raise WaylandError("compositor sent a bad string")
        return raw[:-1].decode(errors="replace")


class Connection:
    """One client connection to a compositor socket."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise WaylandError(f"cannot connect to {path}: {os.strerror(e.errno or 0)}") from None
        self.next_id = 2
        self.buffer = b""
        #: name → (interface, version), once ``globals()`` ran
        self.registry: dict[int, tuple[str, int]] = {}
        self.registry_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            sent = self.sock.sendmsg([data], anc)
            if sent < len(data):
                self.sock.sendall(data[sent:])
        except OSError as e:
            raise WaylandError(f"compositor connection: {os.strerror(e.errno or 0)}") from None

    def _receive(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            raise WaylandError(f"compositor did not answer in {self.timeout:g} s")
        try:
            chunk = self.sock.recv(MAX_MESSAGE)
        except OSError as e:
            raise WaylandError(f"compositor connection: {os.strerror(e.errno or 0)}") from None
        if not chunk:
            raise WaylandError("compositor closed the connection")
        self.buffer += chunk

    def event(self, deadline: float) -> tuple[int, int, Reader]:
        """The next event: (object id, opcode, its arguments)."""
        while len(self.buffer) < _HEADER.size:
            self._receive(deadline)
        obj, word = _HEADER.unpack_from(self.buffer)
        size, opcode = word >> 16, word & 0xFFFF
        if size < _HEADER.size or size % 4 or size > MAX_MESSAGE:
            raise WaylandError(f"compositor sent a message of bad size {size}")
        while len(self.buffer) < size:
            self._receive(deadline)
        payload, self.buffer = self.buffer[_HEADER.size : size], self.buffer[size:]
        return int(obj), int(opcode), Reader(payload)

    def roundtrip(self) -> None:
        """``wl_display.sync`` and handle events until its ``done``; a protocol error raises."""
        callback = self.new_id()
        self.send(message(DISPLAY, SYNC, uint(callback)))
        deadline = time.monotonic() + self.timeout
        while True:
            obj, opcode, args = self.event(deadline)
            if obj == DISPLAY and opcode == EV_ERROR:
                args.uint()
                code = args.uint()
                raise WaylandError(f"compositor error {code}: {args.string()}")
            if obj == callback and opcode == EV_DONE:
                return
            if obj == self.registry_id and opcode == EV_GLOBAL:
                name, interface, version = args.uint(), args.string(), args.uint()
                self.registry[name] = (interface, version)
            elif obj == self.registry_id and opcode == EV_GLOBAL_REMOVE:
                self.registry.pop(args.uint(), None)

    def globals(self) -> dict[int, tuple[str, int]]:
        """Every global the compositor offers this client: name → (interface, version)."""
        if not self.registry_id:
            self.registry_id = self.new_id()
            self.send(message(DISPLAY, GET_REGISTRY, uint(self.registry_id)))
            self.roundtrip()
        return self.registry

    def bind(self, interface: str, version: int) -> int:
        """Bind the first global named ``interface``; its new object id."""
        for name, (offered, have) in self.globals().items():
            if offered == interface:
                if have < version:
                    raise WaylandError(f"compositor offers {interface} version {have} < {version}")
                new = self.new_id()
                payload = uint(name) + string(interface) + uint(version) + uint(new)
                self.send(message(self.registry_id, BIND, payload))
                return new
        raise WaylandError(f"compositor does not offer {interface}")


def interfaces(path: str, timeout: float = 5.0) -> set[str]:
    """The interface names of the globals a client of ``path`` is offered."""
    with Connection(path, timeout) as conn:
        return {interface for interface, _ in conn.globals().values()}


__all__ = ["Connection", "Reader", "WaylandError", "interfaces", "message", "string", "uint"]
