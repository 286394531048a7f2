"""``hakurei bwrap``'s options: each one's handler, the table, the parser and ``--help``.

The table (:data:`OPTIONS`) is bubblewrap 0.11's options in its ``--help``
order, then ours; :func:`parse` reads a command line into a
:class:`~hakurei.cli.bwrap_spec.Spec` with bubblewrap's rules (modifiers used by
the very next option only, ``--overlay-src`` followed by an overlay, ``--args``
expanded where it stands, no ``--opt=value``).
"""

from __future__ import annotations

import os
import sys

from ..errors import HakureiError, describe
from ..std import BIND_DEVICE, BIND_OPTIONAL, BIND_WRITABLE, MS_RDONLY
from ._table import UsageError, read_args_fd
from .bwrap_spec import (
    BWRAP_VERSION,
    BwrapError,
    Spec,
    dest_path,
    fd_number,
    host_path,
    octal,
    read_caller_fd,
    size_value,
    warn,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def take_modifiers(
    spec: Spec, perms: bool = False, size: bool = False
) -> tuple[int | None, int | None]:
    """The pending --perms/--size for the op being read; bubblewrap's errors if it takes none.

    Ops that take a modifier call it with what they take; :func:`parse` calls
    it after every other option, so one that takes none refuses a pending one.
    """
    if spec.perms is not None and not perms:
        raise BwrapError("--perms must be followed by an option that creates a file")
    if spec.size is not None and not size:
        raise BwrapError("--size must be followed by --tmpfs")
    got = spec.perms, spec.size
    spec.perms = spec.size = None
    return got


def _bind(flags: int) -> Callable[[Spec, str, list[str]], None]:
    def op(spec: Spec, name: str, v: list[str]) -> None:
        spec.ops.bind(host_path(v[0]), dest_path(v[1]), flags)

    return op


def _remount_ro(spec: Spec, name: str, v: list[str]) -> None:
    spec.ops.remount(dest_path(v[0]), MS_RDONLY)


def _tmpfs(spec: Spec, name: str, v: list[str]) -> None:
    perms, size = take_modifiers(spec, perms=True, size=True)
    spec.ops.tmpfs(dest_path(v[0]), size or 0, 0o755 if perms is None else perms)


def _dir(spec: Spec, name: str, v: list[str]) -> None:
    perms, _ = take_modifiers(spec, perms=True)
    spec.ops.mkdir(dest_path(v[0]), 0o755 if perms is None else perms)


def _symlink(spec: Spec, name: str, v: list[str]) -> None:
    spec.ops.link(dest_path(v[1]), v[0])


def _proc(spec: Spec, name: str, v: list[str]) -> None:
    spec.ops.proc(dest_path(v[0]))


def _dev(spec: Spec, name: str, v: list[str]) -> None:
    spec.ops.dev_writable(dest_path(v[0]))


def _chmod(spec: Spec, name: str, v: list[str]) -> None:
    spec.ops.chmod(dest_path(v[1]), octal(v[0], "--chmod"))


def _mqueue(spec: Spec, name: str, v: list[str]) -> None:
    spec.ops.mqueue(dest_path(v[0]))


def _lock_file(spec: Spec, name: str, v: list[str]) -> None:
    spec.locks.append(dest_path(v[0]))


def _data(spec: Spec, name: str, v: list[str]) -> None:
    """``--file``, ``--bind-data``, ``--ro-bind-data``: the fd read now, the bytes in the op."""
    from ..ops.place import MAX_DATA

    perms, _ = take_modifiers(spec, perms=True)
    data = read_caller_fd(v[0], name, MAX_DATA)
    if name == "--file":
        spec.ops.file(dest_path(v[1]), data, 0o666 if perms is None else perms)
    else:
        perm = 0o600 if perms is None else perms
        spec.ops.place(dest_path(v[1]), data, perm, writable=name == "--bind-data")


def _bind_fd(spec: Spec, name: str, v: list[str]) -> None:
    """``--bind-fd FD DEST``: init binds what our close-on-exec copy of FD names."""
    import fcntl

    fd = fd_number(v[0], name)
    try:
        held = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError as e:
        raise BwrapError(f"Invalid fd: {v[0]}: {describe(e)}") from None
    spec.hold.append(held)
    flags = BIND_WRITABLE if name == "--bind-fd" else 0
    spec.ops.bind(f"/proc/self/fd/{held}", dest_path(v[1]), flags)


def _overlay_src(spec: Spec, name: str, v: list[str]) -> None:
    spec.overlay_src.append(host_path(v[0]))


def _overlay(spec: Spec, name: str, v: list[str]) -> None:
    # --overlay-src comes bottom first; overlayfs's lowerdir lists the top first.
    lower = spec.overlay_src[::-1]
    spec.overlay_src = []
    if name == "--overlay":
        if not lower:
            raise BwrapError("--overlay requires at least one --overlay-src")
        spec.ops.overlay(dest_path(v[2]), host_path(v[0]), host_path(v[1]), *lower)
    elif name == "--tmp-overlay":
        if not lower:
            raise BwrapError("--tmp-overlay requires at least one --overlay-src")
        spec.ops.overlay_ephemeral(dest_path(v[0]), *lower)
    else:
        if len(lower) < 2:
            raise BwrapError("--ro-overlay requires at least two --overlay-src")
        spec.ops.overlay_readonly(dest_path(v[0]), *lower)


def _perms(spec: Spec, name: str, v: list[str]) -> None:
    if spec.perms is not None:
        raise BwrapError("--perms given twice for the same action")
    spec.perms = octal(v[0], "--perms")


def _size_opt(spec: Spec, name: str, v: list[str]) -> None:
    if spec.size is not None:
        raise BwrapError("--size given twice for the same action")
    spec.size = size_value(v[0])


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
    fd_number(v[0], name)
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
    caps = default_caps() if spec.caps is None else spec.caps
    spec.caps = caps | bits if name == "--cap-add" else caps & ~bits


def default_caps() -> int:
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


def seccomp_data(text: str, name: str) -> bytes:
    """A raw seccomp program from an fd, in bubblewrap's words when it is not one."""
    from ..wire import BPF_MAXINSNS

    try:
        data = read_caller_fd(text, name, 8 * BPF_MAXINSNS)
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
    fd_number(v[0], name)
    spec.values[name] = v[0]


def _add_seccomp_fd(spec: Spec, name: str, v: list[str]) -> None:
    if "--seccomp" in spec.values:
        raise BwrapError("--add-seccomp-fd cannot be combined with --seccomp")
    spec.seccomp_programs.append(seccomp_data(v[0], name))


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
    spec.fds[key] = fd_number(v[0], name)


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
            take_modifiers(spec)
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
    fd_number(text, "--args")
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
