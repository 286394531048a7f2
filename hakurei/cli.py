"""``hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]`` and ``hakurei seccomp``.

Op options apply in command-line order, bubblewrap style.  With no op option
the default profile (hakurei/profile.py) applies.  This path never imports
trio (~70 ms): it uses the blocking launcher.  Every error is one line on
stderr and exit status 125; otherwise the status is the program's (128+n if
it was killed by signal n, 126 not executable, 127 not found).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import EXIT_SETUP, HakureiError, describe
from .init.kernel import MS_RDONLY
from .ops import BIND_DEVICE, BIND_OPTIONAL, BIND_WRITABLE, Ops

#: op option → number of values
OP_OPTIONS: dict[str, int] = {
    "--bind": 2,
    "--ro-bind": 2,
    "--dev-bind": 2,
    "--bind-try": 2,
    "--ro-bind-try": 2,
    "--tmpfs": 1,
    "--dir": 1,
    "--symlink": 2,
    "--proc": 1,
    "--dev": 1,
    "--remount-ro": 1,
    "--place": 2,
    "--overlay": 4,
    "--tmp-overlay": 2,
    "--ro-overlay": 2,
    "--etc": 1,
    "--root": 1,
    "--size": 1,
    "--perms": 1,
}
METAVARS: dict[str, str | tuple[str, ...]] = {
    "--bind": ("SRC", "DEST"),
    "--ro-bind": ("SRC", "DEST"),
    "--dev-bind": ("SRC", "DEST"),
    "--bind-try": ("SRC", "DEST"),
    "--ro-bind-try": ("SRC", "DEST"),
    "--symlink": ("TARGET", "LINK"),
    "--place": ("DEST", "FILE"),
    "--overlay": ("DEST", "UPPER", "WORK", "LOWERS"),
    "--tmp-overlay": ("DEST", "LOWERS"),
    "--ro-overlay": ("DEST", "LOWERS"),
    "--size": "BYTES",
    "--perms": "OCTAL",
    "--etc": "HOSTDIR",
    "--root": "HOSTDIR",
}


class UsageError(HakureiError):
    """A bad command line: one line, exit 125."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


class _Ordered(argparse.Action):
    """Record op options in command-line order; they are not independent settings."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert option_string is not None and isinstance(values, list)
        namespace.sequence.append((option_string, list(values)))


def exec_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hakurei exec",
        description="Run PROGRAM (an absolute path) in a new unprivileged container.",
    )
    p.set_defaults(sequence=[])
    ops = p.add_argument_group("filesystem (applied in order; none given: the default profile)")
    for opt, n in OP_OPTIONS.items():
        ops.add_argument(opt, nargs=n, action=_Ordered, metavar=METAVARS.get(opt, "DEST"))
    g = p.add_argument_group("process")
    g.add_argument("--hostname")
    g.add_argument("--uid", type=int, help="container uid (default: yours)")
    g.add_argument("--gid", type=int, help="container gid (default: yours)")
    g.add_argument("--chdir", default="/", metavar="DIR")
    g.add_argument("--setenv", nargs=2, action="append", default=[], metavar=("VAR", "VALUE"))
    g.add_argument("--keep-env", action="append", default=[], metavar="VAR")
    g.add_argument("--share-net", action="store_true", help="stay in the host network namespace")
    g.add_argument("--retain-session", action="store_true", help="do not setsid the program")
    g.add_argument("--privileged", action="store_true", help="keep CAP_SYS_ADMIN (namespace only)")
    g.add_argument("--host-abstract", action="store_true", help="allow host abstract sockets")
    g.add_argument("--adopt-wait", type=float, default=0.0, metavar="SECONDS")
    s = p.add_argument_group("seccomp (default: strict)")
    s.add_argument("--seccomp", metavar="PRESET[,PRESET...]", default="strict")
    s.add_argument("--seccomp-rules", metavar="FILE.json")
    s.add_argument("--no-seccomp", action="store_true")
    s.add_argument("--multiarch", action="store_true")
    s.add_argument("--allow-can", action="store_true")
    s.add_argument("--allow-bluetooth", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="init prints each step")
    p.add_argument("program", metavar="PROGRAM")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    return p


def _perm(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise UsageError(f"--perms: {text!r} is not an octal mode") from None
    if not 0 <= value <= 0o7777:
        raise UsageError(f"--perms: {text!r} is out of range")
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--size: {text!r} is not a number of bytes") from None
    if value < 0:
        raise UsageError(f"--size: {value} is negative")
    return value


def build_ops(sequence: list[tuple[str, list[str]]]) -> Ops:
    """Turn the ordered op options into ops; --size/--perms modify the next op."""
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
        if opt in ("--bind", "--ro-bind", "--dev-bind", "--bind-try", "--ro-bind-try"):
            flags = {
                "--bind": BIND_WRITABLE,
                "--ro-bind": 0,
                "--dev-bind": BIND_WRITABLE | BIND_DEVICE,
                "--bind-try": BIND_WRITABLE | BIND_OPTIONAL,
                "--ro-bind-try": BIND_OPTIONAL,
            }[opt]
            ops.bind(v[0], v[1], flags)
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
            try:
                with open(v[1], "rb") as f:
                    data = f.read()
            except OSError as e:
                raise UsageError(f"--place {v[0]}: cannot read {describe(e)}") from None
            ops.place(v[0], data)
        elif opt == "--overlay":
            ops.overlay(v[0], v[1], v[2], *v[3].split(":"))
        elif opt == "--tmp-overlay":
            ops.overlay_ephemeral(v[0], *v[1].split(":"))
        elif opt == "--ro-overlay":
            ops.overlay_readonly(v[0], *v[1].split(":"))
        elif opt == "--etc":
            ops.etc(v[0], "host")
        elif opt == "--root":
            ops.root(v[0], BIND_WRITABLE * 0)
        if opt not in ("--tmpfs", "--dir") and (size is not None or perms is not None):
            raise UsageError(f"--size/--perms must come right before --tmpfs or --dir, not {opt}")
        size = perms = None
    if size is not None or perms is not None:
        raise UsageError("--size/--perms must come right before --tmpfs or --dir")
    return ops


def exec_main(argv: list[str]) -> int:
    from . import launch, profile, seccomp

    a = exec_parser().parse_args(argv)
    if a.args and a.args[0] == "--":
        a.args = a.args[1:]
    uid = os.getuid() if a.uid is None else a.uid
    gid = os.getgid() if a.gid is None else a.gid
    ops = build_ops(a.sequence) if a.sequence else profile.default_ops(uid, gid)
    env = profile.default_env()
    for var in a.keep_env:
        if var in os.environ:
            env[var] = os.environ[var]
    for var, value in a.setenv:
        env[var] = value
    flags = (
        seccomp.ALLOW_MULTIARCH * a.multiarch
        | seccomp.ALLOW_CAN * a.allow_can
        | seccomp.ALLOW_BLUETOOTH * a.allow_bluetooth
    )
    presets = 0
    rules = None
    if not a.no_seccomp:
        try:
            presets = seccomp.parse_presets(a.seccomp)
        except ValueError as e:
            raise UsageError(f"--seccomp: {e}") from None
        if a.seccomp_rules:
            try:
                with open(a.seccomp_rules) as f:
                    rules = seccomp.rules_from_json(f.read())
            except (OSError, ValueError) as e:
                raise UsageError(f"--seccomp-rules {a.seccomp_rules}: {describe(e)}") from None
    params = launch.Params(
        a.program,
        [a.program, *a.args],
        ops=ops,
        env=env,
        dir=a.chdir,
        uid=uid,
        gid=gid,
        hostname=a.hostname or "",
        seccomp_rules=rules,
        seccomp_flags=flags,
        seccomp_presets=presets,
        seccomp_disable=a.no_seccomp,
        retain_session=a.retain_session,
        host_net=a.share_net,
        privileged=a.privileged,
        adopt_wait_delay=a.adopt_wait if a.adopt_wait > 0 else (-1 if a.adopt_wait < 0 else 0),
        host_abstract=a.host_abstract,
        verbose=a.verbose,
    )
    setup = params.resolve(0)
    shim = launch.Shim(0, 1, 2)
    # Termination requests to us are passed on: the shim relays them to init,
    # which forwards them to the program (SIGINT ends the container).
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: shim.signal(signum))
    try:
        shim.send(setup)
        return shim.reap()
    except BaseException:
        shim.abandon()
        raise


USAGE = """usage: hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]
       hakurei seccomp [--presets LIST] [--multiarch] --format pfc|bpf|json
       hakurei init    (internal: the container's shim; reads HAKUREI_SETUP)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "exec":
            return exec_main(rest)
        if cmd == "seccomp":
            from ._seccomp_cmd import main as seccomp_main

            return seccomp_main(rest)
        if cmd == "init":
            from .init.shim import main as shim_main

            shim_main()
        raise UsageError(f"unknown command {cmd!r} (want exec or seccomp)")
    except HakureiError as e:
        sys.stderr.write(f"hakurei: {e}\n")
        return e.status
    except OSError as e:
        sys.stderr.write(f"hakurei: {describe(e)}\n")
        return EXIT_SETUP
    except KeyboardInterrupt:
        return 130
