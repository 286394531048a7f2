"""What every subcommand shares: the option table, its parser and its help.

A subcommand is described by one table, a tuple of :class:`Opt`.  Each entry
carries its spellings, its value names, its help text, its help group and
what it does: either ``act`` (a setting, applied to the parsed arguments as
soon as it is read) or ``op`` (an op option, kept in command-line order and
turned into ops later by :func:`hakurei.cli.exec.build_ops`).  The parser,
``--help`` and the option → op translation all read the same entries, so an
option cannot be parsed but undocumented, or documented but not built.

The seccomp options live here too: ``exec`` and ``seccomp`` take exactly the
same ones (one import fewer on ``exec``'s path than a module of their own).

Plain classes and tuples, no argparse, dataclasses or typing at run time:
``hakurei exec`` imports this for every container (see ``hakurei.cli``).
"""

from __future__ import annotations

import os

from .. import std
from ..errors import HakureiError, describe, q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..ops import Ops

#: Largest --seccomp-rules file read (1 MiB: tens of thousands of rules).
RULES_MAX = 1 << 20


class UsageError(HakureiError):
    """A bad command line: one line, exit 125."""


class Args:
    """A command line, parsed but not yet interpreted.

    ``sequence`` keeps the op options (and ``--size``/``--perms``) in
    command-line order; settings land in ``values`` (last one wins),
    ``flags``, or the lists that repeatable options append to.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.sequence: list[tuple[Opt, list[str]]] = []
        self.values: dict[str, str] = {}
        self.flags: set[str] = set()
        #: environment edits in order: ("clear",), ("set", VAR, VALUE), ("keep"/"unset", VAR)
        self.env: list[tuple[str, ...]] = []
        self.pass_fds: list[int] = []
        #: fds the shim keeps open for init, not the program's (``--bind-fd``'s copies)
        self.hold_fds: list[int] = []
        #: --cap-add/--cap-drop in order: ("add"/"drop", NAME)
        self.caps: list[tuple[str, str]] = []
        #: raw seccomp programs read from --seccomp-fd/--add-seccomp-fd, in order
        self.seccomp_programs: list[bytes] = []
        self.program = ""
        self.args: list[str] = []
        self.help = False


class Builder:
    """The op translation's state: the ops so far and the pending ``--size``/``--perms``."""

    def __init__(self, ops: Ops, uid: int | None = None, gid: int | None = None) -> None:
        self.ops = ops
        #: the container's ids, for the passwd and group that --etc places
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.size: int | None = None
        self.perms: int | None = None
        #: /dev mounts to make read-only after the last op (see ``--dev``)
        self.seal: list[str] = []
        #: files init locks once every other op ran (see ``--lock-file``)
        self.locks: list[str] = []
        #: fds init must inherit for the ops that name them (see ``--bind-fd``)
        self.hold: list[int] = []

    def take(self, name: str, size: bool, perms: bool) -> tuple[int | None, int | None]:
        """The pending --size/--perms for op ``name``; a usage error where it takes none."""
        if (self.size is not None and not size) or (self.perms is not None and not perms):
            which = "--size" if self.size is not None and not size else "--perms"
            raise UsageError(f"{which} does not apply to {name}")
        got = self.size, self.perms
        self.size = self.perms = None
        return got


class Opt:
    """One option: spellings, value names, help, group, and what it does."""

    __slots__ = ("act", "group", "help", "metavars", "names", "op")

    def __init__(
        self,
        names: str | tuple[str, ...],
        metavars: tuple[str, ...],
        group: str,
        help: str,
        *,
        act: Callable[[Args, str, list[str]], None] | None = None,
        op: Callable[[Builder, str, list[str]], None] | None = None,
    ) -> None:
        self.names = (names,) if isinstance(names, str) else names
        self.metavars = metavars
        self.group = group
        self.help = help
        self.act = act
        self.op = op

    @property
    def name(self) -> str:
        return self.names[0]


def store(a: Args, name: str, v: list[str]) -> None:
    """A value setting: the last one wins."""
    a.values[name] = v[0]


def flag(a: Args, name: str, v: list[str]) -> None:
    a.flags.add(name)


def flag_as(canonical: str) -> Callable[[Args, str, list[str]], None]:
    """Another spelling (bubblewrap's, say) of the flag ``canonical``."""

    def act(a: Args, name: str, v: list[str]) -> None:
        a.flags.add(canonical)

    return act


def accept(a: Args, name: str, v: list[str]) -> None:
    """An option that asks for what is done anyway (``--unshare-pid``): recorded, no effect."""
    a.flags.add(name)


class Table:
    """A subcommand's options by spelling, with its help text rendered on demand."""

    def __init__(self, command: str, options: tuple[Opt, ...], refused: tuple[str, ...] = ()):
        self.command = command
        self.options = options
        self.by_name: dict[str, Opt] = {}
        for opt in options:
            for n in opt.names:
                assert n not in self.by_name, n
                self.by_name[n] = opt
        self.refused = frozenset(refused)

    def parse(self, argv: list[str], *, program: bool = True) -> Args:
        """Read options in order until ``--`` or the first non-option (PROGRAM)."""
        a = Args(self.command)
        argv = list(argv)
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg == "--":
                i += 1
                break
            if arg in ("-h", "--help"):
                a.help = True
                return a
            if not arg.startswith("-") or arg == "-":
                break
            name, eq, inline = arg.partition("=")
            opt = self.by_name.get(name)
            if opt is None:
                if name in self.refused:
                    raise UsageError(f"{self.command}: {name} is not supported by hakurei")
                raise UsageError(f"{self.command}: unknown option {q(arg)} (see --help)")
            n = len(opt.metavars)
            if eq:
                if n != 1:
                    what = "no value" if n == 0 else " ".join(opt.metavars)
                    raise UsageError(f"{self.command}: {name} takes {what}, not '='")
                values, i = [inline], i + 1
            else:
                values = argv[i + 1 : i + 1 + n]
                if len(values) < n:
                    raise UsageError(f"{self.command}: {name} needs {' '.join(opt.metavars)}")
                i += 1 + n
            if name == "--args":  # bubblewrap: more arguments, NUL-separated, from an fd
                argv[i:i] = read_args_fd(values[0])
                continue
            if opt.op is not None:
                a.sequence.append((opt, values))
            elif opt.act is not None:
                opt.act(a, name, values)
        if program:
            if i >= len(argv):
                raise UsageError(f"{self.command}: no PROGRAM given")
            a.program, a.args = argv[i], argv[i + 1 :]
        elif i < len(argv):
            raise UsageError(f"{self.command}: unexpected argument {q(argv[i])}")
        return a

    def help(self, usage: str, intro: str, groups: tuple[str, ...], tail: str = "") -> str:
        """``--help``: the usage line, ``intro``, then every option of each group in order."""
        out = [usage, "", intro.rstrip("\n"), ""]
        for group in groups:
            out.append(f"{group}:")
            for opt in self.options:
                if opt.group != group:
                    continue
                left = "  " + ", ".join(opt.names)
                if opt.metavars:
                    left += " " + " ".join(opt.metavars)
                if len(left) > 26:
                    out.append(left)
                    left = ""
                if left or opt.help:
                    out += wrap(opt.help, first=f"{left:<27}", indent=" " * 27)
        if tail:
            out += ["", tail.rstrip("\n")]
        return "\n".join(out) + "\n"


def wrap(text: str, first: str = "", indent: str = "", width: int = 96) -> list[str]:
    """``text`` as lines of at most ``width`` columns, the first after ``first``."""
    lines: list[str] = []
    line = first
    for word in text.split():
        if len(line) + 1 + len(word) > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += word if not line or line.endswith(" ") else " " + word
    lines.append(line.rstrip())
    return lines


#: Largest --args input (bubblewrap reads any size; ARG_MAX bounds what could exec anyway).
ARGS_MAX = 2 << 20


def parse_fd(name: str, text: str) -> int:
    """An fd number given on the command line, which must be open in this process."""
    try:
        fd = int(text)
    except ValueError:
        raise UsageError(f"{name}: {q(text)} is not a file descriptor number") from None
    if not 0 <= fd < 1 << 20:
        raise UsageError(f"{name}: {fd} is out of range")
    try:
        os.fstat(fd)
    except OSError as e:
        raise UsageError(f"{name}: fd {fd}: {describe(e)}") from None
    return fd


def read_args_fd(text: str) -> list[str]:
    """bubblewrap's ``--args FD``: NUL-terminated arguments read to end of file, then closed."""
    data = read_fd("--args", text, ARGS_MAX)
    if data.endswith(b"\0"):
        data = data[:-1]
    if not data:
        return []
    return [os.fsdecode(part) for part in data.split(b"\0")]


def read_fd(name: str, text: str, limit: int) -> bytes:
    """Everything on the fd ``text`` names, to end of file, at most ``limit`` bytes; then closed.

    bubblewrap's ``--file``/``--bind-data``/``--ro-bind-data`` read a pipe,
    a file or ``/dev/null`` alike, so any readable fd is taken; one that
    never ends (``/dev/zero``) fails at the limit instead of filling memory.
    """
    fd = parse_fd(name, text)
    chunks: list[bytes] = []
    got = 0
    try:
        while chunk := os.read(fd, min(limit + 1 - got, 1 << 20)):
            chunks.append(chunk)
            got += len(chunk)
            if got > limit:
                raise UsageError(f"{name}: more than {limit} bytes on fd {fd}")
    except OSError as e:
        raise UsageError(f"{name}: cannot read fd {fd}: {describe(e)}") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return b"".join(chunks)


def read_seccomp_fd(name: str, text: str) -> bytes:
    """bwrap's ``--seccomp FD``: a raw seccomp program read to end of file, then closed.

    ``struct sock_filter`` is 8 bytes, and the kernel takes at most
    ``BPF_MAXINSNS`` of them: anything else is refused here, in one line.
    """
    from ..wire import BPF_MAXINSNS, check_seccomp_program

    data = read_fd(name, text, 8 * BPF_MAXINSNS)
    try:
        check_seccomp_program(data, UsageError)
    except UsageError as e:
        raise UsageError(f"{name}: {e}") from None
    return data


def read_regular(path: str, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them, or a UsageError.

    Opened ``O_NONBLOCK`` (a FIFO must not hang us: it fails the regular-file
    check instead) and ``O_NOCTTY`` (a terminal must not become ours), then
    checked with fstat on the open fd, so what is read is what was checked.
    A device (``/dev/zero``), a directory or a file over the limit is refused
    before a byte is read; a file that grows while read is cut at the limit.
    """
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"{what}: cannot open {describe(e)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{what}: {q(path)} is not a regular file")
        too_big = UsageError(f"{what}: {q(path)} is larger than {limit} bytes")
        if st.st_size > limit:
            raise too_big
        chunks: list[bytes] = []
        got = 0
        while chunk := os.read(fd, min(limit + 1 - got, 1 << 20)):
            chunks.append(chunk)
            got += len(chunk)
            if got > limit:
                raise too_big
        return b"".join(chunks)
    except OSError as e:
        raise UsageError(f"{what}: cannot read {q(path)}: {describe(e)}") from None
    finally:
        os.close(fd)


# -- the seccomp options, shared by exec and seccomp -----------------------------------

SECCOMP = "seccomp"
SECCOMP_OPTIONS = (
    Opt(
        "--seccomp",
        ("PRESET[,PRESET...]",),
        SECCOMP,
        "everyday, strict, ext, deny-ns, deny-tty, deny-devel, linux32, allow-id-calls "
        "(default: everyday = strict but for calls that can only set ids to your own)",
        act=store,
    ),
    Opt(
        "--seccomp-rules",
        ("FILE.json",),
        SECCOMP,
        "custom rules (JSON) that replace the presets",
        act=store,
    ),
    Opt("--no-seccomp", (), SECCOMP, "no syscall filter at all", act=flag),
    Opt("--multiarch", (), SECCOMP, "allow the secondary ABI (x86, arm)", act=flag),
    Opt("--allow-can", (), SECCOMP, "allow AF_CAN sockets", act=flag),
    Opt("--allow-bluetooth", (), SECCOMP, "allow AF_BLUETOOTH sockets", act=flag),
    Opt(
        "--allow-io-uring",
        (),
        SECCOMP,
        "keep io_uring (refused by default: it bypasses the socket rules)",
        act=flag,
    ),
)


def filter_settings(a: Args) -> tuple[bool, int, int, list[Any] | None]:
    """(disabled, presets, flags, custom rules) from the seccomp options, each value checked.

    The bits come from the leaf ``std``: without ``--seccomp`` or
    ``--seccomp-rules`` no seccomp module is imported at all (the default's
    program is compiled ahead, ``hakurei.seccomp.cache``).
    """
    flags = (
        std.ALLOW_MULTIARCH * ("--multiarch" in a.flags)
        | std.ALLOW_CAN * ("--allow-can" in a.flags)
        | std.ALLOW_BLUETOOTH * ("--allow-bluetooth" in a.flags)
        | std.ALLOW_IO_URING * ("--allow-io-uring" in a.flags)
    )
    if "--no-seccomp" in a.flags:
        return True, 0, flags, None
    presets = std.EVERYDAY  # hakurei exec's (and so hakurei seccomp's) default
    if "--seccomp" in a.values:
        from .. import seccomp as sc

        try:
            presets = sc.parse_presets(a.values["--seccomp"])
        except ValueError as e:
            raise UsageError(f"--seccomp: {e}") from None
    rules = None
    if "--seccomp-rules" in a.values:
        from .. import seccomp as sc

        path = a.values["--seccomp-rules"]
        what = f"--seccomp-rules {q(path)}"
        raw = read_regular(path, RULES_MAX, what)
        try:
            rules = sc.rules_from_json(raw.decode())
        except RecursionError:
            raise UsageError(f"{what}: JSON nested too deeply") from None
        except ValueError as e:  # also UnicodeDecodeError
            raise UsageError(f"{what}: {describe(e)}") from None
    return False, presets, flags, rules
