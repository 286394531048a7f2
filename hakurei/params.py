"""``Params``: a container as the caller describes it, and its resolution to the wire record.

The caller's side of the protocol: values are checked here, in the caller's
process (``ParamsError``/``OpError`` before anything is spawned), defaults
are applied (overflow ids, the adopt-wait delay, the working directory
fallbacks), and the seccomp presets are compiled, so that ``resolve()``
yields a ``wire.Setup`` the shim only has to validate again.
"""

from __future__ import annotations

import os

from .errors import OpError, ParamsError, StartError, q
from .ops import Op
from .wire import (
    CALLER_FDS,
    CAPS_LIMIT,
    PATH_MAX,
    Setup,
    _size,
    check_command,
    check_env_name,
    check_id,
    check_seccomp_program,
    check_wait,
    hostname_bytes,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import and the CLI path avoids it
    from collections.abc import Sequence
    from typing import Any, TypedDict

    class ParamsKw(TypedDict, total=False):
        """``Params``'s keywords, for ``**params: Unpack[ParamsKw]``: a misspelt one fails mypy."""

        ops: list[Op] | None
        env: dict[str, str] | list[str] | None
        dir: str | list[str] | tuple[str, ...] | None
        uid: int
        gid: int
        hostname: str | bytes
        seccomp_rules: list[Any] | None
        seccomp_flags: int
        seccomp_presets: int
        seccomp_disable: bool
        parent_perm: int
        retain_session: bool
        host_net: bool
        privileged: bool
        forward_cancel: bool
        adopt_wait_delay: float | None
        host_abstract: bool
        verbose: bool
        message_prefix: str
        set_pwd: bool
        caps: int
        as_pid_1: bool
        seccomp_programs: list[bytes] | None
        disable_userns: bool
        assert_userns_disabled: bool
        sync_fd: int
        block_fd: int
        userns_block_fd: int
        userns_fd: int
        userns2_fd: int
        pidns_fd: int
        visible_init: bool


def _read_sysctl(name: str) -> int:
    path = f"/proc/sys/kernel/{name}"
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError) as e:
        raise StartError(f"read {path}", e) from None


_overflow: dict[str, int] = {}


def overflow_id(kind: str) -> int:
    """/proc/sys/kernel/overflow{uid,gid}, read once: ids < 1 map to it."""
    if kind not in _overflow:
        _overflow[kind] = _read_sysctl(f"overflow{kind}")
    return _overflow[kind]


class Params:
    """Everything that describes a container (Go ``Params``), as the caller gives it.

    ``resolve()`` turns it into the wire ``Setup``: ids < 1 become the
    overflow ids, the seccomp presets become BPF (cached), the adopt-wait
    default (5 s) applies when ``adopt_wait_delay`` is left out (None); 0 is no
    wait at all, and a negative delay counts as 0 (as in Go).  Validation
    happens here, in the caller's process, so a bad op or path is a clear
    ``OpError`` before anything is spawned.

    ``path`` is absolute, relative to the working directory (with a ``/``), or
    a name that init looks up in the container's ``PATH`` (from ``env``).
    ``dir`` is a path, a list of paths tried in order, or ``None``: the
    caller's directory if the container has it, else ``HOME``, else ``/``
    (``params.working_dirs``).
    """

    def __init__(
        self,
        path: str,
        args: list[str] | None = None,
        *,
        ops: list[Op] | None = None,
        env: dict[str, str] | list[str] | None = None,
        dir: str | list[str] | tuple[str, ...] | None = "/",
        uid: int = 0,
        gid: int = 0,
        hostname: str | bytes = "",
        seccomp_rules: list[Any] | None = None,
        seccomp_flags: int = 0,
        seccomp_presets: int = 0,
        seccomp_disable: bool = False,
        parent_perm: int = 0o755,
        retain_session: bool = False,
        host_net: bool = False,
        privileged: bool = False,
        forward_cancel: bool = False,
        adopt_wait_delay: float | None = None,
        host_abstract: bool = False,
        verbose: bool = False,
        message_prefix: str = "hakurei: ",
        set_pwd: bool = False,
        caps: int = 0,
        as_pid_1: bool = False,
        seccomp_programs: list[bytes] | None = None,
        disable_userns: bool = False,
        assert_userns_disabled: bool = False,
        sync_fd: int = -1,
        block_fd: int = -1,
        userns_block_fd: int = -1,
        userns_fd: int = -1,
        userns2_fd: int = -1,
        pidns_fd: int = -1,
        visible_init: bool = False,
    ) -> None:
        # A name without "/" is looked up in the container's PATH by init (as
        # execvp does); a relative path with "/" is relative to the working
        # directory inside the container.  Only "" names nothing.
        if not isinstance(path, str) or not path:
            raise OpError(f"program path {q(str(path))} is empty (give a path or a name)")
        self.path = path
        for name, value in (("args", args), ("ops", ops)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise ParamsError(f"{name} must be a list, not {type(value).__name__}")
        self.args = list(args) if args else [path]
        self.ops = list(ops or [])
        for op in self.ops:
            if not isinstance(op, Op):
                raise OpError(f"not an op: {op!r}")
            op.validate()  # fields may have been changed since the op was built
        if env is None:
            self.env: list[str] = []
        elif isinstance(env, dict):
            self.env = env_entries(env)
        elif isinstance(env, (list, tuple)):
            self.env = list(env)
        else:
            raise ParamsError(f"env must be a dict or a list, not {type(env).__name__}")
        #: where the program starts: ``dir`` first, then each fallback in turn
        self.dir, self.dir_fallback = working_dirs(dir, self.env)
        self.uid = uid
        self.gid = gid
        self.hostname = hostname
        self.seccomp_rules = list(seccomp_rules or [])
        self.seccomp_flags = seccomp_flags
        self.seccomp_presets = seccomp_presets
        self.seccomp_disable = seccomp_disable
        self.parent_perm = parent_perm
        self.retain_session = retain_session
        self.host_net = host_net
        self.privileged = privileged
        self.forward_cancel = forward_cancel
        self.adopt_wait_delay = adopt_wait_delay
        self.host_abstract = host_abstract
        self.verbose = verbose
        #: what init's and the shim's error lines start with (``bwrap: `` for the front end)
        self.message_prefix = message_prefix
        #: init sets ``PWD`` to the working directory it entered, as bubblewrap does
        self.set_pwd = set_pwd
        #: capabilities the program keeps (bit ``1 << CAP_...``, hakurei.capnames)
        self.caps = caps
        self.as_pid_1 = as_pid_1
        if seccomp_programs is not None and not isinstance(seccomp_programs, (list, tuple)):
            raise ParamsError("seccomp_programs must be a list of bytes")
        self.seccomp_programs = list(seccomp_programs or [])
        self.disable_userns = disable_userns
        self.assert_userns_disabled = assert_userns_disabled
        self.sync_fd = sync_fd
        self.block_fd = block_fd
        self.userns_block_fd = userns_block_fd
        #: a user namespace to join instead of creating one (bwrap --userns)
        self.userns_fd = userns_fd
        #: a user namespace init enters after the setup (bwrap --userns2)
        self.userns2_fd = userns2_fd
        #: a pid namespace to start init in instead of a new one (bwrap --pidns)
        self.pidns_fd = pidns_fd
        #: init dumpable once the program runs, in a landlock domain nested below init's
        #: (bwrap's ``child-pid``: the caller may open /proc/PID/ns/* of it)
        self.visible_init = visible_init
        check_params(self)  # ParamsError now, in the caller, not an error in init later

    def __str__(self) -> str:
        argv = "[" + " ".join(q(a) for a in self.args) + "]"
        return (
            f"argv: {argv}, filter: {str(not self.seccomp_disable).lower()}, "
            f"rules: {len(self.seccomp_rules)}, flags: {self.seccomp_flags:#x}, "
            f"presets: {self.seccomp_presets:#x}"
        )

    def resolve(self, files: int, *, watch_parent: bool = True) -> Setup:
        """The wire record for a container with ``files`` extra fds.

        ``watch_parent=False`` (parent_pid 0) is for a caller that is the shim
        itself, the CLI: nobody above it is watched, as with bwrap.  Only then
        may ``sync_fd``, ``block_fd`` and ``userns_block_fd`` be given: they are
        fds of this process, which only a shim forked from it inherits.
        """
        if not self.ops:
            raise StartError("container: starting an invalid container (no ops)")
        if watch_parent:
            for name in CALLER_FDS:
                if getattr(self, name) != -1:
                    raise ParamsError(
                        f"{name} is an fd of the calling process: only a caller that becomes"
                        " the shim (hakurei exec, hakurei.init.shim.become) can pass it"
                    )
        bpf, nrules = self._seccomp()
        delay = self.adopt_wait_delay
        return Setup(
            self.ops,
            path=self.path,
            args=self.args,
            env=self.env,
            dir=self.dir,
            dir_fallback=self.dir_fallback,
            uid=self.uid if self.uid >= 1 else overflow_id("uid"),
            gid=self.gid if self.gid >= 1 else overflow_id("gid"),
            host_uid=os.getuid(),
            host_gid=os.getgid(),
            hostname=self.hostname,
            parent_perm=self.parent_perm or 0o755,
            retain_session=self.retain_session,
            host_net=self.host_net,
            privileged=self.privileged,
            forward_cancel=self.forward_cancel,
            host_abstract=self.host_abstract,
            adopt_wait_delay=5.0 if delay is None else max(float(delay), 0.0),
            bpf=bpf,
            nrules=nrules,
            files=files,
            parent_pid=os.getpid() if watch_parent else 0,
            verbose=self.verbose,
            message_prefix=self.message_prefix,
            set_pwd=self.set_pwd,
            caps=self.caps,
            as_pid_1=self.as_pid_1,
            seccomp_programs=self.seccomp_programs,
            disable_userns=self.disable_userns,
            assert_userns_disabled=self.assert_userns_disabled,
            sync_fd=self.sync_fd,
            block_fd=self.block_fd,
            userns_block_fd=self.userns_block_fd,
            userns_fd=self.userns_fd,
            userns2_fd=self.userns2_fd,
            pidns_fd=self.pidns_fd,
            visible_init=self.visible_init,
        )

    def _seccomp(self) -> tuple[bytes | None, int]:
        if self.seccomp_disable:
            return None, 0
        from . import seccomp

        return seccomp.filter_for(
            presets=self.seccomp_presets,
            flags=self.seccomp_flags,
            rules=self.seccomp_rules or None,
            retain_session=self.retain_session,
            disable=False,
        )


def env_entries(env: dict[str, str]) -> list[str]:
    """``NAME=VALUE`` entries of a mapping, each name and value checked first.

    Checked before joining: a name ``A=B`` would otherwise become variable
    ``A`` with a value that starts ``B=``.
    """
    entries = []
    for name, value in env.items():
        check_env_name(name)
        if not isinstance(value, str):
            raise ParamsError(f"environment variable {q(name)} must have a string value")
        entries.append(f"{name}={value}")
    return entries


def check_params(p: Params) -> None:
    """The value checks of ``Params`` (``ParamsError``), before anything is spawned.

    Types first (a caller may pass anything), then ranges: the same limits
    ``Setup.validate`` applies to a decoded record.
    """
    check_command(p.path, p.dir, p.args, p.env, p.dir_fallback)
    check_id("uid", p.uid)
    check_id("gid", p.gid)
    if p.hostname:  # "" leaves the name the new UTS namespace copied from the host
        hostname_bytes(p.hostname)
    if p.adopt_wait_delay is not None:  # None: the 5 s default; 0: no wait
        check_wait("adopt_wait_delay", p.adopt_wait_delay, negative_ok=True)  # Go: < 0 is 0
    for name in ("parent_perm", "seccomp_flags", "seccomp_presets"):
        value = getattr(p, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ParamsError(f"{name} must be a non-negative integer")
    if not isinstance(p.message_prefix, str) or len(p.message_prefix) > 64:
        raise ParamsError("message_prefix must be a string of at most 64 characters")
    if not p.message_prefix.isprintable():
        raise ParamsError("message_prefix must be printable")
    if p.parent_perm > 0o7777:
        raise ParamsError(f"parent_perm {p.parent_perm:#o} is not a mode (0 to 0o7777)")
    if not isinstance(p.caps, int) or isinstance(p.caps, bool) or not 0 <= p.caps < CAPS_LIMIT:
        raise ParamsError("caps must be a capability bit mask (0 to 2**64 - 1)")
    for name in ("as_pid_1", "disable_userns", "assert_userns_disabled", "visible_init"):
        if not isinstance(getattr(p, name), bool):
            raise ParamsError(f"{name} must be True or False")
    for program in p.seccomp_programs:
        check_seccomp_program(program)
    for name in CALLER_FDS:
        fd = getattr(p, name)
        if not isinstance(fd, int) or isinstance(fd, bool) or not -1 <= fd < 1 << 31:
            raise ParamsError(f"{name} must be an fd number (-1: none)")
    if p.userns_block_fd != -1 and p.disable_userns:
        raise ParamsError("userns_block_fd and disable_userns cannot be combined")
    if p.userns_fd != -1 and (p.userns_block_fd != -1 or p.disable_userns):
        raise ParamsError(
            "userns_fd (an existing user namespace) cannot be combined with"
            " userns_block_fd or disable_userns"
        )


def working_dirs(dir: str | Sequence[str] | None, env: list[str]) -> tuple[str, list[str]]:
    """``Params(dir=...)`` as the record's ``dir`` and ``dir_fallback``.

    A path is the one working directory: failing to enter it fails the
    container (exit 125), as before.  A list is tried in order, the last
    failure being the error.  ``None`` is what ``bwrap`` users expect: the
    caller's current directory when the container has it at the same path,
    else the program's ``HOME`` (from ``env``), else ``/``.  Init does the
    trying (only it can see the container), after the pivot.
    """
    if dir is None:
        dirs: list[str] = []
        try:
            cwd = os.getcwd()
        except OSError:  # deleted, or unreachable: nothing to try
            cwd = ""
        home = ""
        for entry in env:  # the last HOME= wins, as in the dict init builds
            if entry.startswith("HOME="):
                home = entry[5:]
        for candidate in (cwd, home, "/"):
            if _usable_dir(candidate) and candidate not in dirs:
                dirs.append(candidate)
    elif isinstance(dir, str):
        dirs = [dir]
    elif isinstance(dir, (list, tuple)) and dir:
        dirs = list(dir)
    else:
        raise ParamsError("dir must be a path, a non-empty list of paths, or None")
    for d in dirs:
        if not isinstance(d, str) or not d.startswith("/"):
            raise OpError(f"working directory {q(str(d))} is not absolute")
    return dirs[0], dirs[1:]


def _usable_dir(path: str) -> bool:
    """Worth trying as a default working directory: absolute, and one the record can carry."""
    if not path.startswith("/") or "\0" in path or _size(path) >= PATH_MAX:
        return False
    try:
        path.encode()  # a non-UTF-8 name (surrogates) cannot travel as msgpack str
    except UnicodeEncodeError:
        return False
    return True


__all__ = ["Params", "env_entries", "overflow_id", "working_dirs"]
