"""msgpack, the part hakurei's records use, in the standard library: for the init side.

A cold shim decodes one setup record per container, and the fork server one
small request per start.  ``import msgpack`` costs ~8 ms per process on the
2-CPU CI machine (interleaved p50 against ``python -I -S -c pass``): its
``ext`` module imports ``datetime`` and ``collections``, and the C
extension imports ``ext``.  That was a fifth of every cold start, for a
record of a few kilobytes that decodes here in well under a millisecond.

The format is msgpack's (https://github.com/msgpack/msgpack/blob/master/spec.md)
and the parent still encodes with the msgpack library; :func:`unpackb` reads
exactly what ``msgpack.unpackb(data, raw=False, strict_map_key=True)`` reads,
except the ``ext`` family (hakurei never sends one) and nesting deeper than
:data:`MAX_DEPTH`, which it refuses.  :func:`packb` writes the same subset
(the fork server's replies).  Every defect of the input is an
:class:`UnpackError`, never another exception: the record crosses a process
boundary, and a shim must fail in one line.
"""

from __future__ import annotations

import _struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: reads one fixed-size field at an offset: ``Struct.unpack_from``'s shape
    Reader = Callable[[bytes, int], tuple[Any, ...]]

#: Nesting (arrays and maps in arrays and maps) beyond which a record is refused:
#: hakurei's go four deep; a deep one would only exhaust the stack.
MAX_DEPTH = 32

_U16 = _struct.Struct(">H").unpack_from
_U32 = _struct.Struct(">I").unpack_from
_U64 = _struct.Struct(">Q").unpack_from
_I8 = _struct.Struct(">b").unpack_from
_I16 = _struct.Struct(">h").unpack_from
_I32 = _struct.Struct(">i").unpack_from
_I64 = _struct.Struct(">q").unpack_from
_F32 = _struct.Struct(">f").unpack_from
_F64 = _struct.Struct(">d").unpack_from


def _U8(data: bytes, pos: int) -> tuple[int]:
    return (data[pos],)


#: the reader of each size of length field (str, bin, array and map types)
_LEN: dict[int, Reader] = {1: _U8, 2: _U16, 4: _U32}


class UnpackError(ValueError):
    """The bytes are not one msgpack value of the subset hakurei reads."""


def unpackb(data: bytes) -> Any:
    """The one value ``data`` holds: None, bool, int, float, str, bytes, list or dict
    (``Any``, as ``json.loads`` and ``msgpack.unpackb`` give it: the caller checks)."""
    value, end = _value(data, 0, 0)
    if end != len(data):
        raise UnpackError(f"{len(data) - end} bytes of extra data after the value")
    return value


def _need(data: bytes, pos: int, n: int) -> None:
    if len(data) - pos < n:
        raise UnpackError("truncated data")


def _value(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    _need(data, pos, 1)
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _str(data, pos, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(data, pos, b & 0x0F, depth)
    if 0x80 <= b <= 0x8F:
        return _map(data, pos, b & 0x0F, depth)
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    fixed = _FIXED.get(b)
    if fixed is not None:
        size, read = fixed
        _need(data, pos, size)
        return read(data, pos)[0], pos + size
    sized = _SIZED.get(b)
    if sized is None:
        raise UnpackError(f"type byte 0x{b:02x} is not read here (ext, or reserved)")
    width, kind = sized
    _need(data, pos, width)
    n = _LEN[width](data, pos)[0]
    pos += width
    if kind == "str":
        return _str(data, pos, n)
    if kind == "bin":
        _need(data, pos, n)
        return bytes(data[pos : pos + n]), pos + n
    if kind == "array":
        return _array(data, pos, n, depth)
    return _map(data, pos, n, depth)


def _str(data: bytes, pos: int, n: int) -> tuple[str, int]:
    _need(data, pos, n)
    try:
        return str(data[pos : pos + n], "utf-8"), pos + n
    except UnicodeDecodeError:
        raise UnpackError("a str is not UTF-8") from None


def _array(data: bytes, pos: int, n: int, depth: int) -> tuple[list[object], int]:
    if depth >= MAX_DEPTH:
        raise UnpackError(f"nested deeper than {MAX_DEPTH}")
    _need(data, pos, n)  # every element takes a byte at least
    out = []
    for _ in range(n):
        item, pos = _value(data, pos, depth + 1)
        out.append(item)
    return out, pos


def _map(data: bytes, pos: int, n: int, depth: int) -> tuple[dict[object, object], int]:
    if depth >= MAX_DEPTH:
        raise UnpackError(f"nested deeper than {MAX_DEPTH}")
    _need(data, pos, 2 * n)
    out: dict[object, object] = {}
    for _ in range(n):
        key, pos = _value(data, pos, depth + 1)
        if type(key) is not str and type(key) is not bytes:  # strict_map_key
            raise UnpackError(f"a map key is {type(key).__name__}, not str or bytes")
        out[key], pos = _value(data, pos, depth + 1)
    return out, pos


_FIXED: dict[int, tuple[int, Reader]] = {
    0xCA: (4, _F32),
    0xCB: (8, _F64),
    0xCC: (1, _U8),
    0xCD: (2, _U16),
    0xCE: (4, _U32),
    0xCF: (8, _U64),
    0xD0: (1, _I8),
    0xD1: (2, _I16),
    0xD2: (4, _I32),
    0xD3: (8, _I64),
}
_SIZED: dict[int, tuple[int, str]] = {
    0xC4: (1, "bin"),
    0xC5: (2, "bin"),
    0xC6: (4, "bin"),
    0xD9: (1, "str"),
    0xDA: (2, "str"),
    0xDB: (4, "str"),
    0xDC: (2, "array"),
    0xDD: (4, "array"),
    0xDE: (2, "map"),
    0xDF: (4, "map"),
}


def packb(value: object) -> bytes:
    """``value`` (None, bool, int, str, bytes, list, tuple or dict of them) as msgpack bytes,
    as ``msgpack.packb(value)`` writes it."""
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _pack(v: object, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if v is None:
        out.append(0xC0)
    elif v is True or v is False:
        out.append(0xC3 if v else 0xC2)
    elif type(v) is int:
        _pack_int(v, out)
    elif type(v) is str:
        raw = v.encode()
        _pack_len(len(raw), out, 0xA0, 31, (0xD9, 0xDA, 0xDB))
        out += raw
    elif type(v) is bytes:
        _pack_len(len(v), out, None, 0, (0xC4, 0xC5, 0xC6))
        out += v
    elif type(v) is list or type(v) is tuple:
        _pack_len(len(v), out, 0x90, 15, (None, 0xDC, 0xDD))
        for item in v:
            _pack(item, out, depth + 1)
    elif type(v) is dict:
        _pack_len(len(v), out, 0x80, 15, (None, 0xDE, 0xDF))
        for key, item in v.items():
            _pack(key, out, depth + 1)
            _pack(item, out, depth + 1)
    else:
        raise TypeError(f"cannot pack {type(v).__name__}")


def _pack_len(
    n: int, out: bytearray, fix: int | None, fix_max: int, tags: tuple[int | None, int, int]
) -> None:
    if fix is not None and n <= fix_max:
        out.append(fix | n)
    elif tags[0] is not None and n <= 0xFF:
        out += bytes((tags[0], n))
    elif n <= 0xFFFF:
        out.append(tags[1])
        out += n.to_bytes(2, "big")
    elif n <= 0xFFFFFFFF:
        out.append(tags[2])
        out += n.to_bytes(4, "big")
    else:
        raise ValueError(f"{n} items or bytes is more than msgpack can say")


def _pack_int(v: int, out: bytearray) -> None:
    if 0 <= v <= 0x7F or -32 <= v < 0:
        out.append(v & 0xFF)
    elif v > 0:
        for tag, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if v < 1 << (8 * size):
                out.append(tag)
                out += v.to_bytes(size, "big")
                return
        raise OverflowError(f"{v} does not fit in 64 bits")
    else:
        for tag, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if v >= -(1 << (8 * size - 1)):
                out.append(tag)
                out += v.to_bytes(size, "big", signed=True)
                return
        raise OverflowError(f"{v} does not fit in 64 bits")
