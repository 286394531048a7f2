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

from ..errors import HakureiError, describe
from . import exec as _exec
from .bwrap_options import MODIFIERS, OPTIONS, default_caps, parse, seccomp_data, usage
from .bwrap_spec import BwrapError, Spec, message_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..wire import Setup

EXIT_FAILURE = 1

__all__ = [
    "MODIFIERS",
    "OPTIONS",
    "BwrapError",
    "Report",
    "Spec",
    "main",
    "parse",
    "setup_of",
    "usage",
]


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
        programs.append(seccomp_data(spec.values["--seccomp"], "--seccomp"))
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
        caps=default_caps() if spec.caps is None else spec.caps,
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
        os.write(2, message_line(spec, 3, msg))
    except OSError:
        pass
    return status
