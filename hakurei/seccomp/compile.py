"""Rules → BPF: libseccomp through ``_ctypes`` (``library``), one context per arch.

This module builds and exports programs; ``library`` is the binding (loaded
on the first call that needs it, never on import: building or parsing rules
costs no dlopen).  libseccomp compiles STRICT in ~0.3 ms once loaded.
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

from .appended import appended_rules, socket_comparisons
from .library import LibraryError as LibraryError
from .library import libseccomp_version as libseccomp_version
from .library import load as _lib
from .presets import ALLOW_MULTIARCH
from .rules import EAFNOSUPPORT, ArgCmp, Rule, RuleError, SyscallNameError

TYPE_CHECKING = False
if TYPE_CHECKING:
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

#: libseccomp constants (seccomp.h).
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_ARCH_NATIVE = 0
_SCMP_FLTATR_API_SYSRAWRC = 9


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
    """``struct scmp_arg_cmp[]``, its type made on first use (``hakurei.init.ffi``)."""

    _type: Any = None

    @classmethod
    def array(cls, cmps: Sequence[ArgCmp]) -> Any:
        if cls._type is None:
            from ..init import ffi

            class ScmpArgCmp(ffi.Structure):
                _fields_ = (
                    ("arg", ffi.c_uint),
                    ("op", ffi.c_int),
                    ("datum_a", ffi.c_uint64),
                    ("datum_b", ffi.c_uint64),
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
