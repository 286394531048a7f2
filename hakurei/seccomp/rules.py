"""What a rule is: ``Rule`` and ``ArgCmp``, checked when they are built.

Every other module of the package speaks in these records: the presets are
tables of them, ``hakurei exec --seccomp-rules`` parses into them, the
compiler turns them into libseccomp calls.  They are checked here, on
construction, so a rule that libseccomp could never compile (a bad errno,
operator or argument index, a datum outside 64 bits) fails in the caller's
code, as a ``RuleError`` naming the field, and never reaches libseccomp.
This module loads no library: building rules costs no ctypes.
"""

from __future__ import annotations

import errno as _errno

from ..errors import HakureiError, q

# enum scmp_compare
NE, LT, LE, EQ, GE, GT, MASKED_EQ = 1, 2, 3, 4, 5, 6, 7
_OP_NAMES = {NE: "NE", LT: "LT", LE: "LE", EQ: "EQ", GE: "GE", GT: "GT", MASKED_EQ: "MASKED_EQ"}

#: What a filter answers: a rule returns EPERM or ENOSYS, a refused socket
#: family EAFNOSUPPORT.
EPERM = _errno.EPERM
ENOSYS = _errno.ENOSYS
EAFNOSUPPORT = _errno.EAFNOSUPPORT

_U64 = (1 << 64) - 1


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


def group(errno: int, *names: str) -> tuple[Rule, ...]:
    """Unconditional rules, one per name, all with ``errno``: how the tables are written."""
    return tuple(Rule(n, errno) for n in names)
