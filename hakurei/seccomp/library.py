"""The libseccomp binding: C types on ``_ctypes`` (``hakurei.init.ffi``), loaded on first use.

Split from ``compile`` so that asking which libseccomp this is (the key of
the programs compiled ahead, ``prebuilt``) loads neither the rule modules
nor the compiler.  libseccomp is found by soname, without pyseccomp's
``ldconfig`` runs.
"""

from __future__ import annotations

from ..errors import HakureiError, strerror

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..init.ffi import Function


#: libseccomp result codes → LibraryError prefix (reference §8.2).  Code 6 is
#: v1's text: libseccomp 2.5 has no export-to-memory, the BPF goes through a memfd.
_PREFIX = {
    1: "seccomp_init failed",
    2: "seccomp_arch_add failed",
    3: "seccomp_arch_add failed (multiarch)",
    4: "internal libseccomp failure",
    5: "seccomp_rule_add failed",
    6: "seccomp_export_bpf failed",
    7: "seccomp_load failed",
}


class LibraryError(HakureiError):
    """libseccomp refused something: ``<prefix>: <seccomp errno> (<errno>)``.

    ``seccomp`` is the negated return value of the libseccomp call (with the
    raw-return-code attribute set, a real kernel errno), ``errno`` the C errno
    when one is known.  Either part is left out of the message when absent.
    """

    def __init__(self, prefix: str, seccomp: int = 0, errno: int | None = None) -> None:
        super().__init__(prefix, seccomp, errno)
        self.prefix = prefix
        self.seccomp = seccomp
        self.errno = errno

    @classmethod
    def from_code(cls, code: int, seccomp: int = 0, errno: int | None = None) -> LibraryError:
        return cls(_PREFIX[code], seccomp, errno)

    def __str__(self) -> str:
        if not self.seccomp:
            if self.errno is None:
                return self.prefix
            return f"{self.prefix}: {strerror(self.errno)}"
        if self.errno is None:
            return f"{self.prefix}: {strerror(self.seccomp)}"
        return f"{self.prefix}: {strerror(self.seccomp)} ({strerror(self.errno)})"


# -- libseccomp through _ctypes -----------------------------------------------------------


class Libseccomp:
    """The dozen libseccomp functions hakurei calls, each declared with its C types."""

    seccomp_version: Function
    seccomp_syscall_resolve_name: Function
    seccomp_init: Function
    seccomp_release: Function
    seccomp_attr_set: Function
    seccomp_arch_add: Function
    seccomp_arch_remove: Function
    seccomp_rule_add_array: Function
    seccomp_rule_add_exact_array: Function
    seccomp_merge: Function
    seccomp_export_bpf: Function
    seccomp_export_pfc: Function


_LIB: Libseccomp | None = None


def load() -> Libseccomp:
    """libseccomp, dlopened by soname, its functions declared (``hakurei.init.ffi``).

    Not pyseccomp: it finds the library with ``ctypes.util.find_library``,
    which imports subprocess, shutil and re and runs ``ldconfig -p`` twice
    (~17 ms per process, against ~0.3 ms to compile STRICT).  Its binding is
    only argtypes for the dozen calls below, so hakurei declares them here
    and can compile on every start instead of trusting a file.  Not ctypes
    either: asking the version is on every ``hakurei exec``'s path, and
    ``import ctypes`` alone costs ~4 ms.
    """
    global _LIB
    if _LIB is None:
        from ..init import ffi

        class _Version(ffi.Structure):
            _fields_ = (("major", ffi.c_uint), ("minor", ffi.c_uint), ("micro", ffi.c_uint))

        try:
            so = ffi.Library("libseccomp.so.2")
        except OSError as e:
            raise LibraryError("cannot load libseccomp.so.2", errno=e.errno) from e
        ctx, u32, c_int, arr = ffi.c_void_p, ffi.c_uint32, ffi.c_int, ffi.c_void_p
        lib = Libseccomp()
        for fn, res, args in (
            ("seccomp_version", ffi.POINTER(_Version), ()),
            ("seccomp_syscall_resolve_name", c_int, (ffi.c_char_p,)),
            ("seccomp_init", ctx, (u32,)),
            ("seccomp_release", None, (ctx,)),
            ("seccomp_attr_set", c_int, (ctx, c_int, u32)),
            ("seccomp_arch_add", c_int, (ctx, u32)),
            ("seccomp_arch_remove", c_int, (ctx, u32)),
            ("seccomp_rule_add_array", c_int, (ctx, u32, c_int, ffi.c_uint, arr)),
            ("seccomp_rule_add_exact_array", c_int, (ctx, u32, c_int, ffi.c_uint, arr)),
            ("seccomp_merge", c_int, (ctx, ctx)),
            ("seccomp_export_bpf", c_int, (ctx, c_int)),
            ("seccomp_export_pfc", c_int, (ctx, c_int)),
        ):
            setattr(lib, fn, so.function(fn, res, args))
        _LIB = lib
    return _LIB


def libseccomp_version() -> str:
    v = load().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"
