"""``hakurei bwrap [OPTIONS] COMMAND [ARGS...]``: bubblewrap's command line on our container.

The compatibility door for tools that build ``bwrap`` argument lists
(flatpak, bubblejail, pressure-vessel, scripts): bubblewrap 0.11's options with
its semantics and defaults (the environment inherited unless ``--clearenv``,
the working directory kept, the network shared unless ``--unshare-net``, no
syscall filter unless one is given, the caller's session unless
``--new-session``, the program's own exit status and 1 for a failed setup,
messages that start ``bwrap:`` in bubblewrap's words).  ``hakurei exec`` keeps
its own safer defaults.

What the container still gets from us, whatever the command line: a PID 1
that reaps and forwards signals, every destination resolved inside the new
root by fd, read-only binds that reach submounts, no capabilities and
``no_new_privs``, and new user, mount, pid, ipc, uts and cgroup namespaces
even where bubblewrap would share them (docs/bwrap.md lists the differences).

Like ``exec``, this process parses, builds the setup record and then becomes
the container's shim itself.  A ``bwrap``-named symlink to the ``hakurei``
script runs this directly (bin/hakurei), so ``usage: PATH`` and ``bwrap:``
name what the caller ran.
"""

from __future__ import annotations

import os
import sys

from ..errors import HakureiError, describe, safe_line
from ..ops import Ops
from ..std import BIND_DEVICE, BIND_OPTIONAL, BIND_WRITABLE, MS_RDONLY
from . import exec as _exec
from ._table import UsageError, read_args_fd, read_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from ..wire import Setup

#: What ``--version`` prints: the bubblewrap release whose command line this is.
BWRAP_VERSION = "0.11.1"
#: Largest ``--size``: bubblewrap's MAX_TMPFS_BYTES (SIZE_MAX / 2).
MAX_TMPFS_BYTES = (1 << 63) - 1
#: Largest input read from a ``--file``/``--bind-data``/``--seccomp`` fd.
DATA_MAX = 16 << 20

EXIT_FAILURE = 1


class BwrapError(UsageError):
    """A bad command line or a failed setup, said as bubblewrap says it: ``bwrap: ...``, exit 1."""


class Spec:
    """The command line as read so far: ops in order, settings, and what the next op takes."""

    def __init__(self, argv0: str) -> None:
        self.argv0 = argv0
        self.ops = Ops()
        self.perms: int | None = None
        self.size: int | None = None
        self.overlay_src: list[str] = []
        #: environment edits in order: ("clear",), ("set", VAR, VALUE), ("unset", VAR)
        self.env: list[tuple[str, ...]] = []
        self.flags: set[str] = set()
        self.values: dict[str, str] = {}
        self.unshare_net = False
        self.unshare_uts = False
        self.unshare_pid = False
        self.unshare_user = False
        self.level_prefix = False
        self.hakurei_status = False
        self.program = ""
        self.args: list[str] = []
        #: ``--lock-file`` paths: locked by init after every other op
        self.locks: list[str] = []
        #: our close-on-exec copies of ``--bind-fd`` fds, kept for init (``shim.become(hold=)``)
        self.hold: list[int] = []
        #: capabilities the program keeps (None until a --cap-add/--cap-drop: the default)
        self.caps: int | None = None
        #: raw seccomp programs from --add-seccomp-fd, in order (--seccomp's is read at the end)
        self.seccomp_programs: list[bytes] = []
        #: the caller's fds the sandbox uses: --sync-fd, --block-fd, --userns..., by Params name
        self.fds: dict[str, int] = {}


# -- messages --------------------------------------------------------------------------


def _line(spec: Spec | None, level: int, msg: str) -> bytes:
    prefix = f"<{level}>" if spec is not None and spec.level_prefix else ""
    return f"{prefix}bwrap: {safe_line(msg)}\n".encode(errors="replace")


def warn(spec: Spec, msg: str) -> None:
    """A warning (``<4>`` with ``--level-prefix``), as bubblewrap's ``warn``."""
    try:
        os.write(2, _line(spec, 4, msg))
    except OSError:
        pass


# -- values ----------------------------------------------------------------------------


def _octal(text: str, what: str) -> int:
    """An octal mode as strtoul(…, 8) reads it, at most 07777."""
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not text or text.strip() != text or text[0] in "+-" or not 0 <= value <= 0o7777:
        raise BwrapError(f"{what} takes an octal argument <= 07777")
    return value


def _size(text: str) -> int:
    """A ``--size`` as strtoull(…, 0) reads it: decimal, 0x hex or 0 octal; > 0; not too big."""
    bad = BwrapError("--size takes a non-zero number of bytes")
    if not text or not text[0].isdigit():
        raise bad
    try:
        if text[:2] in ("0x", "0X"):
            value = int(text[2:], 16)
        elif text.startswith("0") and len(text) > 1:
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        raise bad from None
    if value == 0 or value >= 1 << 64:  # ERANGE above ULLONG_MAX
        raise bad
    if value > MAX_TMPFS_BYTES:
        raise BwrapError(f"--size (for tmpfs) is limited to {MAX_TMPFS_BYTES}")
    return value


def _fd(text: str, name: str) -> int:
    """An fd argument as bubblewrap's strtol reads it: an int, not negative."""
    try:
        fd = int(text, 10)
    except ValueError:
        raise BwrapError(f"Invalid fd: {text}") from None
    if fd < 0 or fd >= 1 << 20:
        raise BwrapError(f"Invalid fd: {text}")
    return fd


def _read_fd(text: str, name: str, limit: int = DATA_MAX) -> bytes:
    """Everything on an fd the caller gave (``--file``, ``--args``), then the fd closed."""
    _fd(text, name)  # bubblewrap's "Invalid fd" first
    return read_fd(name, text, limit)


def _host(path: str) -> str:
    """A source path on the host, made absolute against our working directory as bwrap's is."""
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)


def _dest(path: str) -> str:
    """A destination inside the new root: bubblewrap reads a relative one from the root."""
    return path if path.startswith("/") else "/" + path


# -- options ---------------------------------------------------------------------------


def _take(spec: Spec, perms: bool = False, size: bool = False) -> tuple[int | None, int | None]:
    """The pending --perms/--size for the op being read; bubblewrap's errors if it takes none."""
    if spec.perms is not None and not perms:
        raise BwrapError("--perms must be followed by an option that creates a file")
    if spec.size is not None and not size:
        raise BwrapError("--size must be followed by --tmpfs")
    got = spec.perms, spec.size
    spec.perms = spec.size = None
    return got


def _bind(flags: int) -> Callable[[Spec, str, list[str]], None]:
    def op(spec: Spec, name: str, v: list[str]) -> None:
        _take(spec)
        spec.ops.bind(_host(v[0]), _dest(v[1]), flags)

    return op


def _remount_ro(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.ops.remount(_dest(v[0]), MS_RDONLY)


def _tmpfs(spec: Spec, name: str, v: list[str]) -> None:
    perms, size = _take(spec, perms=True, size=True)
    spec.ops.tmpfs(_dest(v[0]), size or 0, 0o755 if perms is None else perms)


def _dir(spec: Spec, name: str, v: list[str]) -> None:
    perms, _ = _take(spec, perms=True)
    spec.ops.mkdir(_dest(v[0]), 0o755 if perms is None else perms)


def _symlink(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.ops.link(_dest(v[1]), v[0])


def _proc(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.ops.proc(_dest(v[0]))


def _dev(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.ops.dev_writable(_dest(v[0]))


def _chmod(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.ops.chmod(_dest(v[1]), _octal(v[0], "--chmod"))


def _mqueue(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.ops.mqueue(_dest(v[0]))


def _lock_file(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.locks.append(_dest(v[0]))


def _data(spec: Spec, name: str, v: list[str]) -> None:
    """``--file``, ``--bind-data``, ``--ro-bind-data``: the fd read now, the bytes in the op."""
    from ..ops.place import MAX_DATA

    perms, _ = _take(spec, perms=True)
    data = _read_fd(v[0], name, MAX_DATA)
    if name == "--file":
        spec.ops.file(_dest(v[1]), data, 0o666 if perms is None else perms)
    else:
        perm = 0o600 if perms is None else perms
        spec.ops.place(_dest(v[1]), data, perm, writable=name == "--bind-data")


def _bind_fd(spec: Spec, name: str, v: list[str]) -> None:
    """``--bind-fd FD DEST``: init binds what our close-on-exec copy of FD names."""
    import fcntl

    _take(spec)
    fd = _fd(v[0], name)
    try:
        held = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError as e:
        raise BwrapError(f"Invalid fd: {v[0]}: {describe(e)}") from None
    spec.hold.append(held)
    flags = BIND_WRITABLE if name == "--bind-fd" else 0
    spec.ops.bind(f"/proc/self/fd/{held}", _dest(v[1]), flags)


def _overlay_src(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    spec.overlay_src.append(_host(v[0]))


def _overlay(spec: Spec, name: str, v: list[str]) -> None:
    _take(spec)
    # --overlay-src comes bottom first; overlayfs's lowerdir lists the top first.
    lower = spec.overlay_src[::-1]
    spec.overlay_src = []
    if name == "--overlay":
        if not lower:
            raise BwrapError("--overlay requires at least one --overlay-src")
        spec.ops.overlay(_dest(v[2]), _host(v[0]), _host(v[1]), *lower)
    elif name == "--tmp-overlay":
        if not lower:
            raise BwrapError("--tmp-overlay requires at least one --overlay-src")
        spec.ops.overlay_ephemeral(_dest(v[0]), *lower)
    else:
        if len(lower) < 2:
            raise BwrapError("--ro-overlay requires at least two --overlay-src")
        spec.ops.overlay_readonly(_dest(v[0]), *lower)


def _perms(spec: Spec, name: str, v: list[str]) -> None:
    if spec.perms is not None:
        raise BwrapError("--perms given twice for the same action")
    spec.perms = _octal(v[0], "--perms")


def _size_opt(spec: Spec, name: str, v: list[str]) -> None:
    if spec.size is not None:
        raise BwrapError("--size given twice for the same action")
    spec.size = _size(v[0])


def _chdir(spec: Spec, name: str, v: list[str]) -> None:
    if name in spec.values:
        warn(spec, f"Only the last {name} option will take effect")
    spec.values[name] = v[0]


def _store(spec: Spec, name: str, v: list[str]) -> None:
    spec.values[name] = v[0]


def _flag(spec: Spec, name: str, v: list[str]) -> None:
    spec.flags.add(name)


def _ignored(spec: Spec, name: str, v: list[str]) -> None:
    """Accepted and ignored, as bubblewrap does on a host without SELinux."""


def _setenv(spec: Spec, name: str, v: list[str]) -> None:
    spec.env.append(("set", v[0], v[1]))


def _unsetenv(spec: Spec, name: str, v: list[str]) -> None:
    spec.env.append(("unset", v[0]))


def _clearenv(spec: Spec, name: str, v: list[str]) -> None:
    spec.env.append(("clear",))


def _unshare(spec: Spec, name: str, v: list[str]) -> None:
    if name in ("--unshare-all",):
        spec.unshare_net = spec.unshare_uts = spec.unshare_pid = spec.unshare_user = True
    elif name == "--unshare-net":
        spec.unshare_net = True
    elif name == "--share-net":
        spec.unshare_net = False
    elif name == "--unshare-uts":
        spec.unshare_uts = True
    elif name == "--unshare-pid":
        spec.unshare_pid = True
    elif name in ("--unshare-user", "--unshare-user-try"):
        spec.unshare_user = True


def _level_prefix(spec: Spec, name: str, v: list[str]) -> None:
    spec.level_prefix = True


def _hakurei_status(spec: Spec, name: str, v: list[str]) -> None:
    spec.hakurei_status = True


def _fd_value(spec: Spec, name: str, v: list[str]) -> None:
    _fd(v[0], name)
    spec.values[name] = v[0]


def _args_placeholder(spec: Spec, name: str, v: list[str]) -> None:
    """``--args`` is expanded by the parser itself, where it stands."""


def _caps(spec: Spec, name: str, v: list[str]) -> None:
    """--cap-add/--cap-drop, in order, from bubblewrap's default (all of root's, else none)."""
    from .. import capnames

    try:
        bits = capnames.mask(v[0])
    except HakureiError:
        raise BwrapError(f"unknown cap: {v[0]}") from None
    caps = _default_caps() if spec.caps is None else spec.caps
    spec.caps = caps | bits if name == "--cap-add" else caps & ~bits


def _default_caps() -> int:
    """bubblewrap's: a caller with uid 0 keeps its effective capabilities, anyone else none."""
    if os.getuid() != 0:
        return 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def _seccomp_data(text: str, name: str) -> bytes:
    """A raw seccomp program from an fd, in bubblewrap's words when it is not one."""
    from ..wire import BPF_MAXINSNS

    try:
        data = _read_fd(text, name, 8 * BPF_MAXINSNS)
    except UsageError as e:
        if isinstance(e, BwrapError):
            raise
        raise BwrapError(f"Can't read seccomp data: {e}") from None
    if len(data) % 8:
        raise BwrapError("Invalid seccomp data, must be multiple of 8")
    return data  # empty is refused once the command line is read, as bwrap's prctl would


def _seccomp(spec: Spec, name: str, v: list[str]) -> None:
    if spec.seccomp_programs:
        raise BwrapError("--seccomp cannot be combined with --add-seccomp-fd")
    if "--seccomp" in spec.values:
        warn(spec, "Only the last --seccomp option will take effect")
    _fd(v[0], name)
    spec.values[name] = v[0]


def _add_seccomp_fd(spec: Spec, name: str, v: list[str]) -> None:
    if "--seccomp" in spec.values:
        raise BwrapError("--add-seccomp-fd cannot be combined with --seccomp")
    spec.seccomp_programs.append(_seccomp_data(v[0], name))


#: fd options the sandbox keeps using, and their Params keyword.
FD_PARAMS = {
    "--sync-fd": "sync_fd",
    "--block-fd": "block_fd",
    "--userns-block-fd": "userns_block_fd",
    "--userns": "userns_fd",
    "--userns2": "userns2_fd",
    "--pidns": "pidns_fd",
}


def _held_fd(spec: Spec, name: str, v: list[str]) -> None:
    key = FD_PARAMS[name]
    if key in spec.fds and name in ("--sync-fd", "--userns", "--userns2", "--pidns"):
        warn(spec, f"Only the last {name} option will take effect")
    spec.fds[key] = _fd(v[0], name)


#: name → (value names, handler, help): bubblewrap's options in its --help order, then ours.
OPTIONS: dict[str, tuple[tuple[str, ...], Callable[[Spec, str, list[str]], None], str]] = {
    "--args": (("FD",), _args_placeholder, "Parse NUL-separated args from FD"),
    "--argv0": (("VALUE",), _store, "Set argv[0] to VALUE before running the program"),
    "--level-prefix": ((), _level_prefix, "Prepend e.g. <3> to diagnostic messages"),
    "--unshare-all": ((), _unshare, "Unshare every namespace we support by default"),
    "--share-net": ((), _unshare, "Retain the network namespace (with --unshare-all)"),
    "--unshare-user": ((), _unshare, "Create new user namespace (always done)"),
    "--unshare-user-try": ((), _unshare, "Create new user namespace (always done)"),
    "--unshare-ipc": ((), _flag, "Create new ipc namespace (always done)"),
    "--unshare-pid": ((), _unshare, "Create new pid namespace (always done)"),
    "--unshare-net": ((), _unshare, "Create new network namespace"),
    "--unshare-uts": ((), _unshare, "Create new uts namespace (always done)"),
    "--unshare-cgroup": ((), _flag, "Create new cgroup namespace (always done)"),
    "--unshare-cgroup-try": ((), _flag, "Create new cgroup namespace (always done)"),
    "--userns": (("FD",), _held_fd, "Use this user namespace (not with --unshare-user)"),
    "--userns2": (("FD",), _held_fd, "After setup switch to this user namespace"),
    "--disable-userns": ((), _flag, "Disable further use of user namespaces inside"),
    "--assert-userns-disabled": ((), _flag, "Fail unless user namespaces are disabled"),
    "--pidns": (("FD",), _held_fd, "Use this pid namespace (as parent namespace)"),
    "--uid": (("UID",), _store, "Custom uid in the sandbox"),
    "--gid": (("GID",), _store, "Custom gid in the sandbox"),
    "--hostname": (("NAME",), _store, "Custom hostname in the sandbox (requires --unshare-uts)"),
    "--chdir": (("DIR",), _chdir, "Change directory to DIR"),
    "--clearenv": ((), _clearenv, "Unset all environment variables"),
    "--setenv": (("VAR", "VALUE"), _setenv, "Set an environment variable"),
    "--unsetenv": (("VAR",), _unsetenv, "Unset an environment variable"),
    "--lock-file": (("DEST",), _lock_file, "Take a lock on DEST while the sandbox is running"),
    "--sync-fd": (("FD",), _held_fd, "Keep this fd open while the sandbox is running"),
    "--bind": (("SRC", "DEST"), _bind(BIND_WRITABLE), "Bind mount the host path SRC on DEST"),
    "--bind-try": (
        ("SRC", "DEST"),
        _bind(BIND_WRITABLE | BIND_OPTIONAL),
        "Equal to --bind but ignores non-existent SRC",
    ),
    "--dev-bind": (
        ("SRC", "DEST"),
        _bind(BIND_WRITABLE | BIND_DEVICE),
        "Bind mount the host path SRC on DEST, allowing device access",
    ),
    "--dev-bind-try": (
        ("SRC", "DEST"),
        _bind(BIND_WRITABLE | BIND_DEVICE | BIND_OPTIONAL),
        "Equal to --dev-bind but ignores non-existent SRC",
    ),
    "--ro-bind": (("SRC", "DEST"), _bind(0), "Bind mount the host path SRC read-only on DEST"),
    "--ro-bind-try": (
        ("SRC", "DEST"),
        _bind(BIND_OPTIONAL),
        "Equal to --ro-bind but ignores non-existent SRC",
    ),
    "--bind-fd": (("FD", "DEST"), _bind_fd, "Bind open directory or path fd on DEST"),
    "--ro-bind-fd": (("FD", "DEST"), _bind_fd, "Bind open directory or path fd read-only"),
    "--remount-ro": (("DEST",), _remount_ro, "Remount DEST as read-only; not recursive"),
    "--overlay-src": (("SRC",), _overlay_src, "Read files from SRC in the following overlay"),
    "--overlay": (
        ("RWSRC", "WORKDIR", "DEST"),
        _overlay,
        "Mount overlayfs on DEST, writes going to RWSRC (WORKDIR: an empty directory beside it)",
    ),
    "--tmp-overlay": (("DEST",), _overlay, "Mount overlayfs on DEST, writes going to a tmpfs"),
    "--ro-overlay": (("DEST",), _overlay, "Mount overlayfs read-only on DEST"),
    "--exec-label": (("LABEL",), _ignored, "Exec label for the sandbox (ignored: no SELinux)"),
    "--file-label": (("LABEL",), _ignored, "File label for sandbox content (ignored)"),
    "--proc": (("DEST",), _proc, "Mount new procfs on DEST"),
    "--dev": (("DEST",), _dev, "Mount new dev on DEST"),
    "--tmpfs": (("DEST",), _tmpfs, "Mount new tmpfs on DEST"),
    "--mqueue": (("DEST",), _mqueue, "Mount new mqueue on DEST"),
    "--dir": (("DEST",), _dir, "Create dir at DEST"),
    "--file": (("FD", "DEST"), _data, "Copy from FD to destination DEST"),
    "--bind-data": (("FD", "DEST"), _data, "Copy from FD to a file bind-mounted on DEST"),
    "--ro-bind-data": (("FD", "DEST"), _data, "Copy from FD to a read-only bound file"),
    "--symlink": (("SRC", "DEST"), _symlink, "Create symlink at DEST with target SRC"),
    "--seccomp": (("FD",), _seccomp, "Load and use seccomp rules from FD (not repeatable)"),
    "--add-seccomp-fd": (("FD",), _add_seccomp_fd, "Load and use seccomp rules from FD (stacked)"),
    "--block-fd": (("FD",), _held_fd, "Block on FD until some data to read is available"),
    "--userns-block-fd": (("FD",), _held_fd, "Block on FD until the user namespace is ready"),
    "--info-fd": (("FD",), _fd_value, "Write information about the running container to FD"),
    "--json-status-fd": (("FD",), _fd_value, "Write container status to FD as JSON documents"),
    "--new-session": ((), _flag, "Create a new terminal session"),
    "--die-with-parent": ((), _flag, "Kill the sandbox when the caller dies"),
    "--as-pid-1": ((), _flag, "Do not install a reaper process with PID 1"),
    "--cap-add": (("CAP",), _caps, "Add cap CAP in the sandbox's user namespace"),
    "--cap-drop": (("CAP",), _caps, "Drop cap CAP"),
    "--perms": (("OCTAL",), _perms, "Set permissions of the next --dir, --tmpfs, --file, ..."),
    "--size": (("BYTES",), _size_opt, "Set size of the next --tmpfs"),
    "--chmod": (("OCTAL", "PATH"), _chmod, "Change permissions of PATH (must exist)"),
    "--hakurei-seccomp": (
        ("PRESET[,PRESET...]",),
        _store,
        "hakurei's syscall filter presets (see hakurei exec --help)",
    ),
    "--hakurei-status": (
        (),
        _hakurei_status,
        "exit 125 for a failed setup, 126/127 for a program that cannot run (bwrap: 1)",
    ),
}

#: Options that say what the ops after them take, not an op of their own.
MODIFIERS = frozenset(("--perms", "--size"))
#: The ops an ``--overlay-src`` may be followed by.
OVERLAY_NEXT = frozenset(("--overlay-src", "--overlay", "--tmp-overlay", "--ro-overlay"))


def parse(spec: Spec, argv: list[str]) -> bool:
    """bubblewrap's parse_args into ``spec``: options in order until ``--`` or a non-option.

    False for ``--help``/``--version`` (already printed).  Errors are
    ``BwrapError`` in bubblewrap's words; options read before one (say
    ``--level-prefix``) have taken effect.
    """
    argv0 = spec.argv0
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--help":
            _write_stdout(usage(argv0))
            return False
        if arg == "--version":
            _write_stdout(f"bubblewrap {BWRAP_VERSION}\n")
            return False
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-"):
            break
        entry = OPTIONS.get(arg)
        if entry is None:
            raise BwrapError(f"Unknown option {arg}")
        metavars, handler, _ = entry
        n = len(metavars)
        if len(argv) - i - 1 < n:
            raise BwrapError(_takes(arg, n))
        values = argv[i + 1 : i + 1 + n]
        i += 1 + n
        if spec.overlay_src and arg not in OVERLAY_NEXT:
            raise BwrapError(
                "--overlay-src must be followed by another --overlay-src or one of "
                "--overlay, --tmp-overlay, or --ro-overlay"
            )
        if arg == "--args":
            argv[i:i] = _args_from(values[0])
            continue
        handler(spec, arg, values)
        if arg not in MODIFIERS:  # bubblewrap: a modifier must be used by the very next option
            _take(spec)
    if spec.overlay_src:
        raise BwrapError(
            "--overlay-src must be followed by another --overlay-src or one of "
            "--overlay, --tmp-overlay, or --ro-overlay"
        )
    if spec.perms is not None:
        raise BwrapError("--perms must be followed by an option that creates a file")
    if spec.size is not None:
        raise BwrapError("--size must be followed by --tmpfs")
    if i >= len(argv):
        raise BwrapError("No command specified")
    spec.program, spec.args = argv[i], argv[i + 1 :]
    return True


def _takes(name: str, n: int) -> str:
    return f"{name} takes an argument" if n == 1 else f"{name} takes {_WORDS[n]} arguments"


_WORDS = {2: "two", 3: "three"}


def _args_from(text: str) -> list[str]:
    """``--args FD``: NUL-separated arguments read to end of file, inserted where it stood."""
    _fd(text, "--args")
    return read_args_fd(text)


def _write_stdout(text: str) -> None:
    if sys.stdout is not None:
        sys.stdout.write(text)


def usage(argv0: str) -> str:
    """``--help``: bubblewrap's usage line naming what was run, then every option."""
    out = [f"usage: {argv0} [OPTIONS...] [--] COMMAND [ARGS...]", ""]
    out.append(f"    {'--help':<29}Print this help")
    out.append(f"    {'--version':<29}Print version")
    for name, (metavars, _, text) in OPTIONS.items():
        left = " ".join((name, *metavars))
        if len(left) > 28:
            out.append(f"    {left}")
            left = ""
        out.append(f"    {left:<29}{text}")
    out += [
        "",
        "hakurei: a PID 1 that reaps and forwards signals, no capabilities and no_new_privs,",
        "and new user, mount, pid, ipc, uts and cgroup namespaces whatever the options say.",
    ]
    return "\n".join(out) + "\n"


# -- the container -----------------------------------------------------------------------


def _program(spec: Spec) -> tuple[str, list[str]]:
    """The path and argv: ``--argv0``, and ``/proc/self/exe`` as this front end again.

    In bubblewrap ``/proc/self/exe`` is bwrap itself, which scripts use to nest
    a sandbox (``bwrap ... -- /proc/self/exe ...``).  Here the process that
    execs the program is our init, an interpreter: the same words mean the
    same thing only if they start ``hakurei bwrap`` again.
    """
    argv0 = spec.values.get("--argv0", spec.program)
    if spec.program != "/proc/self/exe":
        return spec.program, [argv0, *spec.args]
    script = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script and os.path.isfile(script) and not script.endswith(".py"):
        start = [sys.executable, "-I", "-S", script, "bwrap"]
    else:
        start = [sys.executable, "-m", "hakurei", "bwrap"]
    return sys.executable, [*start, *spec.args]


def _environment(spec: Spec) -> dict[str, str]:
    env = dict(os.environ)
    for edit in spec.env:
        if edit[0] == "clear":
            env.clear()
        elif edit[0] == "set":
            env[edit[1]] = edit[2]
        else:
            env.pop(edit[1], None)
    return env


def _id(spec: Spec, name: str, default: int) -> int:
    text = spec.values.get(name)
    if text is None:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        raise BwrapError(f"Invalid {name[2:]}: {text}") from None
    if not 0 <= value < (1 << 32) - 1:
        raise BwrapError(f"Invalid {name[2:]}: {text}")
    return value


def _check_combinations(spec: Spec) -> None:
    """What bubblewrap refuses once the whole command line is read, in its words."""
    fds, flags = spec.fds, spec.flags
    if "userns_block_fd" in fds and not spec.unshare_user:
        raise BwrapError("--userns-block-fd requires --unshare-user")
    if "userns_block_fd" in fds and "--info-fd" not in spec.values:
        raise BwrapError("--userns-block-fd requires --info-fd")
    if "userns_fd" in fds and spec.unshare_user:
        raise BwrapError("--userns not compatible --unshare-user")
    if "--disable-userns" in flags and not spec.unshare_user:
        raise BwrapError("--disable-userns requires --unshare-user")
    if "--disable-userns" in flags and "userns_block_fd" in fds:
        raise BwrapError("--disable-userns is not compatible with  --userns-block-fd")
    if "userns2_fd" in fds and "userns_fd" not in fds:
        raise BwrapError("--userns2 requires --userns")
    if "--hostname" in spec.values and not spec.unshare_uts:
        raise BwrapError("Specifying --hostname requires --unshare-uts")
    if "--as-pid-1" in flags and not spec.unshare_pid:
        raise BwrapError("Specifying --as-pid-1 requires --unshare-pid")


def setup_of(spec: Spec) -> Setup:
    """The validated setup record for ``spec`` (``BwrapError`` for what bubblewrap refuses)."""
    from .. import params as _params

    _check_combinations(spec)
    uid = _id(spec, "--uid", os.getuid())
    gid = _id(spec, "--gid", os.getgid())
    presets = spec.values.get("--hakurei-seccomp")
    seccomp_presets = 0
    if presets is not None:
        from .. import seccomp as sc

        try:
            seccomp_presets = sc.parse_presets(presets)
        except ValueError as e:
            raise BwrapError(f"--hakurei-seccomp: {e}") from None
    programs = list(spec.seccomp_programs)
    if "--seccomp" in spec.values:
        programs.append(_seccomp_data(spec.values["--seccomp"], "--seccomp"))
    if not all(programs):
        raise BwrapError("prctl(PR_SET_SECCOMP): Invalid argument (an empty seccomp program)")
    path, args = _program(spec)
    ops = spec.ops
    if not ops and not spec.locks:  # an empty root, as bubblewrap's: init needs an op to replay
        ops.mkdir("/tmp", 0o755)
    for lock in spec.locks:  # taken once the tree is built, as bubblewrap takes them
        ops.lock(lock)
    params = _params.Params(
        path,
        args,
        ops=ops,
        env=_environment(spec),
        dir=spec.values.get("--chdir"),  # None: our cwd if the sandbox has it, else HOME, else /
        uid=uid,
        gid=gid,
        hostname=spec.values.get("--hostname", ""),
        seccomp_presets=seccomp_presets,
        seccomp_disable=presets is None,
        retain_session="--new-session" not in spec.flags,
        host_net=not spec.unshare_net,
        # bubblewrap leaves abstract sockets alone: the host's are reachable with its network.
        host_abstract=not spec.unshare_net,
        adopt_wait_delay=0,  # bubblewrap's PID 1 ends when the program does
        message_prefix="<3>bwrap: " if spec.level_prefix else "bwrap: ",
        set_pwd=True,
        caps=_default_caps() if spec.caps is None else spec.caps,
        as_pid_1="--as-pid-1" in spec.flags,
        seccomp_programs=programs,
        disable_userns="--disable-userns" in spec.flags,
        assert_userns_disabled="--assert-userns-disabled" in spec.flags,
        # --info-fd's child-pid is init: let the caller open its /proc/PID/ns/*, as bwrap's.
        visible_init="--info-fd" in spec.values or "--json-status-fd" in spec.values,
        **spec.fds,  # type: ignore[arg-type]
    )
    return params.resolve(0, watch_parent=False)


class Report(_exec.Report):
    """``--info-fd`` and ``--json-status-fd`` in bubblewrap's format, written by the shim.

    Beside ``child-pid``, the ids of the namespaces the sandbox got: the
    shim's own (it unshared them; init is forked into them), and for the pid
    namespace its ``pid_for_children``.  Always made, fds or not: it is how
    the shim learns whether the program ran (``exit_status``).
    """

    def __init__(
        self, info: int | None, status: int | None, host_net: bool, hakurei_status: bool
    ) -> None:
        super().__init__(info, status)
        self.host_net = host_net
        self.hakurei_status = hakurei_status

    def namespaces(self) -> list[tuple[str, int]]:
        found = []
        for name, file in (
            ("cgroup", "cgroup"),
            ("ipc", "ipc"),
            ("mnt", "mnt"),
            ("net", "net"),
            ("pid", "pid_for_children"),
            ("uts", "uts"),
        ):
            if name == "net" and self.host_net:
                continue
            try:
                found.append((name, os.stat(f"/proc/self/ns/{file}").st_ino))
            except OSError:
                pass  # as bubblewrap: what cannot be read is left out
        return found

    def started(self, pid: int) -> None:
        ns = self.namespaces()
        if self.info is not None:
            text = f'{{\n    "child-pid": {pid}'
            text += "".join(f',\n    "{n}-namespace": {i}' for n, i in ns)
            _exec.write_all(self.info, text + "\n}\n")
            os.close(self.info)
        if self.status is not None:
            text = f'{{ "child-pid": {pid}'
            text += "".join(f', "{n}-namespace": {i}' for n, i in ns)
            _exec.write_all(self.status, text + " }\n")

    def exit_status(self, status: int, ran: bool) -> int:
        """The program's status; bubblewrap's 1 when it never ran (init said why on stderr)."""
        return status if ran or self.hakurei_status else EXIT_FAILURE


def run(spec: Spec) -> NoReturn:
    """Build the setup, then become the container's shim (never returns)."""
    from ..init import shim

    setup = setup_of(spec)
    if "--die-with-parent" in spec.flags:
        _exec.die_with_parent(os.getppid())
    info, status = spec.values.get("--info-fd"), spec.values.get("--json-status-fd")
    # Always a report: it is how the shim learns whether the program ran (exit 1 if not).
    report = Report(
        None if info is None else int(info),
        None if status is None else int(status),
        setup.host_net,
        spec.hakurei_status,
    )
    for fd in report.fds:
        try:
            os.fstat(fd)
        except OSError as e:
            raise BwrapError(f"Invalid fd: {fd}: {describe(e)}") from None
    import gc

    if sys.stdout is not None:
        sys.stdout.flush()
    gc.freeze()
    gc.enable()
    shim.become(setup, [], report, hold=spec.hold)


def main(argv: list[str], argv0: str = "hakurei bwrap") -> int:
    """Parse and run; every error is one ``bwrap:`` line and exit 1 (125 with --hakurei-status)."""
    spec = Spec(argv0)
    try:
        if not parse(spec, argv):
            return 0
        run(spec)
    except HakureiError as e:
        return _fail(spec, str(e), e.status if spec.hakurei_status else EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as e:
        return _fail(spec, describe(e), 125 if spec.hakurei_status else EXIT_FAILURE)
    except Exception as e:  # a bug: still one line
        msg = f"internal error: {type(e).__name__}: {describe(e)}"
        return _fail(spec, msg, 125 if spec.hakurei_status else EXIT_FAILURE)
    return EXIT_FAILURE  # not reached: run() becomes the shim


def _fail(spec: Spec, msg: str, status: int) -> int:
    try:
        os.write(2, _line(spec, 3, msg))
    except OSError:
        pass
    return status
