"""C calls without ``import ctypes``: the few C types hakurei passes, declared on ``_ctypes``.

``import ctypes`` costs ~4.4 ms per process on the 2-CPU CI machine (p50 of
``python -I -S -c 'import ctypes'`` against ``-c pass``, interleaved): it
builds some forty type classes and imports ``types``, ``struct`` and
``ctypes._endian``.  ``_ctypes``, the C module under it, costs ~0.3-1 ms.
Every ``hakurei exec`` and every cold shim paid the difference for a dozen
calls, so the types those calls take are declared here on the same base
classes ctypes declares its own on (ctypes' ``c_int`` is ``class
c_int(_SimpleCData): _type_ = "i"``): a ``Structure`` here is a ctypes
``Structure``, ``c_uint64 * 2`` an array, ``byref`` the same function.

A :class:`Library` does what ``ctypes.CDLL(name, use_errno=True)`` does for
the functions declared on it: ``dlopen`` (``None``: the process itself,
libc), ``dlsym``, the C calling convention, and ``errno`` kept for
:func:`get_errno` right after each call.  Functions are declared, never
looked up by attribute.
"""

from __future__ import annotations

from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_USE_ERRNO,
    POINTER,
    RTLD_LOCAL,
    CFuncPtr,
    Structure,
    _SimpleCData,
    addressof,
    byref,
    dlopen,
    dlsym,
    get_errno,
    sizeof,
)

__all__ = [
    "POINTER",
    "Function",
    "Library",
    "Structure",
    "addressof",
    "byref",
    "c_char",
    "c_char_p",
    "c_int",
    "c_long",
    "c_uint",
    "c_uint32",
    "c_uint64",
    "c_ulong",
    "c_ushort",
    "c_size_t",
    "c_void_p",
    "get_errno",
    "sizeof",
    "string_buffer",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _ctypes import Array
    from collections.abc import Sequence

#: dlfcn.h: resolve every symbol at dlopen (ctypes.CDLL adds it too on Linux).
RTLD_NOW = 0x2


if TYPE_CHECKING:  # generic only in typeshed's stub
    _Bytes = _SimpleCData[bytes]
    _BytesOrNone = _SimpleCData[bytes | None]
    _Int = _SimpleCData[int]
    _IntOrNone = _SimpleCData[int | None]
else:
    _Bytes = _BytesOrNone = _Int = _IntOrNone = _SimpleCData


# ctypes' own declarations of the same types (Lib/ctypes/__init__.py), for Linux,
# where int and unsigned int are 32 bits, long and size_t 64 on x86_64 and aarch64.
class c_char(_Bytes):
    _type_ = "c"


class c_char_p(_BytesOrNone):
    _type_ = "z"


class c_int(_Int):
    _type_ = "i"


class c_uint(_Int):
    _type_ = "I"


class c_long(_Int):
    _type_ = "l"


class c_ulong(_Int):
    _type_ = "L"


class c_ushort(_Int):
    _type_ = "H"


class c_uint64(_Int):
    _type_ = "Q"


class c_void_p(_IntOrNone):
    _type_ = "P"


c_uint32 = c_uint
c_size_t = c_ulong


class Function(CFuncPtr):
    """A C function that keeps ``errno`` (``ctypes.CDLL(..., use_errno=True)``'s kind)."""

    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A shared object (``None``: this process, so libc), and its functions by declaration."""

    def __init__(self, name: str | None) -> None:
        # _ctypes.dlopen takes None for the process itself (dlopen(NULL)); its stub says str.
        self.handle: int = dlopen(name, RTLD_NOW | RTLD_LOCAL)  # type: ignore[arg-type]

    def function(
        self, name: str, restype: type | None = c_int, argtypes: Sequence[type] | None = None
    ) -> Function:
        """``name`` returning ``restype`` (None: void); ``argtypes`` None leaves the
        arguments unconverted (ints as C int, bytes as ``char *``), as ctypes does."""
        f = Function(dlsym(self.handle, name))
        f.restype = restype
        if argtypes is not None:
            f.argtypes = tuple(argtypes)
        return f


def string_buffer(init: bytes | int) -> Array[c_char]:
    """A mutable C char array: a copy of ``init``, or ``init`` zero bytes
    (``ctypes.create_string_buffer`` without the trailing NUL); ``bytes(buf)``
    reads it back."""
    if isinstance(init, int):
        return (c_char * init)()
    return (c_char * len(init)).from_buffer_copy(init)
