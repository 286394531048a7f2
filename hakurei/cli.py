"""``hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]`` and ``hakurei seccomp``.

Op options apply in command-line order, bubblewrap style.  With no op option
the default profile (hakurei/profile.py) applies.  Every error is one line on
stderr and exit status 125; otherwise the status is the program's (128+n if
it was killed by signal n, 126 not executable, 127 not found).

This path is measured per container, so it stays lean: no trio (~70 ms), no
argparse or typing (~8 ms: the options are a flat, ordered list that a table
parses), and the CLI process becomes the container's shim itself
(``hakurei.init.shim.become``) instead of starting a second interpreter: it
is single-threaded, so none of the reasons for a separate shim apply.
"""

from __future__ import annotations

import os
import sys

from . import _quiet_interrupt
from .errors import EXIT_SETUP, HakureiError, describe, q, safe_line

# The console script's Ctrl-C hook is installed by the package (__init__.py);
# ``python -m hakurei`` (argv[0] is "-m" then) gets it here, before main's try.
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = _quiet_interrupt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .ops import Ops
    from .params import Setup

#: Ops options, in the order they may appear, with their value names.
OP_OPTIONS: dict[str, tuple[str, ...]] = {
    "--bind": ("SRC", "DEST"),
    "--ro-bind": ("SRC", "DEST"),
    "--dev-bind": ("SRC", "DEST"),
    "--bind-try": ("SRC", "DEST"),
    "--ro-bind-try": ("SRC", "DEST"),
    "--tmpfs": ("DEST",),
    "--dir": ("DEST",),
    "--symlink": ("TARGET", "LINK"),
    "--proc": ("DEST",),
    "--dev": ("DEST",),
    "--remount-ro": ("DEST",),
    "--place": ("DEST", "FILE"),
    "--overlay": ("DEST", "UPPER", "WORK", "LOWER[:LOWER...]"),
    "--tmp-overlay": ("DEST", "LOWER[:LOWER...]"),
    "--ro-overlay": ("DEST", "LOWER:LOWER[:...]"),
    "--etc": ("HOSTDIR",),
    "--root": ("HOSTDIR",),
    "--size": ("BYTES",),
    "--perms": ("OCTAL",),
}
#: Settings that take values (the last one wins, except the repeatable ones).
VALUE_OPTIONS: dict[str, tuple[str, ...]] = {
    "--hostname": ("NAME",),
    "--uid": ("UID",),
    "--gid": ("GID",),
    "--chdir": ("DIR",),
    "--setenv": ("VAR", "VALUE"),
    "--keep-env": ("VAR",),
    "--adopt-wait": ("SECONDS",),
    "--seccomp": ("PRESET[,PRESET...]",),
    "--seccomp-rules": ("FILE.json",),
}
FLAG_OPTIONS = (
    "--share-net",
    "--retain-session",
    "--privileged",
    "--host-abstract",
    "--no-seccomp",
    "--multiarch",
    "--allow-can",
    "--allow-bluetooth",
    "--allow-io-uring",
    "--verbose",
)

EXEC_HELP = """\
usage: hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]

Run PROGRAM (an absolute path: there is no PATH lookup) in a new unprivileged
container.  Filesystem options apply in command-line order; with none, the
default profile applies (/usr read-only, /bin /sbin /lib* as on the host, a
read-only /etc, /proc, /dev, a tmpfs /tmp, the root read-only).

filesystem:
  --bind SRC DEST          writable bind        --ro-bind SRC DEST    read-only bind
  --dev-bind SRC DEST      writable, devices    --bind-try SRC DEST   --bind, SRC optional
  --ro-bind-try SRC DEST   --ro-bind, SRC optional
  --tmpfs DEST             tmpfs (--size BYTES and --perms OCTAL before it apply to it)
  --dir DEST               directory (--perms OCTAL before it applies to it)
  --symlink TARGET LINK    symlink LINK with contents TARGET
  --proc DEST              private procfs       --dev DEST            minimal /dev with mqueue
  --remount-ro DEST        remount read-only    --place DEST FILE     FILE's bytes, read-only
  --overlay DEST UPPER WORK LOWER[:LOWER...]    --tmp-overlay DEST LOWER[:LOWER...]
  --ro-overlay DEST LOWER:LOWER[:...]           --etc HOSTDIR         /etc as links into HOSTDIR
  --root HOSTDIR           bind HOSTDIR's top-level entries into /
process:
  --hostname NAME  --uid UID  --gid GID (default: yours)  --chdir DIR (default /)
  --setenv VAR VALUE  --keep-env VAR (default env: PATH, and TERM and LANG if set)
  --share-net  --retain-session  --privileged  --host-abstract  --adopt-wait SECONDS
seccomp (default: everyday = strict but for calls that can only set ids to your own):
  --seccomp everyday,strict,ext,deny-ns,deny-tty,deny-devel,linux32,allow-id-calls
  --seccomp-rules FILE.json
  --no-seccomp  --multiarch  --allow-can  --allow-bluetooth
  --allow-io-uring         keep io_uring (refused by default: it bypasses the socket rules)
  -v, --verbose            init prints each step on stderr
"""

USAGE = """usage: hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]
       hakurei seccomp [--presets LIST] [--multiarch] --format pfc|bpf|json
       hakurei init    (internal: the container's shim; reads HAKUREI_SETUP)
"""


#: Largest --seccomp-rules file read (1 MiB: tens of thousands of rules).
RULES_MAX = 1 << 20


class UsageError(HakureiError):
    """A bad command line: one line, exit 125."""


class ExecArgs:
    """``hakurei exec``'s command line, parsed but not yet interpreted."""

    def __init__(self) -> None:
        self.sequence: list[tuple[str, list[str]]] = []
        self.values: dict[str, list[str]] = {}
        self.setenv: list[tuple[str, str]] = []
        self.keep_env: list[str] = []
        self.flags: set[str] = set()
        self.program = ""
        self.args: list[str] = []


def parse_exec(argv: list[str]) -> ExecArgs | None:
    """Parse ``hakurei exec``'s options; None when help was asked for."""
    a = ExecArgs()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.partition("=")
        if name == "-v":
            name = "--verbose"
        names = OP_OPTIONS.get(name) or VALUE_OPTIONS.get(name)
        if names is None:
            if name in FLAG_OPTIONS and not eq:
                a.flags.add(name)
                i += 1
                continue
            raise UsageError(f"exec: unknown option {q(arg)} (see --help)")
        if eq:
            if len(names) != 1:
                raise UsageError(f"exec: {name} takes {' '.join(names)}, not '='")
            values, i = [inline], i + 1
        else:
            values = argv[i + 1 : i + 1 + len(names)]
            if len(values) < len(names):
                raise UsageError(f"exec: {name} needs {' '.join(names)}")
            i += 1 + len(names)
        if name in OP_OPTIONS:
            a.sequence.append((name, values))
        elif name == "--setenv":
            a.setenv.append((values[0], values[1]))
        elif name == "--keep-env":
            a.keep_env.append(values[0])
        else:
            a.values[name] = values
    if i >= len(argv):
        raise UsageError("exec: no PROGRAM given")
    a.program, a.args = argv[i], argv[i + 1 :]
    return a


def _int(a: ExecArgs, name: str) -> int | None:
    if name not in a.values:
        return None
    text = a.values[name][0]
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"exec: {name}: {q(text)} is not an integer") from None


def _perm(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise UsageError(f"--perms: {q(text)} is not an octal mode") from None
    if not 0 <= value <= 0o7777:
        raise UsageError(f"--perms: {q(text)} is out of range")
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--size: {q(text)} is not a number of bytes") from None
    if value < 0:
        raise UsageError(f"--size: {value} is negative")
    return value


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


def build_ops(sequence: list[tuple[str, list[str]]]) -> Ops:
    """Turn the ordered op options into ops; --size/--perms modify the next op."""
    from .init.kernel import MS_RDONLY
    from .ops import BIND_DEVICE, BIND_OPTIONAL, BIND_WRITABLE, Ops

    binds = {
        "--bind": BIND_WRITABLE,
        "--ro-bind": 0,
        "--dev-bind": BIND_WRITABLE | BIND_DEVICE,
        "--bind-try": BIND_WRITABLE | BIND_OPTIONAL,
        "--ro-bind-try": BIND_OPTIONAL,
    }
    ops = Ops()
    size: int | None = None
    perms: int | None = None
    for opt, v in sequence:
        if opt == "--size":
            size = _size(v[0])
            continue
        if opt == "--perms":
            perms = _perm(v[0])
            continue
        if opt not in ("--tmpfs", "--dir") and (size is not None or perms is not None):
            raise UsageError(f"--size/--perms must come right before --tmpfs or --dir, not {opt}")
        if opt in binds:
            ops.bind(v[0], v[1], binds[opt])
        elif opt == "--tmpfs":
            ops.tmpfs(v[0], size or 0, 0o755 if perms is None else perms)
        elif opt == "--dir":
            ops.mkdir(v[0], 0o755 if perms is None else perms)
        elif opt == "--symlink":
            ops.link(v[1], v[0])
        elif opt == "--proc":
            ops.proc(v[0])
        elif opt == "--dev":
            ops.dev(v[0], mqueue=True)
        elif opt == "--remount-ro":
            ops.remount(v[0], MS_RDONLY)
        elif opt == "--place":
            from .ops.place import MAX_DATA

            ops.place(v[0], read_regular(v[1], MAX_DATA, f"--place {q(v[0])}"))
        elif opt == "--overlay":
            ops.overlay(v[0], v[1], v[2], *v[3].split(":"))
        elif opt == "--tmp-overlay":
            ops.overlay_ephemeral(v[0], *v[1].split(":"))
        elif opt == "--ro-overlay":
            ops.overlay_readonly(v[0], *v[1].split(":"))
        elif opt == "--etc":
            ops.etc(v[0], "host")
        elif opt == "--root":
            ops.root(v[0], 0)  # read-only binds, as everything of the host by default
        size = perms = None
    if size is not None or perms is not None:
        raise UsageError("--size/--perms must come right before --tmpfs or --dir")
    return ops


def exec_main(argv: list[str]) -> int:
    """Parse, build the setup, then become the container's shim (never returns on success)."""
    setup = exec_setup(argv)
    if setup is None:
        if sys.stdout is not None:  # None when started with fd 1 closed
            sys.stdout.write(EXEC_HELP)
        return 0
    from .init import shim

    if sys.stdout is not None:
        sys.stdout.flush()
    shim.become(setup)


def exec_setup(argv: list[str]) -> Setup | None:
    """``hakurei exec``'s command line as the validated setup record (None: help).

    Everything but the spawn: every bad value raises a ``HakureiError``
    whose text is one line, before anything is started (the fuzz tests call
    this in-process).
    """
    a = parse_exec(argv)
    if a is None:
        return None
    from . import launch, profile, seccomp
    from .params import check_env_name, check_id, check_wait, hostname_bytes

    # Every value is checked here, before any file is read or anything spawned.
    uid = _int(a, "--uid")
    gid = _int(a, "--gid")
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    check_id("--uid", uid)
    check_id("--gid", gid)
    hostname = a.values.get("--hostname", [None])[0]
    if hostname is not None:
        hostname_bytes(hostname)  # explicitly given: 1-64 bytes, even if ""
    for var in a.keep_env:
        check_env_name(var)
    for var, _ in a.setenv:
        check_env_name(var)
    adopt_wait: float | None = None  # the library's default (5 s)
    if "--adopt-wait" in a.values:
        text = a.values["--adopt-wait"][0]
        try:
            seconds = float(text)
        except ValueError:
            raise UsageError(f"--adopt-wait: {q(text)} is not a number of seconds") from None
        check_wait("--adopt-wait", seconds)
        adopt_wait = seconds  # 0 is no wait
    ops = build_ops(a.sequence) if a.sequence else profile.default_ops(uid, gid)
    env = profile.default_env()
    for var in a.keep_env:
        if var in os.environ:
            env[var] = os.environ[var]
    env.update(a.setenv)
    flags = (
        seccomp.ALLOW_MULTIARCH * ("--multiarch" in a.flags)
        | seccomp.ALLOW_CAN * ("--allow-can" in a.flags)
        | seccomp.ALLOW_BLUETOOTH * ("--allow-bluetooth" in a.flags)
        | seccomp.ALLOW_IO_URING * ("--allow-io-uring" in a.flags)
    )
    disable = "--no-seccomp" in a.flags
    presets = 0
    rules = None
    if not disable:
        try:
            presets = seccomp.parse_presets(a.values.get("--seccomp", ["everyday"])[0])
        except ValueError as e:
            raise UsageError(f"--seccomp: {e}") from None
        if "--seccomp-rules" in a.values:
            path = a.values["--seccomp-rules"][0]
            what = f"--seccomp-rules {q(path)}"
            raw = read_regular(path, RULES_MAX, what)
            try:
                rules = seccomp.rules_from_json(raw.decode())
            except RecursionError:
                raise UsageError(f"{what}: JSON nested too deeply") from None
            except ValueError as e:  # also UnicodeDecodeError
                raise UsageError(f"{what}: {describe(e)}") from None
    params = launch.Params(
        a.program,
        [a.program, *a.args],
        ops=ops,
        env=env,
        dir=a.values.get("--chdir", ["/"])[0],
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
        verbose="--verbose" in a.flags,
    )
    return params.resolve(0, watch_parent=False)  # this process is the shim itself


def say(msg: str) -> None:
    """``hakurei: msg`` as one line on fd 2, control bytes escaped; silent if fd 2 is gone.

    Written with os.write, not sys.stderr: that is None when the CLI was
    started with fd 2 closed, and a failed write must not become a traceback.
    """
    try:
        os.write(2, f"hakurei: {safe_line(msg)}\n".encode(errors="replace"))
    except OSError:
        pass


def _run(argv: list[str]) -> int:
    if not argv:
        raise UsageError("no command given (want exec or seccomp; see --help)")
    if argv[0] in ("-h", "--help"):
        if sys.stdout is not None:
            sys.stdout.write(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "exec":
        return exec_main(rest)
    if cmd == "seccomp":
        from ._seccomp_cmd import main as seccomp_main

        return seccomp_main(rest)
    if cmd == "init":
        from .init.shim import main as shim_main

        shim_main()
    raise UsageError(f"unknown command {q(cmd)} (want exec or seccomp)")


def main(argv: list[str] | None = None) -> int:
    """The console script: a status for every input and condition, never a traceback.

    Bad input is one line and 125; Ctrl-C is a silent 130; a reader that went
    away (``| head -1``) is a silent 141, as SIGPIPE would give a C program;
    anything unforeseen is still one line (and 125), never a traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = _run(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, so a broken pipe is caught below, not at exit
        return status
    except HakureiError as e:
        say(str(e))
        return e.status
    except BrokenPipeError:
        _drop_stdout()
        return 141
    except OSError as e:
        say(describe(e))
        return EXIT_SETUP
    except KeyboardInterrupt:
        _drop_stdout()
        return 130
    except RecursionError:  # deeply nested JSON, say
        say("input nested too deeply")
        return EXIT_SETUP
    except ValueError as e:  # text that is not UTF-8, say
        say(describe(e))
        return EXIT_SETUP
    except Exception as e:  # a bug, still one line
        say(f"internal error: {type(e).__name__}: {describe(e)}")
        return EXIT_SETUP


def _drop_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
