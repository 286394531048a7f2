"""Syscall filter: presets → rules → BPF, compiled in the parent (reference §8).

Init never imports this module.  The parent resolves the presets to an ordered
rule list, compiles it with libseccomp (through ctypes) and ships the BPF bytes
in the setup record; init installs them with ``seccomp(2)`` and the initial
process inherits the filter across fork+exec.

The program is compiled in every process that starts a container, on first
use, and kept in memory only: libseccomp compiles STRICT in ~0.3 ms once it is
loaded, and it is loaded by soname, without pyseccomp's ``ldconfig`` runs.
Nothing is read from disk: a cache in the user's directories could be
rewritten by any container that has them bound writable, and the next
container would load what it left there.

The filter is a deny-list with default action allow.  Every rule returns EPERM
or ENOSYS (ENOSYS where userspace must fall back: glibc retries clone3 as clone
only on ENOSYS).  Appended to every filter, whatever the presets: a
socket-family allowlist (any family but AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6,
AF_NETLINK, and AF_CAN, AF_BLUETOOTH when allowed, fails with EAFNOSUPPORT),
and ``appended_rules``: io_uring refused with ENOSYS (its IORING_OP_SOCKET
would bypass the allowlist; ``ALLOW_IO_URING`` keeps it) and ``quotactl_fd``
with EPERM, as ``quotactl``.

One preset is hakurei's own, ``EVERYDAY`` (``everyday``, the CLI's default):
``STRICT`` without Go's ns-ext group, the set*id/setgroups/chown calls.
Inside a container only one uid and one gid are mapped and setgroups is
denied in the user namespace, so these calls can only set the ids to what
they already are; denying them breaks glibc's ``posix_spawn`` with
POSIX_SPAWN_RESETIDS (``make``), ``xterm`` and ``chown`` to one's own ids,
and protects nothing.  ``ALLOW_ID_CALLS`` is the bit that leaves the group
out; the Go presets and their programs are unchanged.

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

from .errors import HakureiError, q, strerror

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Iterable, Sequence
    from typing import Any

__all__ = [
    "ALLOW_BLUETOOTH",
    "ALLOW_CAN",
    "ALLOW_ID_CALLS",
    "ALLOW_IO_URING",
    "ALLOW_MULTIARCH",
    "DENY_DEVEL",
    "DENY_NS",
    "DENY_TTY",
    "EQ",
    "EVERYDAY",
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
    "appended_rules",
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
#: hakurei's own, not in Go: leave out the ns-ext group (set*id, setgroups,
#: chown), which ``EXT | DENY_NS`` would add.  No effect without both.
ALLOW_ID_CALLS = 32
#: The CLI's default (``hakurei exec``, ``hakurei seccomp``, the desktop
#: launcher): every rule of ``STRICT`` but the id-change calls, which only
#: ever set ids to what they are in a container with single-id maps.
EVERYDAY = STRICT | ALLOW_ID_CALLS

# Export flags (Go seccomp.ExportFlag).
ALLOW_MULTIARCH = 1
ALLOW_CAN = 2
ALLOW_BLUETOOTH = 4
#: hakurei's own: keep io_uring (not refused by ``appended_rules``).  Not in Go.
ALLOW_IO_URING = 8

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
    ("allow-id-calls", ALLOW_ID_CALLS),
    ("strict", STRICT),
    ("everyday", EVERYDAY),
)
#: Names of several bits, widest first: ``format_presets`` uses the first that fits.
_COMPOSITE_NAMES = (("everyday", EVERYDAY), ("strict", STRICT))

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

# Go's ns-ext group: every call that changes a file's owner or the process's
# ids.  ALLOW_ID_CALLS (EVERYDAY) leaves it out; see the module docstring.
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
        if presets & DENY_NS and not presets & ALLOW_ID_CALLS:
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
    """The inverse of ``parse_presets`` (``everyday`` or ``strict`` where it applies)."""
    out = []
    for name, bits in _COMPOSITE_NAMES:
        if presets & bits == bits:
            out.append(name)
            presets &= ~bits
            break
    composite = {b for _, b in _COMPOSITE_NAMES}
    out += [n for n, b in _PRESET_NAMES if b not in composite and presets & b]
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


# -- what is appended to every filter -------------------------------------------------------

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


# io_uring's IORING_OP_SOCKET (Linux 5.19) creates sockets without calling
# socket(), so the family allowlist above means nothing while a ring can be set
# up: AF_VSOCK (not per network namespace), AF_PACKET, AF_ALG.  Setting up the
# ring is refused with ENOSYS, what a kernel built without io_uring (or older
# than 5.1) answers: every io_uring user must handle it already and falls back
# to plain syscalls (libuv does, whatever the errno), whereas EPERM became a
# documented answer only with the io_uring_disabled sysctl (6.6) and older code
# may take it as a hard error.  enter and register need a ring fd the
# container cannot create; they are refused too, in case one is passed in.
_IO_URING = _group(ENOSYS, "io_uring_setup", "io_uring_enter", "io_uring_register")
# quotactl_fd (Linux 5.14) is quotactl on a file descriptor: the same reason to
# deny it as the common group's quotactl, with the same errno.
_APPENDED = _group(EPERM, "quotactl_fd")


def appended_rules(flags: int) -> list[Rule]:
    """hakurei's own rules, added to every filter after the presets or custom rules.

    Like the socket allowlist, they apply whatever the presets (custom rules
    too) and only ``disable`` drops them; they are not part of the Go presets,
    whose compiled programs the unit tests pin byte for byte, nor of the rule
    count.  A custom rule for the same syscall cannot make a hole: libseccomp
    keeps a syscall's first unconditional action and lets an unconditional
    rule override conditional ones, so the call stays refused (with the
    custom errno if the custom rule is unconditional).  ``ALLOW_IO_URING``
    drops the io_uring rules.
    """
    rules = list(_APPENDED)
    if not flags & ALLOW_IO_URING:
        rules += _IO_URING
    return rules


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


# -- per-process cache --------------------------------------------------------------------

#: Compiled programs by (flags, rules), for the life of this process only.  Never
#: on disk: a file the user can write is a file a container with the user's home
#: bound writable can write, and the next container would load what it left.
_MEMORY: dict[tuple[int, tuple[Rule, ...]], tuple[bytes, int]] = {}


def cache_clear() -> None:
    """Forget the in-memory cache (benchmarks and tests)."""
    _MEMORY.clear()


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
    excludes the appended rules (socket allowlist, ``appended_rules``), as
    Go's ``%d filter rules loaded`` excludes the socket rules.  Compiled on the
    first call in a process (~0.3 ms for STRICT) and kept in memory.
    """
    if disable:
        return None, 0
    presets, rs = resolve(presets=presets, flags=flags, rules=rules, retain_session=retain_session)
    key = (flags, tuple(rs))
    hit = _MEMORY.get(key)
    if hit is None:
        hit = _MEMORY[key] = (compile_bpf(rs, flags), len(rs))
    return hit
