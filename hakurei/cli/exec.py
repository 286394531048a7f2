"""``hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]``: one container, this process its shim.

Op options apply in command-line order, bubblewrap style.  With no op option
the default profile (hakurei/profile.py) applies.  Every error is one line on
stderr and exit status 125; otherwise the status is the program's (128+n if
it was killed by signal n, 126 not executable, 127 not found).

Everything about an option is its entry in :data:`TABLE`; parsing, ``--help``
and the option → op translation (:func:`build_ops`) all come from there.

This path is measured per container, so it stays lean: no trio (~70 ms), no
argparse or typing (~8 ms), and the CLI process becomes the container's shim
itself (``hakurei.init.shim.become``) instead of starting a second
interpreter: it is single-threaded, so none of the reasons for a separate
shim apply.
"""

from __future__ import annotations

import os
import posixpath
import sys

from ..errors import q
from ..ops import Ops
from ..std import BIND_DEVICE, BIND_OPTIONAL, BIND_WRITABLE, MS_RDONLY
from ._table import (
    SECCOMP,
    SECCOMP_OPTIONS,
    Args,
    Builder,
    Opt,
    Table,
    UsageError,
    accept,
    flag,
    flag_as,
    parse_fd,
    read_fd,
    read_regular,
    read_seccomp_fd,
    store,
    wrap,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..wire import Setup

FS = "filesystem (in command-line order; --size/--perms apply to the next op only)"
PROCESS = "process"
FDS = "file descriptors"
BWRAP = "bubblewrap's spellings of what hakurei always does"
OUTPUT = "output"


# -- op options: how each becomes ops ------------------------------------------------


def _bind(flags: int) -> Callable[[Builder, str, list[str]], None]:
    def op(b: Builder, name: str, v: list[str]) -> None:
        b.take(name, size=False, perms=False)
        b.ops.bind(v[0], v[1], flags)

    return op


def _tmpfs(b: Builder, name: str, v: list[str]) -> None:
    size, perms = b.take(name, size=True, perms=True)
    b.ops.tmpfs(v[0], size or 0, 0o755 if perms is None else perms)


def _dir(b: Builder, name: str, v: list[str]) -> None:
    _, perms = b.take(name, size=False, perms=True)
    b.ops.mkdir(v[0], 0o755 if perms is None else perms)


def _symlink(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    b.ops.link(v[1], v[0])


def _proc(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    b.ops.proc(v[0])


def _dev(b: Builder, name: str, v: list[str]) -> None:
    """A writable /dev now, its own /dev/shm, read-only only after the last op.

    So later ops can still add to it (``--dev /dev --dev-bind /dev/dri
    /dev/dri``), as hakurei's launcher does with ``Dev(write=True)`` and a
    final Remount.  The remount is not recursive: the device binds, devpts,
    mqueue and shm keep their own flags.
    """
    b.take(name, size=False, perms=False)
    b.ops.dev_writable(v[0], mqueue=True)
    b.ops.tmpfs(posixpath.join(v[0], "shm"), 0, 0o1777)
    b.seal.append(v[0])


def _remount_ro(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    b.ops.remount(v[0], MS_RDONLY)


def _place(b: Builder, name: str, v: list[str]) -> None:
    from ..ops.place import MAX_DATA

    b.take(name, size=False, perms=False)
    b.ops.place(v[0], read_regular(v[1], MAX_DATA, f"--place {q(v[0])}"))


def _octal(name: str, text: str) -> int:
    """A mode as bubblewrap's ``--perms``/``--chmod`` take it: octal, 0..07777."""
    try:
        value = int(text, 8)
    except ValueError:
        raise UsageError(f"{name}: {q(text)} is not an octal mode") from None
    if not 0 <= value <= 0o7777:
        raise UsageError(f"{name}: {q(text)} is out of range")
    return value


def _data(b: Builder, name: str, v: list[str]) -> None:
    """bubblewrap's data options: FD's bytes, read here, as a file (--perms for its mode)."""
    from ..ops.place import MAX_DATA

    _, perms = b.take(name, size=False, perms=True)
    data = read_fd(name, v[0], MAX_DATA)
    if name == "--file":
        b.ops.file(v[1], data, 0o666 if perms is None else perms)
    else:
        b.ops.place(v[1], data, 0o600 if perms is None else perms, name == "--bind-data")


def _chmod(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    b.ops.chmod(v[1], _octal(name, v[0]))


def _mqueue(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    b.ops.mqueue(v[0])


def _lock_file(b: Builder, name: str, v: list[str]) -> None:
    """Locked by init after every other op (see ``build_ops``), as bubblewrap's PID 1 does."""
    b.take(name, size=False, perms=False)
    b.locks.append(v[0])


def _bind_fd(flags: int) -> Callable[[Builder, str, list[str]], None]:
    """bubblewrap's ``--bind-fd``/``--ro-bind-fd``: bind what FD refers to.

    FD is copied to a close-on-exec fd N the shim keeps for init (the fork
    gives init the same table; the program never has it), and the bind's
    source is ``/proc/self/fd/N``, which the Bind op binds by the fd.
    """

    def op(b: Builder, name: str, v: list[str]) -> None:
        import fcntl

        b.take(name, size=False, perms=False)
        fd = parse_fd(name, v[0])
        held = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        b.hold.append(held)
        b.ops.bind(f"/proc/self/fd/{held}", v[1], flags)

    return op


def _overlay(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    if name == "--overlay":
        b.ops.overlay(v[0], v[1], v[2], *v[3].split(":"))
    elif name == "--tmp-overlay":
        b.ops.overlay_ephemeral(v[0], *v[1].split(":"))
    else:
        b.ops.overlay_readonly(v[0], *v[1].split(":"))


def _etc(b: Builder, name: str, v: list[str]) -> None:
    """Auto /etc, plus a passwd and group naming the user (auto /etc skips the host's)."""
    from ..profile import identity_files

    b.take(name, size=False, perms=False)
    passwd, group = identity_files(b.uid, b.gid)
    b.ops.etc(v[0], "host").place("/etc/passwd", passwd).place("/etc/group", group)


def _root(b: Builder, name: str, v: list[str]) -> None:
    b.take(name, size=False, perms=False)
    b.ops.root(v[0], 0)  # read-only binds, as everything of the host by default


def _size(b: Builder, name: str, v: list[str]) -> None:
    if b.size is not None:
        raise UsageError("--size given twice before one op")
    text = v[0]
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--size: {q(text)} is not a number of bytes") from None
    if value < 0:
        raise UsageError(f"--size: {value} is negative")
    if value == 0:  # bubblewrap refuses it too; leave --size out for the default
        raise UsageError("--size: 0 is not a positive number of bytes")
    b.size = value


def _perms(b: Builder, name: str, v: list[str]) -> None:
    if b.perms is not None:
        raise UsageError("--perms given twice before one op")
    b.perms = _octal("--perms", v[0])


# -- settings ------------------------------------------------------------------------


def _setenv(a: Args, name: str, v: list[str]) -> None:
    a.env.append(("set", v[0], v[1]))


def _unsetenv(a: Args, name: str, v: list[str]) -> None:
    a.env.append(("unset", v[0]))


def _keep_env(a: Args, name: str, v: list[str]) -> None:
    a.env.append(("keep", v[0]))


def _clearenv(a: Args, name: str, v: list[str]) -> None:
    a.env.append(("clear",))


def _pass_fd(a: Args, name: str, v: list[str]) -> None:
    fd = parse_fd(name, v[0])
    if fd < 3:
        raise UsageError(f"{name}: {fd} is stdio, which the program has anyway")
    if fd in a.pass_fds:
        raise UsageError(f"{name}: {fd} given twice")
    a.pass_fds.append(fd)


def _status_fd(a: Args, name: str, v: list[str]) -> None:
    parse_fd(name, v[0])
    a.values[name] = v[0]


def _cap(a: Args, name: str, v: list[str]) -> None:
    from ..capnames import mask
    from ..errors import ParamsError

    try:
        mask(v[0])  # an unknown name is refused while parsing
    except ParamsError as e:
        raise UsageError(f"{name}: {e}") from None
    a.caps.append((name, v[0]))


def _seccomp_fd(a: Args, name: str, v: list[str]) -> None:
    """bwrap's --seccomp (here --seccomp-fd: --seccomp names presets) and --add-seccomp-fd."""
    other = "--add-seccomp-fd" if name == "--seccomp-fd" else "--seccomp-fd"
    if other in a.flags:  # bwrap's words: one program, or a stack of them
        raise UsageError(f"{name} cannot be combined with {other}")
    a.flags.add(name)
    program = read_seccomp_fd(name, v[0])
    if name == "--seccomp-fd":
        a.seccomp_programs = [program]  # the last one wins
    else:
        a.seccomp_programs.append(program)


def _held_fd(a: Args, name: str, v: list[str]) -> None:
    fd = parse_fd(name, v[0])
    if fd < 3:
        raise UsageError(f"{name}: {fd} is stdio")
    a.values[name] = v[0]


TABLE = Table(
    "exec",
    (
        Opt("--bind", ("SRC", "DEST"), FS, "writable bind", op=_bind(BIND_WRITABLE)),
        Opt("--ro-bind", ("SRC", "DEST"), FS, "read-only bind", op=_bind(0)),
        Opt(
            "--dev-bind",
            ("SRC", "DEST"),
            FS,
            "writable bind, devices usable",
            op=_bind(BIND_WRITABLE | BIND_DEVICE),
        ),
        Opt(
            "--bind-try",
            ("SRC", "DEST"),
            FS,
            "--bind, nothing if SRC is missing",
            op=_bind(BIND_WRITABLE | BIND_OPTIONAL),
        ),
        Opt(
            "--ro-bind-try",
            ("SRC", "DEST"),
            FS,
            "--ro-bind, nothing if SRC is missing",
            op=_bind(BIND_OPTIONAL),
        ),
        Opt(
            "--dev-bind-try",
            ("SRC", "DEST"),
            FS,
            "--dev-bind, nothing if SRC is missing",
            op=_bind(BIND_WRITABLE | BIND_DEVICE | BIND_OPTIONAL),
        ),
        Opt("--tmpfs", ("DEST",), FS, "tmpfs (takes --size and --perms)", op=_tmpfs),
        Opt(
            "--dir",
            ("DEST",),
            FS,
            "directory (takes --perms; parents 0755 less what it denies)",
            op=_dir,
        ),
        Opt(
            "--symlink",
            ("TARGET", "LINK"),
            FS,
            "symlink LINK with contents TARGET (an identical one is fine)",
            op=_symlink,
        ),
        Opt("--proc", ("DEST",), FS, "private procfs", op=_proc),
        Opt(
            "--dev",
            ("DEST",),
            FS,
            "minimal /dev with mqueue, read-only after the last op",
            op=_dev,
        ),
        Opt(
            "--bind-fd",
            ("FD", "DEST"),
            FS,
            "writable bind of the directory FD is open on",
            op=_bind_fd(BIND_WRITABLE),
        ),
        Opt("--ro-bind-fd", ("FD", "DEST"), FS, "read-only --bind-fd", op=_bind_fd(0)),
        Opt("--remount-ro", ("DEST",), FS, "make the mount at DEST read-only", op=_remount_ro),
        Opt("--chmod", ("OCTAL", "PATH"), FS, "set the mode of PATH", op=_chmod),
        Opt("--place", ("DEST", "FILE"), FS, "FILE's bytes, read-only", op=_place),
        Opt(
            "--file",
            ("FD", "DEST"),
            FS,
            "a file with FD's bytes, mode 0666 (takes --perms)",
            op=_data,
        ),
        Opt(
            "--bind-data",
            ("FD", "DEST"),
            FS,
            "FD's bytes, a writable private copy, mode 0600 (takes --perms)",
            op=_data,
        ),
        Opt(
            "--ro-bind-data",
            ("FD", "DEST"),
            FS,
            "--bind-data, read-only",
            op=_data,
        ),
        Opt("--mqueue", ("DEST",), FS, "POSIX message queue filesystem", op=_mqueue),
        Opt(
            "--lock-file",
            ("DEST",),
            FS,
            "hold a read lock on DEST while the container lives (applied last)",
            op=_lock_file,
        ),
        Opt(
            "--overlay",
            ("DEST", "UPPER", "WORK", "LOWER[:LOWER...]"),
            FS,
            "overlayfs",
            op=_overlay,
        ),
        Opt(
            "--tmp-overlay",
            ("DEST", "LOWER[:LOWER...]"),
            FS,
            "overlayfs, changes in a tmpfs",
            op=_overlay,
        ),
        Opt("--ro-overlay", ("DEST", "LOWER:LOWER[:...]"), FS, "read-only overlayfs", op=_overlay),
        Opt("--etc", ("HOSTDIR",), FS, "/etc as links into HOSTDIR", op=_etc),
        Opt("--root", ("HOSTDIR",), FS, "bind HOSTDIR's top-level entries into /", op=_root),
        Opt(
            "--profile",
            ("NAME",),
            FS,
            "default: the default profile, these options added before its final read-only /; "
            "none: only these options (the default when any is given)",
            act=store,
        ),
        Opt("--size", ("BYTES",), FS, "size of the next --tmpfs (> 0)", op=_size),
        Opt(
            "--perms",
            ("OCTAL",),
            FS,
            "mode of the next --tmpfs, --dir, --file or --*bind-data",
            op=_perms,
        ),
        Opt("--hostname", ("NAME",), PROCESS, "host name (default: the host's)", act=store),
        Opt("--uid", ("UID",), PROCESS, "user id inside (default: yours)", act=store),
        Opt("--gid", ("GID",), PROCESS, "group id inside (default: yours)", act=store),
        Opt(
            "--chdir",
            ("DIR",),
            PROCESS,
            "working directory (default: yours if visible inside, else HOME, else /)",
            act=store,
        ),
        Opt("--setenv", ("VAR", "VALUE"), PROCESS, "set VAR", act=_setenv),
        Opt("--unsetenv", ("VAR",), PROCESS, "unset VAR", act=_unsetenv),
        Opt("--keep-env", ("VAR",), PROCESS, "pass the caller's VAR", act=_keep_env),
        Opt(
            "--clearenv",
            (),
            PROCESS,
            "start from an empty environment (default: PATH, TERM, LANG)",
            act=_clearenv,
        ),
        Opt("--share-net", (), PROCESS, "keep the host's network", act=flag),
        Opt(
            "--retain-session",
            (),
            PROCESS,
            "keep the caller's session and terminal",
            act=flag,
        ),
        Opt("--pty", (), PROCESS, "a terminal of its own even without yours", act=flag),
        Opt("--no-pty", (), PROCESS, "no terminal of its own (default: one in yours)", act=flag),
        Opt("--privileged", (), PROCESS, "keep capabilities in the container", act=flag),
        Opt(
            "--cap-add",
            ("CAP",),
            PROCESS,
            "the program keeps CAP (CAP_SYS_ADMIN, sys_admin, ALL) in its user namespace",
            act=_cap,
        ),
        Opt("--cap-drop", ("CAP",), PROCESS, "undo an earlier --cap-add of CAP", act=_cap),
        Opt(
            "--as-pid-1",
            (),
            PROCESS,
            "the program is PID 1 itself (nobody reaps orphans or forwards signals; no pty)",
            act=flag,
        ),
        Opt(
            "--disable-userns",
            (),
            PROCESS,
            "the program cannot create user namespaces (a nested one, limit 1)",
            act=flag,
        ),
        Opt(
            "--assert-userns-disabled",
            (),
            PROCESS,
            "fail unless creating a user namespace inside fails",
            act=flag,
        ),
        Opt("--host-abstract", (), PROCESS, "reach the host's abstract sockets", act=flag),
        Opt("--adopt-wait", ("SECONDS",), PROCESS, "wait for orphans (0: none)", act=store),
        Opt(
            "--die-with-parent",
            (),
            PROCESS,
            "end with the process that started hakurei",
            act=flag,
        ),
        Opt(
            "--pass-fd",
            ("FD",),
            FDS,
            "pass FD; the program sees them as 3, 4, ... in order",
            act=_pass_fd,
        ),
        Opt("--args", ("FD",), FDS, "read more arguments, NUL-separated, from FD"),
        Opt(
            "--info-fd",
            ("FD",),
            FDS,
            'write {"child-pid": N} to FD once started, then close it',
            act=_status_fd,
        ),
        Opt(
            "--json-status-fd",
            ("FD",),
            FDS,
            'write {"child-pid": N} then {"exit-code": N}, a line each',
            act=_status_fd,
        ),
        Opt(
            "--sync-fd",
            ("FD",),
            FDS,
            "init holds FD open (the program does not): EOF on it when the container ends",
            act=_held_fd,
        ),
        Opt(
            "--block-fd",
            ("FD",),
            FDS,
            "wait until FD is readable (or EOF) before starting the program",
            act=_held_fd,
        ),
        Opt(
            "--userns-block-fd",
            ("FD",),
            FDS,
            "leave the id maps to the caller: wait on FD after --info-fd tells the pid",
            act=_held_fd,
        ),
        Opt(
            "--userns",
            ("FD",),
            FDS,
            "join the user namespace FD (one you own) instead of creating one",
            act=_held_fd,
        ),
        Opt(
            "--userns2",
            ("FD",),
            FDS,
            "after the setup, enter the user namespace FD (one below the container's)",
            act=_held_fd,
        ),
        Opt(
            "--pidns",
            ("FD",),
            FDS,
            "start in the pid namespace FD (with --userns of its owner) instead of a new one",
            act=_held_fd,
        ),
        Opt(
            "--seccomp-fd",
            ("FD",),
            FDS,
            "load a raw seccomp program (struct sock_filter[]) from FD, after the presets' filter",
            act=_seccomp_fd,
        ),
        Opt(
            "--add-seccomp-fd",
            ("FD",),
            FDS,
            "as --seccomp-fd, repeatable: the programs are stacked in order",
            act=_seccomp_fd,
        ),
        *SECCOMP_OPTIONS,
        Opt(
            ("--unshare-all", "--unshare-user", "--unshare-user-try", "--unshare-pid"),
            (),
            BWRAP,
            "",
            act=accept,
        ),
        Opt(
            ("--unshare-ipc", "--unshare-uts", "--unshare-cgroup", "--unshare-cgroup-try"),
            (),
            BWRAP,
            "",
            act=accept,
        ),
        Opt("--unshare-net", (), BWRAP, "(conflicts with --share-net)", act=accept),
        Opt("--new-session", (), BWRAP, "(unless --retain-session)", act=accept),
        Opt(("-v", "--verbose"), (), OUTPUT, "init prints each step on stderr", act=flag_as("-v")),
    ),
    refused=(
        "--argv0",
        "--exec-label",
        "--file-label",
        "--level-prefix",
        "--overlay-src",
    ),
)

#: Op options by spelling, with their value names (for tests and fuzzers).
OP_OPTIONS: dict[str, tuple[str, ...]] = {
    n: o.metavars for o in TABLE.options if o.op is not None for n in o.names
}
#: Settings that take a value that is not a file descriptor (ditto).
VALUE_OPTIONS: dict[str, tuple[str, ...]] = {
    n: o.metavars
    for o in TABLE.options
    if o.op is None and o.metavars and o.group != FDS
    for n in o.names
}

#: The fds of this process the container holds, by Params keyword.
HELD_FDS = {
    "sync_fd": "--sync-fd",
    "block_fd": "--block-fd",
    "userns_block_fd": "--userns-block-fd",
    "userns_fd": "--userns",
    "userns2_fd": "--userns2",
    "pidns_fd": "--pidns",
}

USAGE = "usage: hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]"
INTRO = """\
Run PROGRAM (a path, or a name looked up in the container's PATH) in a new
unprivileged container.  Filesystem options apply in command-line order; with
none, the default profile applies (/usr read-only, /bin /sbin /lib* as on the
host, a read-only /etc naming you, /proc, /dev, a tmpfs /tmp and HOME, the root
read-only); --profile default adds the options to it."""
TAIL = """\
examples:
  hakurei exec -- /bin/sh -c 'id; ls /'
  hakurei exec --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp \\
      --bind "$PWD" "$PWD" --chdir "$PWD" -- /usr/bin/make

exit status: the program's; 128+N if it was killed by signal N; 126 PROGRAM
not executable, 127 not found; 125 a bad command line or a failed setup (one
line on stderr).
bubblewrap options not supported here (refused, status 125; `hakurei bwrap` takes them):
 """


def help_text() -> str:
    refused = "\n".join(wrap(", ".join(sorted(TABLE.refused)), first=TAIL, indent="  "))
    return TABLE.help(USAGE, INTRO, (FS, PROCESS, FDS, SECCOMP, BWRAP, OUTPUT), refused)


def build_ops(
    sequence: list[tuple[Opt, list[str]]],
    uid: int | None = None,
    gid: int | None = None,
    hold: list[int] | None = None,
) -> Ops:
    """Turn the ordered op options into ops; --size/--perms modify the next op only.

    ``hold`` gets the fds the shim must keep open for init (``--bind-fd``).
    Lock ops come last, after the /dev remounts: a lock is on the file its
    path names once the tree is complete.
    """
    b = Builder(Ops(), uid, gid)
    for opt, v in sequence:
        assert opt.op is not None
        opt.op(b, opt.name, v)
    if b.size is not None or b.perms is not None:
        raise UsageError("--size/--perms must come right before the op they apply to")
    for target in b.seal:
        b.ops.remount(target, MS_RDONLY)
    for path in b.locks:
        b.ops.lock(path)
    if hold is not None:
        hold.extend(b.hold)
    return b.ops


def parse_exec(argv: list[str]) -> Args | None:
    """Parse ``hakurei exec``'s options; None when help was asked for."""
    a = TABLE.parse(argv)
    return None if a.help else a


def _int(a: Args, name: str) -> int | None:
    if name not in a.values:
        return None
    text = a.values[name]
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"exec: {name}: {q(text)} is not an integer") from None


def prepare(argv: list[str]) -> tuple[Setup, Args] | None:
    """The validated setup record and the parsed arguments (None: help).

    Everything but the spawn: every bad value raises a ``HakureiError``
    whose text is one line, before anything is started.
    """
    a = parse_exec(argv)
    if a is None:
        return None
    from .. import params as _params
    from .. import profile
    from ..wire import check_env_name, check_id, check_wait, hostname_bytes
    from ._table import filter_settings

    if "--share-net" in a.flags and "--unshare-net" in a.flags:
        raise UsageError("exec: --unshare-net conflicts with --share-net")
    if "--retain-session" in a.flags and "--new-session" in a.flags:
        raise UsageError("exec: --new-session conflicts with --retain-session")
    if "--pty" in a.flags and ({"--no-pty", "--retain-session"} & a.flags):
        raise UsageError("exec: --pty goes with neither --no-pty nor --retain-session")
    # Every value is checked here, before any file is read or anything spawned.
    uid = _int(a, "--uid")
    gid = _int(a, "--gid")
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    check_id("--uid", uid)
    check_id("--gid", gid)
    hostname = a.values.get("--hostname")
    if hostname is not None:
        hostname_bytes(hostname)  # explicitly given: 1-64 bytes, even if ""
    for edit in a.env:
        if len(edit) > 1:
            check_env_name(edit[1])
    adopt_wait: float | None = None  # the library's default (5 s)
    if "--adopt-wait" in a.values:
        text = a.values["--adopt-wait"]
        try:
            seconds = float(text)
        except ValueError:
            raise UsageError(f"--adopt-wait: {q(text)} is not a number of seconds") from None
        check_wait("--adopt-wait", seconds)
        adopt_wait = seconds  # 0 is no wait
    name = a.values.get("--profile") or ("none" if a.sequence else "default")
    if name not in profile.PROFILES:
        known = ", ".join(sorted(profile.PROFILES))
        raise UsageError(f"exec: --profile: unknown profile {q(name)} (known: {known})")
    chosen = profile.PROFILES[name](uid, gid)
    ops = chosen.extend(build_ops(a.sequence, uid, gid, a.hold_fds)).finish()
    env = chosen.env
    for edit in a.env:
        if edit[0] == "clear":
            env.clear()
        elif edit[0] == "set":
            env[edit[1]] = edit[2]
        elif edit[0] == "unset":
            env.pop(edit[1], None)
        elif edit[1] in os.environ:  # keep
            env[edit[1]] = os.environ[edit[1]]
    disable, presets, flags, rules = filter_settings(a)
    caps = 0
    if a.caps:
        from ..capnames import mask

        for how, cap in a.caps:
            caps = caps | mask(cap) if how == "--cap-add" else caps & ~mask(cap)
    fds = {key: int(a.values.get(opt, "-1")) for key, opt in HELD_FDS.items()}
    taken = [
        *a.pass_fds,
        *(int(a.values[o]) for o in ("--info-fd", "--json-status-fd") if o in a.values),
    ]
    for key, fd in fds.items():
        if fd != -1 and (fd in taken or list(fds.values()).count(fd) > 1):
            raise UsageError(f"exec: {HELD_FDS[key]}: fd {fd} is given for another use as well")
    if fds["userns_block_fd"] != -1 and "--info-fd" not in a.values:
        raise UsageError("exec: --userns-block-fd requires --info-fd")
    if fds["userns_block_fd"] != -1 and "--disable-userns" in a.flags:
        raise UsageError("exec: --disable-userns is not compatible with --userns-block-fd")
    if fds["userns_fd"] != -1 and (fds["userns_block_fd"] != -1 or "--disable-userns" in a.flags):
        raise UsageError("exec: --userns goes with neither --userns-block-fd nor --disable-userns")
    params = _params.Params(
        a.program,
        [a.program, *a.args],
        ops=ops,
        env=env,
        dir=a.values.get("--chdir"),  # None: the caller's cwd if visible, else HOME, else /
        uid=uid,
        gid=gid,
        hostname=hostname or "",
        seccomp_rules=rules,
        seccomp_flags=flags,
        seccomp_presets=presets,
        seccomp_disable=disable,
        retain_session="--retain-session" in a.flags,
        host_net="--share-net" in a.flags,
        privileged="--privileged" in a.flags,
        adopt_wait_delay=adopt_wait,
        host_abstract="--host-abstract" in a.flags,
        verbose="-v" in a.flags,
        caps=caps,
        as_pid_1="--as-pid-1" in a.flags,
        seccomp_programs=a.seccomp_programs,
        disable_userns="--disable-userns" in a.flags,
        assert_userns_disabled="--assert-userns-disabled" in a.flags,
        **fds,  # type: ignore[arg-type]
    )
    # This process is the shim itself: nobody above it is watched (see --die-with-parent).
    return params.resolve(len(a.pass_fds), watch_parent=False), a


def exec_setup(argv: list[str]) -> Setup | None:
    """``hakurei exec``'s command line as the validated setup record (None: help)."""
    got = prepare(argv)
    return None if got is None else got[0]


class Report:
    """bubblewrap's ``--info-fd`` and ``--json-status-fd``, written by the shim.

    ``{"child-pid": N}`` (N: init, the container's PID 1, as the host sees
    it) once the container is started, then ``{"exit-code": N}`` on the
    json-status fd when it ends, only if the program was executed (the shim
    learns that on init's started pipe): a missing program or a failed setup
    has no exit code, as with bwrap.  Both fds are closed in init, so a reader
    of the info fd sees end of file right after the pid.
    """

    def __init__(self, info: int | None, status: int | None) -> None:
        self.info = info
        self.status = status
        self.fds = [fd for fd in (info, status) if fd is not None]
        for fd in self.fds:
            os.set_inheritable(fd, False)  # never the program's

    def started(self, pid: int) -> None:
        if self.info is not None:
            write_all(self.info, f'{{\n    "child-pid": {pid}\n}}\n')
            os.close(self.info)
        if self.status is not None:
            write_all(self.status, f'{{ "child-pid": {pid} }}\n')

    def exited(self, status: int) -> None:
        if self.status is not None:
            write_all(self.status, f'{{ "exit-code": {status} }}\n')

    def exit_status(self, status: int, ran: bool) -> int:
        """The program's status, or init's (125, 126, 127): ours are distinct already."""
        return status


def write_all(fd: int, text: str) -> None:
    """All of ``text`` to ``fd``; a reader that went away is not the container's problem."""
    data = text.encode()
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass


def die_with_parent(ppid: int) -> None:
    """SIGKILL when the process that started us dies; already dead → exit now.

    ``PR_SET_PDEATHSIG`` is per thread and this process is single-threaded,
    so it fires exactly when the parent goes; init has its own, tied to us.
    The parent may have died before the prctl: then we were reparented
    already, which ``getppid`` shows.
    """
    import _signal  # not signal: that imports enum

    from ..init.kernel import Kernel

    Kernel().set_pdeathsig(_signal.SIGKILL)
    if os.getppid() != ppid:
        os._exit(128 + _signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Parse, build the setup, then become the container's shim (never returns on success)."""
    ppid = os.getppid()
    got = prepare(argv)
    if got is None:
        if sys.stdout is not None:  # None when started with fd 1 closed
            sys.stdout.write(help_text())
        return 0
    setup, a = got
    if "--die-with-parent" in a.flags:
        die_with_parent(ppid)
    info, status = a.values.get("--info-fd"), a.values.get("--json-status-fd")
    report = None
    if info is not None or status is not None:
        report = Report(
            None if info is None else int(info), None if status is None else int(status)
        )
    import gc

    from ..init import shim

    if sys.stdout is not None:
        sys.stdout.flush()
    gc.freeze()  # what start-up made is never collected, so never scanned again
    gc.enable()  # the shim and init live on
    term = None
    if "--as-pid-1" in a.flags:
        pass  # the program is init itself: no terminal of its own
    elif "--pty" in a.flags or os.isatty(0):  # else no import (start-up time)
        from .. import terminal

        term = terminal.Terminal() if terminal.wanted(a.flags, setup.retain_session) else None
    shim.become(setup, a.pass_fds, report, term, hold=a.hold_fds)
