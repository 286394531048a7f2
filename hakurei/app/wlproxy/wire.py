"""The Wayland wire format, as far as a filtering proxy needs it.

A message is a header of two native-endian u32 (the object id, then
``size << 16 | opcode``) and ``size - 8`` bytes of arguments.  The proxy
frames every message in both directions but decodes the arguments of only
the four messages its filter looks at (``wl_display.get_registry``,
``wl_registry.bind``, ``wl_registry.global``, ``wl_registry.global_remove``);
everything else is forwarded as opaque bytes.

Limits are libwayland's, so nothing a real peer sends is refused: a size is a
multiple of 4 between 8 and 4096 (``WL_MAX_MESSAGE_SIZE``).  A string is a
u32 length counting its NUL (0 means a null string), then that many bytes,
padded to 4.  The padding's *content* is not checked: libwayland marshals
strings into an uninitialised stack buffer, so real clients send garbage
there.  Every decoder consumes its message exactly; a short or long message,
a string running past the end, a missing NUL or one inside the string is a
:class:`WireError`, and the connection that sent it is dropped.
"""

from __future__ import annotations

import struct

#: The header: object id, then size << 16 | opcode.
HEADER = struct.Struct("=II")
_U32 = struct.Struct("=I")
_U32X2 = struct.Struct("=II")

#: libwayland's WL_MAX_MESSAGE_SIZE: no real peer sends more.
MAX_SIZE = 4096
MIN_SIZE = HEADER.size

#: wl_display is always object 1.
DISPLAY_ID = 1
#: wl_display requests and events (wayland.xml).
DISPLAY_SYNC = 0
DISPLAY_GET_REGISTRY = 1
DISPLAY_ERROR = 0
#: wl_display.error codes.
ERROR_INVALID_OBJECT = 0
ERROR_INVALID_METHOD = 1
#: wl_registry request and events.
REGISTRY_BIND = 0
REGISTRY_GLOBAL = 0
REGISTRY_GLOBAL_REMOVE = 1


class WireError(ValueError):
    """Bytes that no conforming peer sends; the sender is disconnected."""


def header(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int, int]:
    """``(object_id, opcode, size)`` of the message at ``offset`` (8 bytes must be there)."""
    obj, word = HEADER.unpack_from(buf, offset)
    size = word >> 16
    if size < MIN_SIZE or size > MAX_SIZE or size % 4:
        raise WireError(f"message size {size} (object {obj}): not a multiple of 4 in 8..4096")
    return obj, word & 0xFFFF, size


def message(obj: int, opcode: int, args: bytes) -> bytes:
    """A whole message: header plus ``args`` (already padded)."""
    size = MIN_SIZE + len(args)
    if size > MAX_SIZE or size % 4 or not 0 <= opcode <= 0xFFFF:
        raise WireError(f"cannot encode a message of {size} bytes, opcode {opcode}")
    return HEADER.pack(obj, size << 16 | opcode) + args


def string(text: bytes) -> bytes:
    """``text`` (no NUL inside) as a wire string: length with NUL, bytes, padding."""
    if b"\0" in text:
        raise WireError("a wire string cannot hold a NUL")
    n = len(text) + 1
    return _U32.pack(n) + text + b"\0" * (4 - len(text) % 4)


class Reader:
    """Decodes the arguments of one message, strictly and within its bounds."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, msg: bytes | bytearray | memoryview) -> None:
        self.buf = msg
        self.pos = MIN_SIZE
        self.end = len(msg)

    def u32(self) -> int:
        if self.pos + 4 > self.end:
            raise WireError("message truncated: an argument runs past its end")
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def string(self) -> bytes:
        """A non-null string without its NUL."""
        n = self.u32()
        if n == 0:
            raise WireError("null string where a string is required")
        padded = (n + 3) & ~3
        if self.pos + padded > self.end:
            raise WireError(f"string of {n} bytes runs past the end of its message")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += padded
        if raw[-1] != 0 or b"\0" in raw[:-1]:
            raise WireError("string not terminated by its only NUL")
        return raw[:-1]

    def done(self) -> None:
        if self.pos != self.end:
            raise WireError(f"{self.end - self.pos} trailing bytes after the last argument")


def new_id(msg: bytes | bytearray | memoryview) -> int:
    """The single ``new_id`` argument of e.g. ``wl_display.get_registry``."""
    r = Reader(msg)
    v = r.u32()
    r.done()
    return v


def bind(msg: bytes | bytearray | memoryview) -> tuple[int, bytes, int, int]:
    """``wl_registry.bind``: ``(name, interface, version, new_id)`` (untyped new_id)."""
    r = Reader(msg)
    out = r.u32(), r.string(), r.u32(), r.u32()
    r.done()
    return out


def global_(msg: bytes | bytearray | memoryview) -> tuple[int, bytes, int]:
    """``wl_registry.global``: ``(name, interface, version)``."""
    r = Reader(msg)
    out = r.u32(), r.string(), r.u32()
    r.done()
    return out


def global_remove(msg: bytes | bytearray | memoryview) -> int:
    """``wl_registry.global_remove``: the name."""
    return new_id(msg)


def encode_bind(registry: int, name: int, interface: bytes, version: int, new: int) -> bytes:
    return message(
        registry, REGISTRY_BIND, _U32.pack(name) + string(interface) + _U32X2.pack(version, new)
    )


def encode_global(registry: int, name: int, interface: bytes, version: int) -> bytes:
    return message(
        registry, REGISTRY_GLOBAL, _U32.pack(name) + string(interface) + _U32.pack(version)
    )


def encode_get_registry(new: int) -> bytes:
    return message(DISPLAY_ID, DISPLAY_GET_REGISTRY, _U32.pack(new))


def encode_sync(new: int) -> bytes:
    return message(DISPLAY_ID, DISPLAY_SYNC, _U32.pack(new))


def display_error(obj: int, code: int, text: bytes) -> bytes:
    """``wl_display.error``: libwayland prints it and the client's display fails."""
    return message(DISPLAY_ID, DISPLAY_ERROR, _U32X2.pack(obj, code) + string(text))
