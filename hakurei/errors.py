"""Typed errors shared by the parent, the shim and init.

Every error here renders as one line a user can act on (``str(e)``), so the
CLI and init can print it without a traceback, and carries the values a caller
may want to match (an errno, a step, a path).  This module is imported by init
for every container: it must import nothing beyond ``os`` (and the leaf
``hakurei.std``).
"""

from __future__ import annotations

import os

# Exit statuses shared by init, the shim, the library and the CLI (defined in
# the leaf hakurei.std, where users find them; re-exported here as always).
from .std import EXIT_NOEXEC as EXIT_NOEXEC
from .std import EXIT_NOTFOUND as EXIT_NOTFOUND
from .std import EXIT_SETUP as EXIT_SETUP

TYPE_CHECKING = False
if TYPE_CHECKING:  # never at run time: init imports this module for every container
    from .results import Completed


def strerror(err: int) -> str:
    """Go-style lowercase strerror (``no such file or directory``).

    The reference messages use Go's lowercase text; CPython's is capitalised.
    """
    text = os.strerror(err)
    return text[:1].lower() + text[1:] if text else f"errno {err}"


#: Escapes Go's ``%q`` gives by name; every other unprintable character is numeric.
_NAMED = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _escape(ch: str) -> str:
    """The escape of one unprintable character (see ``q``)."""
    named = _NAMED.get(ch)
    if named is not None:
        return named
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x80:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def q(s: str | bytes) -> str:
    """Go ``%q``: the one way a path, name or value reaches a terminal.

    A file name comes from an image, a bind source or a user's argument: it
    may hold ESC, BEL or CR (terminal escape injection), C1 controls, DEL,
    bidi overrides, or bytes that are not UTF-8.  Everything unprintable is
    escaped: C0/DEL as ``\\xNN`` (or Go's named escapes), a byte that was not
    UTF-8 (a surrogate from ``surrogateescape``, or raw ``bytes``) as the
    ``\\xNN`` of that byte, any other unprintable code point as ``\\uNNNN``.
    The result is printable text between double quotes, and nothing else.
    """
    if isinstance(s, bytes):
        s = s.decode("utf-8", "surrogateescape")
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = ['"']
    for ch in s:
        if ch == "\\" or ch == '"':
            out.append("\\" + ch)
        else:
            out.append(ch if ch.isprintable() else _escape(ch))
    out.append('"')
    return "".join(out)


def show(s: str | bytes) -> str:
    """A path in a Go-style unquoted message (``cannot bind /a on /b``).

    As is when it is plain printable text (the reference's messages stay
    byte-identical), else ``q(s)``: no message carries a raw control byte.
    """
    if isinstance(s, str) and s and s.isprintable() and '"' not in s and "\\" not in s:
        return s
    return q(s)


def safe_line(text: str) -> str:
    """``text`` with every unprintable character escaped, as ``q`` would, unquoted.

    The last guard before a line reaches stderr: messages quote their values
    already, but a foreign exception's ``str()`` may not have, and a newline
    in it would also break the one-line rule.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def describe(exc: BaseException) -> str:
    """One line for any exception, without Python's ``[Errno N]`` noise."""
    if isinstance(exc, HakureiError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        name = exc.filename
        if name is not None and exc.filename2 is not None:  # symlink, rename: name both
            return f"{_name(name)} -> {_name(exc.filename2)}: {strerror(exc.errno)}"
        if name is not None:
            return f"{_name(name)}: {strerror(exc.errno)}"
        return strerror(exc.errno)
    return safe_line(str(exc)) or type(exc).__name__


def _name(name: object) -> str:
    """An OSError's filename (str, bytes, an fd number) for a message."""
    if isinstance(name, (str, bytes)):
        return show(name)
    return str(name)


class HakureiError(Exception):
    """Base of every error this package raises on purpose."""

    #: exit status a process reports when this error ends it
    status = EXIT_SETUP


class SetupError(HakureiError):
    """Container setup failed; ``str()`` is the whole message."""


class StartError(HakureiError):
    """The parent could not start a container: ``cannot <step>: <cause>``.

    ``step`` names what was being done, ``cause`` is the underlying exception
    (if any), so callers can match ``isinstance(e.cause, FileNotFoundError)``.
    When the container's own setup failed, ``step`` is the line init printed,
    ``status`` the container's exit status and ``result`` (from ``run_sync`` or
    ``run``) the ``Completed`` with whatever output was captured.
    """

    def __init__(self, step: str, cause: BaseException | None = None) -> None:
        super().__init__(step, cause)
        self.step = step
        self.cause = cause
        self.result: Completed | None = None

    def __str__(self) -> str:
        if self.cause is None:
            return self.step
        return f"cannot {self.step}: {describe(self.cause)}"


class OpError(HakureiError, ValueError):
    """An op was built with values that can never work (caught before any syscall)."""


class ParamsError(OpError):
    """A container parameter (uid, hostname, env, a delay...) can never work.

    Raised by ``Params``/``Container`` in the caller's process, before
    anything is spawned; the CLI prints it as one line and exits 125.  The
    shim's decoder runs the same checks and reports them as ``SetupError``.
    A subclass of ``OpError`` (and so of ``ValueError``): code that caught
    bad parameters as ``OpError`` keeps working.
    """


class AbsoluteError(OpError):
    """A path that must be absolute was not (Go ``check.AbsoluteError``)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f"path {q(self.path)} is not absolute"


class PathError(HakureiError, OSError):
    """An operation on a path failed: ``cannot <op> <path>: <errno text>``."""

    def __init__(self, op: str, path: str, err: int) -> None:
        OSError.__init__(self, err, strerror(err), path)
        self.op = op
        self.path = path

    def __str__(self) -> str:
        assert self.errno is not None
        return f"cannot {self.op} {show(self.path)}: {strerror(self.errno)}"


class SourceError(PathError):
    """A bind's source is missing or unusable, in bubblewrap's words.

    ``Can't find source path SRC: No such file or directory``: scripts and
    bubblewrap's own test suite grep for exactly this, so it keeps bwrap's
    capitalised ``strerror`` instead of ours.
    """

    def __init__(self, path: str, err: int) -> None:
        super().__init__("find source path", path, err)

    def __str__(self) -> str:
        assert self.errno is not None
        return f"Can't find source path {show(self.path)}: {os.strerror(self.errno)}"


class SymlinkExistsError(PathError):
    """Something else is already where a symlink was to be made, in bubblewrap's words.

    ``existing`` is the other link's contents, or None when the entry is not
    a link at all.  Users grep for ``existing destination is``.
    """

    def __init__(self, path: str, existing: str | None) -> None:
        super().__init__("create symlink", path, 17)  # EEXIST
        self.existing = existing

    def __str__(self) -> str:
        where = f"Can't make symlink at {show(self.path)}"
        if self.existing is None:
            return f"{where}: destination exists and is not a symlink"
        return f"{where}: existing destination is {show(self.existing)}"


class MountError(HakureiError, OSError):
    """mount(2) failed; the message says which kind of mount (reference §10.3)."""

    def __init__(
        self, source: str, target: str, fstype: str, flags: int, data: str, err: int
    ) -> None:
        OSError.__init__(self, err, strerror(err), target)
        self.source = source
        self.target = target
        self.fstype = fstype
        self.flags = flags
        self.data = data

    def __str__(self) -> str:
        assert self.errno is not None
        why = strerror(self.errno)
        ms_bind, ms_remount = 0x1000, 0x20
        if self.flags & ms_bind and self.flags & ms_remount:
            return f"cannot remount {show(self.target)}: {why}"
        if self.flags & ms_bind:
            return f"cannot bind {show(self.source)} on {show(self.target)}: {why}"
        if self.fstype:
            return f"cannot mount {show(self.fstype)} on {show(self.target)}: {why}"
        return f"cannot mount {show(self.target)}: {why}"


class OpRepeatError(HakureiError):
    """A non-repeatable op (autoetc, autoroot) appeared twice."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"{self.name} is not repeatable"


class OpStateError(HakureiError):
    """An op reached a state its validation should have made impossible."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"impossible {self.name} state reached"


class TmpfsSizeError(OpError):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def __str__(self) -> str:
        return f"tmpfs size {self.size} out of bounds"


class OverlayArgumentError(OpError):
    """Bad overlay arguments; ``str()`` carries the reference's message."""


class MountinfoError(HakureiError):
    """/proc/self/mountinfo could not be parsed or lacks a mount point."""

    def __init__(self, op: str, msg: str, line: int = -1) -> None:
        super().__init__(op, msg, line)
        self.op = op
        self.msg = msg
        self.line = line

    def __str__(self) -> str:
        where = f" at line {self.line}" if self.line >= 0 else ""
        return f"cannot {self.op} mountinfo{where}: {self.msg}"


class ServerLostError(StartError):
    """The fork server that started a container died, and the container with it.

    Its exit status is unknown (nobody could reap it for us).  A ``StartError``:
    the container's own program did not decide this, and a caller that retries
    on ``StartError`` gets a new server on the next start.
    """


class ProgramError(HakureiError):
    """The initial program could not be started (126: not executable, 127: not found)."""

    def __init__(self, path: str, err: int) -> None:
        super().__init__(path, err)
        self.path = path
        self.errno = err
        self.status = EXIT_NOTFOUND if err == 2 else EXIT_NOEXEC  # ENOENT

    def __str__(self) -> str:
        return f"cannot start {show(self.path)}: {strerror(self.errno)}"
