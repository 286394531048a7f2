"""Rules → BPF: libseccomp through plain ctypes, one context per arch.

This is the only module that talks to libseccomp, and it loads the library
(and ctypes) on the first call that needs it, never on import: building or
parsing rules costs no dlopen.  libseccomp is found by soname, without
pyseccomp's ``ldconfig`` runs, and compiles STRICT in ~0.3 ms once loaded.
libseccomp 2.5 exports only to a file descriptor, so programs go through a
memfd.

One deliberate difference from the Go original: with ``ALLOW_MULTIARCH`` Go
adds the secondary arch first, which makes every exact ``socket`` rule fail
(the 32-bit ABI multiplexes it through socketcall) and silently drops the
allowlist for the native ABI too.  Here the secondary arch is compiled in its
own context and merged, so the native ABI keeps the allowlist; the 32-bit ABI
still cannot have it.
"""

from __future__ import annotations

import errno as _errno
import os

from ..errors import HakureiError, strerror
from .appended import appended_rules, socket_comparisons
from .presets import ALLOW_MULTIARCH
from .rules import EAFNOSUPPORT, ArgCmp, Rule, RuleError, SyscallNameError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Sequence
    from typing import Any

# libseccomp arch tokens (AUDIT_ARCH_*).
_SCMP_ARCH_X86 = 0x40000003
_SCMP_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_ARM = 0x40000028
_SCMP_ARCH_AARCH64 = 0xC00000B7
_MACHINE = os.uname().machine
_ARCHES = {
    "x86_64": (_SCMP_ARCH_X86_64, _SCMP_ARCH_X86),
    "aarch64": (_SCMP_ARCH_AARCH64, _SCMP_ARCH_ARM),
}

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


# -- libseccomp through ctypes ------------------------------------------------------------

_LIB: ctypes.CDLL | None = None

#: libseccomp constants (seccomp.h).
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_ARCH_NATIVE = 0
_SCMP_FLTATR_API_SYSRAWRC = 9


def _lib() -> ctypes.CDLL:
    """libseccomp through plain ctypes, dlopened by soname.

    Not pyseccomp: it finds the library with ``ctypes.util.find_library``,
    which imports subprocess, shutil and re and runs ``ldconfig -p`` twice
    (~17 ms per process, against ~0.3 ms to compile STRICT).  Its binding is
    only argtypes for the dozen calls below, so hakurei declares them here
    and can compile on every start instead of trusting a file.
    """
    global _LIB
    if _LIB is None:
        import ctypes

        class _Version(ctypes.Structure):
            _fields_ = (
                ("major", ctypes.c_uint),
                ("minor", ctypes.c_uint),
                ("micro", ctypes.c_uint),
            )

        try:
            lib = ctypes.CDLL("libseccomp.so.2")
        except OSError as e:
            raise LibraryError("cannot load libseccomp.so.2", errno=e.errno) from e
        ctx, u32, c_int = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        for fn, res, args in (
            ("seccomp_version", ctypes.POINTER(_Version), ()),
            ("seccomp_syscall_resolve_name", c_int, (ctypes.c_char_p,)),
            ("seccomp_init", ctx, (u32,)),
            ("seccomp_release", None, (ctx,)),
            ("seccomp_attr_set", c_int, (ctx, c_int, u32)),
            ("seccomp_arch_add", c_int, (ctx, u32)),
            ("seccomp_arch_remove", c_int, (ctx, u32)),
            ("seccomp_rule_add_array", c_int, (ctx, u32, c_int, ctypes.c_uint, ctypes.c_void_p)),
            (
                "seccomp_rule_add_exact_array",
                c_int,
                (ctx, u32, c_int, ctypes.c_uint, ctypes.c_void_p),
            ),
            ("seccomp_merge", c_int, (ctx, ctx)),
            ("seccomp_export_bpf", c_int, (ctx, c_int)),
            ("seccomp_export_pfc", c_int, (ctx, c_int)),
        ):
            f = getattr(lib, fn)
            f.restype = res
            f.argtypes = args
        _LIB = lib
    return _LIB


def libseccomp_version() -> str:
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


_NR_SCMP_ERROR = -1


def syscall_number(name: str) -> int:
    """Native number of ``name``, or libseccomp's negative pseudo-number."""
    if not name or "\0" in name:
        raise SyscallNameError(name)
    nr = int(_lib().seccomp_syscall_resolve_name(name.encode()))
    if nr == _NR_SCMP_ERROR:
        raise SyscallNameError(name)
    return nr


# -- compiling ----------------------------------------------------------------------------


class _ArgCmpC:
    """``struct scmp_arg_cmp[]`` built lazily (ctypes types are created on first use)."""

    _type: Any = None

    @classmethod
    def array(cls, cmps: Sequence[ArgCmp]) -> Any:
        if cls._type is None:
            import ctypes

            class ScmpArgCmp(ctypes.Structure):
                _fields_ = (
                    ("arg", ctypes.c_uint),
                    ("op", ctypes.c_int),
                    ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64),
                )

            cls._type = ScmpArgCmp
        return (cls._type * len(cmps))(*((c.index, c.op, c.a, c.b) for c in cmps))


def _build(rules: Sequence[Rule], flags: int, extra: Sequence[Rule]) -> int:
    """A libseccomp context holding ``rules + extra`` and the socket allowlist.

    The caller owns the returned context and must ``seccomp_release`` it.
    ``extra`` is ``appended_rules(flags)`` except where a test reproduces the
    Go program exactly.
    """
    if not rules:
        raise RuleError("invalid native rules slice")
    if _MACHINE not in _ARCHES:  # pragma: no cover - the seam refuses other arches first
        raise LibraryError(f"hakurei does not support {_MACHINE}")
    native, secondary = _ARCHES[_MACHINE]
    every = [*rules, *extra]
    numbers = [syscall_number(r.syscall) for r in every]
    lib = _lib()

    def new(arch: int) -> int:
        ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
        if not ctx:
            raise LibraryError.from_code(1, _errno.EINVAL)  # libseccomp gives no reason
        try:
            # Without this libseccomp reports every kernel error as ECANCELED.
            rc = lib.seccomp_attr_set(ctx, _SCMP_FLTATR_API_SYSRAWRC, 1)
            if rc < 0:
                raise LibraryError.from_code(4, -rc)
            code = 2 if arch == native else 3
            rc = lib.seccomp_arch_add(ctx, arch)
            if rc < 0 and rc != -_errno.EEXIST:
                raise LibraryError.from_code(code, -rc)
            if arch != native:
                rc = lib.seccomp_arch_remove(ctx, _SCMP_ARCH_NATIVE)
                if rc < 0:
                    raise LibraryError.from_code(code, -rc)
            for rule, nr in zip(every, numbers, strict=True):
                cmps = (rule.arg,) if rule.arg is not None else ()
                action = _SCMP_ACT_ERRNO | rule.errno
                rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), _ArgCmpC.array(cmps))
                if rc < 0:
                    raise LibraryError.from_code(4 if rc == -_errno.EFAULT else 5, -rc)
        except BaseException:
            lib.seccomp_release(ctx)
            raise
        return int(ctx)

    ctx = new(native)
    try:
        # Exact rules: libseccomp would otherwise rewrite socket() for ABIs that
        # multiplex it (libseccomp issue 8).  Only the native context gets them,
        # and failures are ignored, as Go does.
        socket_nr = syscall_number("socket")
        deny = _SCMP_ACT_ERRNO | EAFNOSUPPORT
        for op, family in socket_comparisons(flags):
            cmp = _ArgCmpC.array((ArgCmp(0, op, family),))
            lib.seccomp_rule_add_exact_array(ctx, deny, socket_nr, 1, cmp)
        if flags & ALLOW_MULTIARCH:
            other = new(secondary)
            rc = lib.seccomp_merge(ctx, other)  # on success libseccomp releases `other`
            if rc < 0:
                lib.seccomp_release(other)
                raise LibraryError.from_code(3, -rc)
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return ctx


def _export(ctx: int, pfc: bool) -> bytes:
    """Export and release ``ctx``: libseccomp 2.5 writes only to a file descriptor."""
    lib = _lib()
    try:
        fd = os.memfd_create("hakurei-seccomp", os.MFD_CLOEXEC)
        try:
            rc = (lib.seccomp_export_pfc if pfc else lib.seccomp_export_bpf)(ctx, fd)
            if rc < 0:
                raise LibraryError.from_code(6, -rc)
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def compile_bpf(rules: Sequence[Rule], flags: int) -> bytes:
    """Compile ``rules``, ``appended_rules(flags)`` and the socket allowlist to classic BPF."""
    return _export(_build(rules, flags, appended_rules(flags)), pfc=False)


def export_pfc(rules: Sequence[Rule], flags: int) -> str:
    """libseccomp's readable pseudo-filter code for the same program."""
    return _export(_build(rules, flags, appended_rules(flags)), pfc=True).decode()
