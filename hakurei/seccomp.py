"""Syscall filter: presets → rules → BPF, compiled in the parent (reference §8).

Init never imports this module.  The parent resolves the presets to an ordered
rule list, compiles it with libseccomp (through pyseccomp) and ships the BPF
bytes in the setup record; init installs them with ``seccomp(2)`` and the
initial process inherits the filter across fork+exec.

Compiling is the expensive part: importing pyseccomp costs ~17 ms and runs
``ldconfig -p`` twice.  ``filter_for`` therefore caches the program twice, in
memory for the life of the process and on disk in the user's cache directory,
so a second ``hakurei exec`` pays nothing.  A cache lookup needs only
libseccomp's version, read straight from ``libseccomp.so.2`` with ctypes.

The filter is a deny-list with default action allow.  Every rule returns EPERM
or ENOSYS (ENOSYS where userspace must fall back: glibc retries clone3 as clone
only on ENOSYS).  A socket-family allowlist is always appended: any family but
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (and AF_CAN, AF_BLUETOOTH
when allowed) fails with EAFNOSUPPORT.

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
import zlib

from .errors import HakureiError, q, strerror

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Iterable, Sequence
    from typing import Any

__all__ = [
    "ALLOW_BLUETOOTH",
    "ALLOW_CAN",
    "ALLOW_MULTIARCH",
    "DENY_DEVEL",
    "DENY_NS",
    "DENY_TTY",
    "EQ",
    "EXT",
    "GE",
    "GT",
    "LE",
    "LINUX32",
    "LT",
    "MASKED_EQ",
    "NE",
    "STRICT",
    "ArgCmp",
    "LibraryError",
    "Rule",
    "RuleError",
    "SyscallNameError",
    "cache_clear",
    "compile_bpf",
    "export_pfc",
    "filter_for",
    "format_presets",
    "libseccomp_version",
    "parse_presets",
    "preset",
    "resolve",
    "rules_from_json",
    "rules_to_json",
    "syscall_number",
]

# Presets (Go bits.FilterPreset).
EXT = 1
DENY_NS = 2
DENY_TTY = 4
DENY_DEVEL = 8
LINUX32 = 16
STRICT = EXT | DENY_NS | DENY_TTY | DENY_DEVEL

# Export flags (Go seccomp.ExportFlag).
ALLOW_MULTIARCH = 1
ALLOW_CAN = 2
ALLOW_BLUETOOTH = 4

# enum scmp_compare
NE, LT, LE, EQ, GE, GT, MASKED_EQ = 1, 2, 3, 4, 5, 6, 7
_OP_NAMES = {NE: "NE", LT: "LT", LE: "LE", EQ: "EQ", GE: "GE", GT: "GT", MASKED_EQ: "MASKED_EQ"}

EPERM = _errno.EPERM
ENOSYS = _errno.ENOSYS
EAFNOSUPPORT = _errno.EAFNOSUPPORT

CLONE_NEWUSER = 0x10000000
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
PER_LINUX = 0x0
PER_LINUX32 = 0x8

_PRESET_NAMES = (
    ("ext", EXT),
    ("deny-ns", DENY_NS),
    ("deny-tty", DENY_TTY),
    ("deny-devel", DENY_DEVEL),
    ("linux32", LINUX32),
    ("strict", STRICT),
)

_U64 = (1 << 64) - 1


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


class RuleError(HakureiError, ValueError):
    """A rule that can never be compiled (caught before libseccomp sees it)."""


class SyscallNameError(RuleError):
    """Go ``std.SyscallNameError``: ``invalid syscall name "<name>"``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"invalid syscall name {q(name)}")
        self.name = name


def _check_u64(what: str, v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= _U64:
        raise RuleError(f"{what} must be an integer in [0, 2^64), not {v!r}")
    return v


class ArgCmp:
    """``struct scmp_arg_cmp``: compare argument ``index`` with ``op``.

    For ``MASKED_EQ``, ``a`` is the mask and ``b`` the value: the rule matches
    when ``arg & a == b``.  For the other operators ``b`` is unused.
    """

    __slots__ = ("a", "b", "index", "op")

    def __init__(self, index: int, op: int, a: int, b: int = 0) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
            raise RuleError(f"argument index must be 0..5, not {index!r}")
        if op not in _OP_NAMES or isinstance(op, bool):
            raise RuleError(
                f"invalid comparison operator {op!r} (1..7: NE LT LE EQ GE GT MASKED_EQ)"
            )
        self.index = index
        self.op = op
        self.a = _check_u64("comparison datum a", a)
        self.b = _check_u64("comparison datum b", b)

    def _key(self) -> tuple[int, int, int, int]:
        return (self.index, self.op, self.a, self.b)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArgCmp) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"ArgCmp({self.index}, {_OP_NAMES[self.op]}, {self.a:#x}, {self.b:#x})"


class Rule:
    """Return ``errno`` from ``syscall`` (by name), optionally only when ``arg`` matches.

    The errno is EPERM or ENOSYS, nothing else (Go asserts it in C).  Names
    are resolved by libseccomp when the filter is compiled; names of calls
    the native arch lacks (``chown32`` on x86_64) are valid and skipped.
    """

    __slots__ = ("arg", "errno", "syscall")

    def __init__(self, syscall: str, errno: int, arg: ArgCmp | None = None) -> None:
        if not isinstance(syscall, str) or not syscall or "\0" in syscall:
            raise SyscallNameError(str(syscall))
        if errno not in (EPERM, ENOSYS) or isinstance(errno, bool):
            raise RuleError(
                f"{syscall}: errno must be EPERM ({EPERM}) or ENOSYS ({ENOSYS}), not {errno!r}"
            )
        if arg is not None and not isinstance(arg, ArgCmp):
            raise RuleError(f"{syscall}: arg must be an ArgCmp, not {type(arg).__name__}")
        self.syscall = syscall
        self.errno = errno
        self.arg = arg

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Rule)
            and self.syscall == other.syscall
            and self.errno == other.errno
            and self.arg == other.arg
        )

    def __hash__(self) -> int:
        return hash((self.syscall, self.errno, self.arg))

    def __repr__(self) -> str:
        e = "EPERM" if self.errno == EPERM else "ENOSYS"
        tail = f", {self.arg!r}" if self.arg is not None else ""
        return f"Rule({self.syscall!r}, {e}{tail})"

    def canonical(self) -> str:
        """One stable line per rule: the cache key is built from these."""
        if self.arg is None:
            return f"{self.syscall} {self.errno}"
        a = self.arg
        return f"{self.syscall} {self.errno} {a.index}:{a.op}:{a.a:#x}:{a.b:#x}"


# -- presets (Go presets.go, after flatpak commit 4c3bf179) ---------------------


def _group(errno: int, *names: str) -> tuple[Rule, ...]:
    return tuple(Rule(n, errno) for n in names)


_COMMON = _group(
    EPERM,
    "syslog",  # dmesg
    "uselib",  # useless old syscall
    "acct",  # disabling accounting
    "quotactl",  # reading quota use
    "add_key",  # the kernel keyring
    "keyctl",
    "request_key",
    "move_pages",  # scary VM/NUMA operations
    "mbind",
    "get_mempolicy",
    "set_mempolicy",
    "migrate_pages",
)

_COMMON_EXT = _group(
    EPERM,
    "adjtimex",  # changing the system clock
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    "delete_module",  # kernel modules
    "finit_module",
    "init_module",
    "kexec_file_load",  # rebooting
    "kexec_load",
    "reboot",
    "swapoff",  # swap devices
    "swapon",
)

_NAMESPACE = (
    *_group(EPERM, "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot"),
    # Only new user namespaces: fork and threads use clone too.  The flags are
    # argument 0 on every arch hakurei runs on (only s390 swaps them).
    Rule("clone", EPERM, ArgCmp(0, MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)),
    # seccomp cannot read clone3's struct clone_args, so clone3 goes entirely;
    # ENOSYS makes glibc fall back to clone (CVE-2021-41133).  The new mount
    # API can rebuild the VFS as well: block all of it, the same way.
    *_group(
        ENOSYS,
        "clone3",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
    ),
)

_NAMESPACE_EXT = _group(
    EPERM,
    "chown",  # file ownership
    "chown32",
    "fchown",
    "fchown32",
    "fchownat",
    "lchown",
    "lchown32",
    "setgid",  # credentials
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
)

# The ioctl request is an int in the kernel but a long in the syscall ABI:
# compare only its low 32 bits, or junk in the high half slips past
# (CVE-2019-10063).  TIOCSTI fakes tty input (CVE-2017-5226); TIOCLINUX
# copy/paste on a virtual console does the same (CVE-2023-28100).
_TTY = (
    Rule("ioctl", EPERM, ArgCmp(1, MASKED_EQ, 0xFFFFFFFF, TIOCSTI)),
    Rule("ioctl", EPERM, ArgCmp(1, MASKED_EQ, 0xFFFFFFFF, TIOCLINUX)),
)

# modify_ldt leaks information but old 16-bit programs and Wine need it.
_EMU = _group(EPERM, "modify_ldt")
_EMU_EXT = _group(ENOSYS, "subpage_prot", "switch_endian", "vm86", "vm86old")


def _devel(allowed_personality: int) -> tuple[Rule, ...]:
    return (
        # perf has been the source of many CVEs; profile from outside.
        Rule("perf_event_open", EPERM),
        # No switching to BSD emulation and such; also refuses the 0xffffffff query.
        Rule("personality", EPERM, ArgCmp(0, NE, allowed_personality)),
        Rule("ptrace", EPERM),
    )


def preset(presets: int, flags: int) -> list[Rule]:
    """The rules of ``presets`` under export ``flags``, in Go's order."""
    rules = list(_COMMON)
    if presets & DENY_NS:
        rules += _NAMESPACE
    if presets & DENY_TTY:
        rules += _TTY
    if presets & DENY_DEVEL:
        rules += _devel(PER_LINUX32 if presets & LINUX32 else PER_LINUX)
    if not flags & ALLOW_MULTIARCH:
        rules += _EMU
    if presets & EXT:
        rules += _COMMON_EXT
        if presets & DENY_NS:
            rules += _NAMESPACE_EXT
        if not flags & ALLOW_MULTIARCH:
            rules += _EMU_EXT
    return rules


def parse_presets(text: str) -> int:
    """``"ext,deny-ns"`` → ``EXT | DENY_NS``; empty items are ignored."""
    names = dict(_PRESET_NAMES)
    bits = 0
    for item in text.split(","):
        name = item.strip()
        if not name:
            continue
        if name not in names:
            known = ", ".join(n for n, _ in _PRESET_NAMES)
            raise ValueError(f"unknown seccomp preset {q(name)} (known: {known})")
        bits |= names[name]
    return bits


def format_presets(presets: int) -> str:
    """The inverse of ``parse_presets`` (``strict`` where it applies)."""
    out = []
    if presets & STRICT == STRICT:
        out.append("strict")
        presets &= ~STRICT
    out += [n for n, b in _PRESET_NAMES if b != STRICT and presets & b]
    return ",".join(out)


def resolve(
    *, presets: int, flags: int, rules: Sequence[Rule] | None, retain_session: bool
) -> tuple[int, list[Rule]]:
    """Go's implicit changes: (effective presets, the rule list init will load).

    Without ``retain_session`` the container may share the caller's terminal
    but not its session, so faking input must be impossible: DENY_TTY is
    added.  Custom rules replace the presets entirely.
    """
    if not retain_session:
        presets |= DENY_TTY
    if rules:
        return presets, list(rules)
    return presets, preset(presets, flags)


# -- JSON form (Go std.NativeRule) ------------------------------------------------


def _rule_obj(r: Rule) -> dict[str, Any]:
    obj: dict[str, Any] = {"syscall": r.syscall, "errno": r.errno}
    if r.arg is not None:
        arg: dict[str, int] = {"arg": r.arg.index, "op": r.arg.op}
        # Go's omitempty
        if r.arg.a:
            arg["a"] = r.arg.a
        if r.arg.b:
            arg["b"] = r.arg.b
        obj["arg"] = arg
    return obj


def rules_to_json(rules: Iterable[Rule]) -> str:
    """A JSON array, one rule per line, in the order init applies them."""
    import json

    lines = [json.dumps(_rule_obj(r), separators=(",", ":")) for r in rules]
    if not lines:
        return "[]\n"
    return "[\n  " + ",\n  ".join(lines) + "\n]\n"


def _int_field(where: str, obj: dict[str, Any], key: str, default: int | None = None) -> int:
    v = obj.get(key, default)
    if v is None:
        raise RuleError(f"{where}: missing {q(key)}")
    if not isinstance(v, int) or isinstance(v, bool):
        raise RuleError(f"{where}: {q(key)} must be an integer, not {type(v).__name__}")
    return v


def rules_from_json(text: str) -> list[Rule]:
    """Parse the JSON form; every syscall name must be known to libseccomp."""
    import json

    try:
        data = json.loads(text)
    except ValueError as e:
        raise RuleError(f"invalid seccomp rules: {e}") from None
    if not isinstance(data, list):
        raise RuleError("seccomp rules must be a JSON array of rule objects")
    rules = []
    for i, obj in enumerate(data):
        where = f"rule {i}"
        if not isinstance(obj, dict):
            raise RuleError(f"{where}: must be an object")
        unknown = set(obj) - {"syscall", "errno", "arg"}
        if unknown:
            raise RuleError(f"{where}: unknown field {q(sorted(unknown)[0])}")
        name = obj.get("syscall")
        if not isinstance(name, str):
            raise RuleError(f"{where}: {q('syscall')} must be a syscall name")
        syscall_number(name)  # SyscallNameError names it
        arg = None
        raw = obj.get("arg")
        if raw is not None:
            if not isinstance(raw, dict):
                raise RuleError(f"{where}: {q('arg')} must be an object")
            unknown = set(raw) - {"arg", "op", "a", "b"}
            if unknown:
                raise RuleError(f"{where}: unknown arg field {q(sorted(unknown)[0])}")
            arg = ArgCmp(
                _int_field(where, raw, "arg"),
                _int_field(where, raw, "op"),
                _int_field(where, raw, "a", 0),
                _int_field(where, raw, "b", 0),
            )
        rules.append(Rule(name, _int_field(where, obj, "errno"), arg))
    return rules


# -- libseccomp without pyseccomp (version, names) ---------------------------------

_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    """libseccomp through plain ctypes: dlopen by soname, no ``ldconfig`` run."""
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
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        lib.seccomp_version.argtypes = ()
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
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

#: Families ``socket()`` may create, in numerical order, with the flag each needs.
_SOCKET_FAMILIES = (
    (0, 0),  # AF_UNSPEC
    (1, 0),  # AF_UNIX
    (2, 0),  # AF_INET
    (10, 0),  # AF_INET6
    (16, 0),  # AF_NETLINK
    (29, ALLOW_CAN),  # AF_CAN
    (31, ALLOW_BLUETOOTH),  # AF_BLUETOOTH
)


def socket_comparisons(flags: int) -> list[tuple[int, int]]:
    """``(op, family)`` pairs that make ``socket`` fail with EAFNOSUPPORT.

    Every family between two allowed ones gets an EQ rule; everything above
    the last allowed one a single GE rule (Go and flatpak do the same).
    """
    out = []
    last = -1
    for family, need in _SOCKET_FAMILIES:
        if need and flags & need != need:
            continue
        out += [(EQ, f) for f in range(last + 1, family)]
        last = family
    out.append((GE, last + 1))
    return out


def _neg(e: OSError) -> int:
    return e.errno if e.errno is not None else 0


def _build(rules: Sequence[Rule], flags: int) -> Any:
    """A pyseccomp filter for ``rules``: the step every export shares."""
    if not rules:
        raise RuleError("invalid native rules slice")
    if _MACHINE not in _ARCHES:  # pragma: no cover - the seam refuses other arches first
        raise LibraryError(f"hakurei does not support {_MACHINE}")
    native, secondary = _ARCHES[_MACHINE]
    numbers = [syscall_number(r.syscall) for r in rules]

    import contextlib

    import pyseccomp as ps

    def new(arch: int) -> Any:
        try:
            f = ps.SyscallFilter(ps.ALLOW)
        except OSError as e:
            raise LibraryError.from_code(1, _neg(e)) from e
        try:
            # Without this libseccomp reports every kernel error as ECANCELED.
            f.set_attr(ps.Attr.API_SYSRAWRC, 1)
        except OSError as e:
            raise LibraryError.from_code(4, _neg(e)) from e
        code = 2 if arch == native else 3
        try:
            f.add_arch(arch)
        except OSError as e:
            if e.errno != _errno.EEXIST:
                raise LibraryError.from_code(code, _neg(e)) from e
        if arch != native:
            try:
                f.remove_arch(ps.Arch.NATIVE)
            except OSError as e:
                raise LibraryError.from_code(code, _neg(e)) from e
        for rule, nr in zip(rules, numbers, strict=True):
            args = []
            if rule.arg is not None:
                a = rule.arg
                args.append(ps.Arg(a.index, a.op, a.a, a.b))
            try:
                f.add_rule(ps.ERRNO(rule.errno), nr, *args)
            except OSError as e:
                raise LibraryError.from_code(4 if e.errno == _errno.EFAULT else 5, _neg(e)) from e
        return f

    filt = new(native)
    # Exact rules: libseccomp would otherwise rewrite socket() for ABIs that
    # multiplex it (libseccomp issue 8).  Only the native context gets them.
    socket_nr = syscall_number("socket")
    for op, family in socket_comparisons(flags):
        with contextlib.suppress(OSError):  # Go ignores these failures too
            filt.add_rule_exactly(ps.ERRNO(EAFNOSUPPORT), socket_nr, ps.Arg(0, op, family))
    if flags & ALLOW_MULTIARCH:
        try:
            filt.merge(new(secondary))
        except OSError as e:
            raise LibraryError.from_code(3, _neg(e)) from e
    return filt


def _export(filt: Any, pfc: bool) -> bytes:
    fd = os.memfd_create("hakurei-seccomp", os.MFD_CLOEXEC)
    try:

        class _Fd:
            def fileno(self) -> int:
                return fd

        try:
            (filt.export_pfc if pfc else filt.export_bpf)(_Fd())
        except OSError as e:
            raise LibraryError.from_code(6, _neg(e)) from e
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def compile_bpf(rules: Sequence[Rule], flags: int) -> bytes:
    """Compile ``rules`` plus the socket allowlist to classic BPF (no cache)."""
    return _export(_build(rules, flags), pfc=False)


def export_pfc(rules: Sequence[Rule], flags: int) -> str:
    """libseccomp's readable pseudo-filter code for the same program."""
    return _export(_build(rules, flags), pfc=True).decode()


# -- cache ------------------------------------------------------------------------------

_FORMAT = 1
_MAGIC = b"HKSCMP\x00\x01"
_HEADER = len(_MAGIC) + 16  # magic, u32 key length, u32 bpf length, u32 nrules, u32 crc32
_MEMORY: dict[str, tuple[bytes, int]] = {}


def cache_clear() -> None:
    """Forget the in-memory cache (benchmarks and tests)."""
    _MEMORY.clear()


def cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/hakurei``, else ``~/.cache/hakurei``; None if neither is known."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not base.startswith("/"):  # the XDG spec says relative values are ignored
        home = os.environ.get("HOME", "")
        if not home.startswith("/"):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "hakurei")


def _key(presets: int, flags: int, rules: Sequence[Rule]) -> str:
    # The rule text is part of the key, so a changed preset table (a new
    # hakurei) can never load an old program; presets only make it readable.
    head = (
        f"hakurei seccomp {_FORMAT}\narch {_MACHINE}\nlibseccomp {libseccomp_version()}\n"
        f"presets {presets:#x}\nflags {flags:#x}\n"
    )
    return head + "".join(r.canonical() + "\n" for r in rules)


def _filename(key: str) -> str:
    raw = key.encode()
    return f"seccomp-{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}.bpf"


def _pack(key: str, bpf: bytes, nrules: int) -> bytes:
    raw = key.encode()
    body = (
        len(raw).to_bytes(4, "little")
        + len(bpf).to_bytes(4, "little")
        + nrules.to_bytes(4, "little")
    )
    crc = zlib.crc32(body + raw + bpf)
    return _MAGIC + body + crc.to_bytes(4, "little") + raw + bpf


def _unpack(key: str, data: bytes) -> tuple[bytes, int] | None:
    """The cached program if ``data`` is a whole, intact entry for ``key``."""
    raw = key.encode()
    if len(data) < _HEADER or not data.startswith(_MAGIC):
        return None
    p = len(_MAGIC)
    klen = int.from_bytes(data[p : p + 4], "little")
    blen = int.from_bytes(data[p + 4 : p + 8], "little")
    nrules = int.from_bytes(data[p + 8 : p + 12], "little")
    crc = int.from_bytes(data[p + 12 : p + 16], "little")
    if klen != len(raw) or blen == 0 or blen % 8 or len(data) != _HEADER + klen + blen:
        return None
    if data[_HEADER : _HEADER + klen] != raw:
        return None
    if zlib.crc32(data[p : p + 12] + data[_HEADER:]) != crc:
        return None
    return data[_HEADER + klen :], nrules


def _disk_read(key: str) -> tuple[bytes, int] | None:
    d = cache_dir()
    if d is None:
        return None
    try:
        with open(os.path.join(d, _filename(key)), "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return None
    return _unpack(key, data)


def _disk_write(key: str, bpf: bytes, nrules: int) -> None:
    """Best effort: a cache that cannot be written only costs time."""
    d = cache_dir()
    if d is None:
        return
    path = os.path.join(d, _filename(key))
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        os.makedirs(d, 0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _pack(key, bpf, nrules))
        finally:
            os.close(fd)
        os.replace(tmp, path)  # readers see the old entry or the whole new one
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(tmp)


def filter_for(
    *,
    presets: int,
    flags: int,
    rules: Sequence[Rule] | None = None,
    retain_session: bool = False,
    disable: bool = False,
) -> tuple[bytes | None, int]:
    """The BPF program a container gets, and how many rules it holds.

    Go semantics: ``disable`` skips everything, including the socket rules
    (``(None, 0)``); see ``resolve`` for the implicit changes.  The count
    excludes the socket rules, as Go's ``%d filter rules loaded`` does.
    Cached in memory and on disk; a hit never imports pyseccomp.
    """
    if disable:
        return None, 0
    presets, rs = resolve(presets=presets, flags=flags, rules=rules, retain_session=retain_session)
    key = _key(presets, flags, rs)
    hit = _MEMORY.get(key)
    if hit is None:
        hit = _disk_read(key)
        if hit is None:
            hit = (compile_bpf(rs, flags), len(rs))
            _disk_write(key, *hit)
        _MEMORY[key] = hit
    return hit
