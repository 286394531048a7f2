"""A parser for proc_pid_mountinfo(5), strict in the same places as Go's ``vfs``.

Remount uses it to prove that a target is a mount point before changing its
attributes; a malformed line is an error rather than a skipped line, because
a parser that guesses could match the wrong mount.

Error messages match the reference (§6.6): ``cannot parse mountinfo at line
N: unexpected field count`` and so on.  Go reports the number of entries read
before the bad line (a 0-based index); we report the 1-based line number a
person would look up, since nothing matches on the number itself.
"""

from __future__ import annotations

import os

from ..errors import MountinfoError, q

ERR_FIELDS = "unexpected field count"
ERR_EMPTY = "unexpected empty field"
ERR_DEVNO = "bad maj:min field"
ERR_SEP = "bad optional fields separator"

_INT64_MAX = (1 << 63) - 1
_DIGITS = frozenset(b"0123456789")
_OCTAL = frozenset(b"01234567")


class Entry:
    """One mountinfo line; text fields are unmangled and decoded like file names."""

    __slots__ = (
        "fs_options",
        "fstype",
        "id",
        "major",
        "minor",
        "optional",
        "parent",
        "root",
        "source",
        "target",
        "vfs_options",
    )

    def __init__(
        self,
        id: int,
        parent: int,
        major: int,
        minor: int,
        root: str,
        target: str,
        vfs_options: str,
        optional: list[str],
        fstype: str,
        source: str,
        fs_options: str,
    ) -> None:
        self.id = id
        self.parent = parent
        self.major = major
        self.minor = minor
        self.root = root
        self.target = target
        self.vfs_options = vfs_options
        self.optional = optional
        self.fstype = fstype
        self.source = source
        self.fs_options = fs_options

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Entry:
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable value object

    def __repr__(self) -> str:
        return (
            f"Entry({self.id}, {self.parent}, {self.major}, {self.minor}, {self.root!r}, "
            f"{self.target!r}, {self.vfs_options!r}, {self.optional!r}, {self.fstype!r}, "
            f"{self.source!r}, {self.fs_options!r})"
        )


def unmangle(raw: bytes) -> str:
    r"""Undo the kernel's octal escapes (``\040`` space, ``\011``, ``\012``, ``\134``).

    The kernel only ever writes ``\`` followed by three octal digits, the
    first of them 0 or 1 (§6.6); anything else is kept as it is.
    """
    if b"\\" not in raw:
        return os.fsdecode(raw)
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C and i + 3 < n:
            a, b, d = raw[i + 1], raw[i + 2], raw[i + 3]
            if a in b"01" and b in _OCTAL and d in _OCTAL:
                out.append((a - 48) * 64 + (b - 48) * 8 + (d - 48))
                i += 4
                continue
        out.append(c)
        i += 1
    return os.fsdecode(bytes(out))


def _atoi(field: bytes) -> int:
    """Go ``strconv.Atoi``: optional sign, decimal digits, 64-bit range."""
    digits = field[1:] if field[:1] in (b"+", b"-") else field
    if not digits or not all(c in _DIGITS for c in digits):
        raise _NumError(field, "invalid syntax")
    v = int(field)
    if not -_INT64_MAX - 1 <= v <= _INT64_MAX:
        raise _NumError(field, "value out of range")
    return v


class _NumError(Exception):
    def __init__(self, num: bytes, why: str) -> None:
        super().__init__(num, why)
        self.msg = f"numeric field {q(num.decode('utf-8', 'backslashreplace'))} {why}"


def _devno(field: bytes) -> tuple[int, int]:
    major, sep, minor = field.partition(b":")
    if not sep or not major.isdigit() or not minor.isdigit():
        raise ValueError(ERR_DEVNO)
    return int(major), int(minor)


def parse_line(line: bytes) -> Entry:
    """Parse one line; raise ValueError (message only) or _NumError."""
    # Split on single spaces, as the kernel writes them: a doubled space is an
    # empty field, not a separator to collapse.
    f = line.split(b" ")
    if len(f) < 10:
        raise ValueError(ERR_FIELDS)
    mid = _atoi(f[0])
    parent = _atoi(f[1])
    major, minor = _devno(f[2])
    root, target, vfs = unmangle(f[3]), unmangle(f[4]), unmangle(f[5])
    if not root or not target or not vfs:
        raise ValueError(ERR_EMPTY)
    # The three fields after the separator are fixed, so the separator's place
    # is known from the end; the optional fields are whatever lies between.
    sep = len(f) - 4
    if f[sep] != b"-":
        raise ValueError(ERR_SEP)
    fstype = unmangle(f[sep + 1])
    if not fstype:
        raise ValueError(ERR_EMPTY)
    return Entry(
        mid,
        parent,
        major,
        minor,
        root,
        target,
        vfs,
        [os.fsdecode(o) for o in f[6:sep]],
        fstype,
        unmangle(f[sep + 2]),
        unmangle(f[sep + 3]),
    )


def parse(text: bytes | str) -> list[Entry]:
    """Every entry of a mountinfo document, in file order.

    Raises MountinfoError("parse", msg, line) on the first bad line.
    """
    raw = os.fsencode(text) if isinstance(text, str) else text
    lines = raw.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    entries: list[Entry] = []
    for number, line in enumerate(lines, 1):
        try:
            entries.append(parse_line(line[:-1] if line.endswith(b"\r") else line))
        except _NumError as e:
            raise MountinfoError("parse", e.msg, number) from None
        except ValueError as e:
            raise MountinfoError("parse", str(e), number) from None
    return entries
