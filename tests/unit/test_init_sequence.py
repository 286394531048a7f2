"""Init's steps on the recording fake kernel (Go ``TestInitEntrypoint``).

Each step of reference §4 is first shown whole, as the exact ordered list of
calls it makes, and then broken once per call: the injected error must end
init with that step's own fatal message, and nothing after it may run.  The
PID-1 loop has its own file, test_init_pid1.py.
The last tests run what init does after the first pivot in a fresh
interpreter behind ``LateImportBlocker``, to prove it imports nothing late.
"""

from __future__ import annotations

import ast
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hakurei.errors import EXIT_SETUP, MountError, PathError
from hakurei.init import init as init_mod
from hakurei.init.init import Fatal, Init, LateImportBlocker
from hakurei.ops import Link, Mkdir, Op, Proc, Tmpfs
from hakurei.spawn import init_argv
from hakurei.wire import Setup

import records
from fakekernel import Call, Exited, FakeKernel, call, exits, oserror
from fakekernel import failing as with_clean_up

EPERM, EINVAL, ENOSYS = errno.EPERM, errno.EINVAL, errno.ENOSYS
ENOTRECOVERABLE, ESRCH = errno.ENOTRECOVERABLE, errno.ESRCH
BPF = b"\x06\0\0\0\0\0\xff\x7f" * 2
#: the prctl methods that go through libc, whose OSError names "prctl"
PRCTL_LIBC = ("set_ptracer", "ambient_clear_all", "ambient_raise")


def make_setup(ops: list[Op] | None = None, **fields: Any) -> Setup:
    return records.make_setup(ops or [], **{"bpf": BPF, "nrules": 2, **fields})


def failing(c: Call, err: int) -> Call:
    """``c``, failing with the exception the real Kernel method raises for ``err``."""
    exc: OSError
    if c.name == "mount":
        source, target, fstype, flags, *data = c.args
        exc = MountError(source, target, fstype, flags, data[0] if data else "", err)
    elif c.name == "mount_here":
        # mount(2) on the directory fd itself: the target it knows is "."
        _fd, source, fstype, flags, data = c.args
        exc = MountError(source, ".", fstype, flags, data, err)
    elif c.name == "mkdir_in":
        exc = PathError("create directory", c.args[1], err)
    elif c.name == "pivot_root":
        exc = PathError("pivot_root", c.args[0], err)
    elif c.name == "umount2":
        exc = PathError("unmount", c.args[0], err)
    elif c.name in PRCTL_LIBC:
        exc = oserror(err, "prctl")
    elif c.name in ("capset", "seccomp_load", "sethostname"):
        exc = oserror(err, c.name)
    elif c.args and isinstance(c.args[0], str):
        exc = oserror(err, c.args[0])
    else:
        exc = oserror(err)
    return call(c.name, *c.args, err=exc)


def broken_at(calls: list[Call], i: int, err: int) -> list[Call]:
    """The first ``i`` calls, then call ``i`` failing, then only the ``close`` of every
    fd still open (an op's clean-up): any other later call fails the fake."""
    exc = failing(calls[i], err).err
    assert exc is not None
    return with_clean_up(calls, i, exc)


def unblock() -> None:
    while LateImportBlocker in sys.meta_path:
        sys.meta_path.remove(LateImportBlocker)


@pytest.fixture(autouse=True)
def no_blocker_left() -> Iterator[None]:
    """filesystem() installs the blocker for good; a test must never leak it."""
    assert LateImportBlocker not in sys.meta_path
    yield
    unblock()


# -- 2. filesystem -------------------------------------------------------------

FD = 7
FS_OPS: list[Op] = [Mkdir("/etc", 0o700), Tmpfs("/tmp", 0, 0o1777)]


def fs_calls() -> list[Call]:
    return [
        call("mount", "", "/", "", 0x8C000, ""),
        call("mount", "rootfs", "/proc/self/fd", "tmpfs", 6, ""),
        call("chdir", "/proc/self/fd"),
        call("mkdir", "sysroot", 0o755),
        call("mount", "sysroot", "sysroot", "", 0xD000),
        call("mkdir", "host", 0o755),
        call("pivot_root", "/proc/self/fd", "host"),
        call("chdir", "/"),
        # apply: Mkdir, then Tmpfs, each reaching its destination inside the root
        call("mkdir_in", "/sysroot", "/etc", 0o700, 0o700, ret=10),
        call("close", 10),
        call("mkdir_in", "/sysroot", "/tmp", 0o755, 0o755, ret=11),
        call("mount_here", 11, "ephemeral", "tmpfs", 6, "mode=01777"),
        call("close", 11),
        call("mount", "host", "host", "", 0x4C000),
        call("umount2", "host", 2),
        call("open", "/", os.O_DIRECTORY | os.O_RDONLY, ret=FD),
        call("chdir", "/sysroot"),
        call("pivot_root", ".", "."),
        call("fchdir", FD),
        call("umount2", ".", 2),
        call("chdir", "/"),
        call("close", FD),
    ]


class BlockerWatch(FakeKernel):
    """Also records, per call, whether late imports were already blocked."""

    def __init__(self, calls: list[Call]) -> None:
        super().__init__(calls)
        self.blocked: list[bool] = []

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        self.blocked.append(LateImportBlocker in sys.meta_path)
        return super()._call(name, args)


def run_filesystem(setup: Setup, calls: list[Call]) -> BlockerWatch:
    k = BlockerWatch(calls)
    try:
        Init(k, setup, []).filesystem()
    finally:
        # Before pytest or the assertions import anything.
        unblock()
    k.done()
    return k


def test_filesystem_whole_sequence() -> None:
    k = run_filesystem(make_setup(FS_OPS), fs_calls())
    # The blocker goes in after "mkdir host", right before the first pivot.
    pivot = 6
    assert k.blocked == [False] * pivot + [True] * (len(fs_calls()) - pivot)


def test_filesystem_verbose_names_each_op(capfd: pytest.CaptureFixture[str]) -> None:
    run_filesystem(make_setup(FS_OPS, verbose=True), fs_calls())
    assert capfd.readouterr().err == (
        'init: creating directory "/etc" perm -rwx------\ninit: mounting tmpfs on "/tmp" size 0\n'
    )


FS_STEPS = [
    (0, EPERM, "cannot make / rslave: operation not permitted"),
    (1, ENOTRECOVERABLE, "cannot mount intermediate root: state not recoverable"),
    (2, ENOTRECOVERABLE, "cannot enter intermediate host path: state not recoverable"),
    (3, EPERM, "cannot create sysroot: operation not permitted"),
    (4, EPERM, "cannot bind sysroot: operation not permitted"),
    (5, EPERM, "cannot create host: operation not permitted"),
    (6, EPERM, "cannot pivot into intermediate root: operation not permitted"),
    (7, EPERM, "cannot enter intermediate root: operation not permitted"),
    # A known error type is its own message (reference §10.3).
    (8, EPERM, "cannot create directory /etc: operation not permitted"),
    (
        9,
        errno.EBADF,
        'cannot apply op at index 0 (mkdir directory "/etc" perm -rwx------): bad file descriptor',
    ),
    (10, EPERM, "cannot create directory /tmp: operation not permitted"),
    (11, ENOTRECOVERABLE, "cannot mount tmpfs on /tmp: state not recoverable"),
    (
        12,
        errno.EBADF,
        'cannot apply op at index 1 (tmpfs tmpfs on "/tmp" size 0): bad file descriptor',
    ),
    (13, EPERM, "cannot make host root rprivate: operation not permitted"),
    (14, EINVAL, "cannot unmount host root: invalid argument"),
    (15, EPERM, "cannot open intermediate root: operation not permitted"),
    (16, ENOTRECOVERABLE, "cannot enter sysroot: state not recoverable"),
    (17, EPERM, "cannot pivot into sysroot: operation not permitted"),
    (18, EPERM, "cannot re-enter intermediate root: operation not permitted"),
    (19, EINVAL, "cannot unmount intermediate root: invalid argument"),
    (20, EPERM, "cannot enter root: operation not permitted"),
    (21, errno.EBADF, "cannot close intermediate root: bad file descriptor"),
]


def test_filesystem_steps_cover_every_call() -> None:
    assert [i for i, _, _ in FS_STEPS] == list(range(len(fs_calls())))


@pytest.mark.parametrize(("i", "err", "message"), FS_STEPS, ids=[m for _, _, m in FS_STEPS])
def test_filesystem_step_failure(i: int, err: int, message: str) -> None:
    with pytest.raises(Fatal) as e:
        run_filesystem(make_setup(FS_OPS), broken_at(fs_calls(), i, err))
    assert str(e.value) == message
    assert e.value.status == EXIT_SETUP


def test_early_error_of_a_known_type_is_its_own_message() -> None:
    op = Link("/etc/mtab", "/", dereference=True)
    calls = [
        call("mount", "", "/", "", 0x8C000, ""),
        call("readlink", "/", err=PathError("readlink", "/", ENOTRECOVERABLE)),
    ]
    with pytest.raises(Fatal, match=r"^cannot readlink /: state not recoverable$"):
        run_filesystem(make_setup([op]), calls)


def test_early_error_of_another_type_names_the_op() -> None:
    ops: list[Op] = [Mkdir("/etc"), Link("/etc/mtab", "/proc/mounts", dereference=True)]
    calls = [
        call("mount", "", "/", "", 0x8C000, ""),
        call("readlink", "/proc/mounts", err=oserror(EPERM)),
    ]
    with pytest.raises(Fatal) as e:
        run_filesystem(make_setup(ops), calls)
    assert str(e.value) == (
        'cannot prepare op at index 1 (symlink symlink on "/etc/mtab" linkname "/proc/mounts"): '
        "operation not permitted"
    )


def test_apply_mount_error_is_its_own_message() -> None:
    calls = [
        *fs_calls()[:8],
        call("mkdir_in", "/sysroot", "/proc", 0o755, 0o755, ret=10),
        call(
            "mount_here",
            10,
            "proc",
            "proc",
            0xE,
            "",
            err=MountError("proc", ".", "proc", 0xE, "", ENOTRECOVERABLE),
        ),
        call("close", 10),
    ]
    with pytest.raises(Fatal, match=r"^cannot mount proc on /proc: state not recoverable$"):
        run_filesystem(make_setup([Proc("/proc")]), calls)


def test_a_missing_system_call_says_which_kernel_hakurei_needs() -> None:
    """openat2 and friends answer ENOSYS on old kernels: the line says what to do."""
    calls = [
        *fs_calls()[:8],
        call(
            "mkdir_in",
            "/sysroot",
            "/proc",
            0o755,
            0o755,
            err=PathError("resolve", "/proc", errno.ENOSYS),
        ),
    ]
    with pytest.raises(Fatal) as e:
        run_filesystem(make_setup([Proc("/proc")]), calls)
    assert str(e.value) == (
        "cannot resolve /proc: function not implemented (hakurei needs Linux 5.12 or later)"
    )


def test_apply_error_without_errno_names_the_op() -> None:
    """A bug in an op (not an OSError) still ends init with one line naming the op."""

    class Broken(Mkdir):
        def apply(self, st: object) -> None:
            raise ValueError("no way")

    calls = fs_calls()[:8]
    with pytest.raises(Fatal) as e:
        run_filesystem(make_setup([Broken("/x")]), calls)
    assert (
        str(e.value) == 'cannot apply op at index 0 (mkdir directory "/x" perm -rwxr-xr-x): no way'
    )


# -- 3. privileges -----------------------------------------------------------------


def priv_calls(last_cap: int, privileged: bool, scope: int = 3) -> list[Call]:
    calls = [call("ambient_clear_all")]
    calls += [
        call("capbset_drop", cap) for cap in range(last_cap + 1) if not (privileged and cap == 21)
    ]
    if privileged:
        full = (1 << (last_cap + 1)) - 1
        calls += [
            call("capset", full, full, 0x200000),
            call("ambient_raise", 21),
            call("capset", 0, 0x200000, 0x200000),
        ]
    else:
        calls.append(call("capset", 0, 0, 0))
    return [
        *calls,
        call("set_no_new_privs"),
        call("landlock_abi", ret=6),
        call("landlock_scope", scope),
        call("seccomp_load", BPF),
    ]


def run_privileges(setup: Setup, last_cap: int, calls: list[Call]) -> None:
    k = FakeKernel(calls)
    Init(k, setup, []).privileges(last_cap)
    k.done()


def test_privileges_unprivileged_low_last_cap() -> None:
    run_privileges(
        make_setup(),
        4,
        [
            call("ambient_clear_all"),
            call("capbset_drop", 0),
            call("capbset_drop", 1),
            call("capbset_drop", 2),
            call("capbset_drop", 3),
            call("capbset_drop", 4),
            call("capset", 0, 0, 0),
            call("set_no_new_privs"),
            call("landlock_abi", ret=6),
            call("landlock_scope", 3),
            call("seccomp_load", BPF),
        ],
    )


def test_privileges_privileged_keeps_cap_sys_admin() -> None:
    calls = priv_calls(40, privileged=True)
    drops = [c.args[0] for c in calls if c.name == "capbset_drop"]
    assert drops == [*range(21), *range(22, 41)]
    assert call("capset", (1 << 41) - 1, (1 << 41) - 1, 1 << 21).args in [c.args for c in calls]
    run_privileges(make_setup(privileged=True), 40, calls)


def test_privileges_unprivileged_drops_every_cap() -> None:
    calls = priv_calls(40, privileged=False)
    assert [c.args[0] for c in calls if c.name == "capbset_drop"] == list(range(41))
    run_privileges(make_setup(), 40, calls)


def test_privileges_verbose(capfd: pytest.CaptureFixture[str]) -> None:
    run_privileges(make_setup(verbose=True, nrules=73), 4, priv_calls(4, False))
    assert capfd.readouterr().err == "init: landlock abi version 6\ninit: 73 filter rules loaded\n"


def test_privileges_without_seccomp(capfd: pytest.CaptureFixture[str]) -> None:
    run_privileges(make_setup(bpf=None, verbose=True), 4, priv_calls(4, False)[:-1])
    assert capfd.readouterr().err.endswith("init: syscall filter not configured\n")


def test_host_abstract_scopes_signals_only() -> None:
    run_privileges(make_setup(host_abstract=True), 4, priv_calls(4, False, scope=2))


@pytest.mark.parametrize("abi", [5, 1])
def test_old_landlock_is_fatal(abi: int) -> None:
    calls = priv_calls(4, False)
    calls = [*calls[:-3], call("landlock_abi", ret=abi)]
    with pytest.raises(Fatal) as e:
        run_privileges(make_setup(), 4, calls)
    assert str(e.value) == "kernel version too old for LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET"


def test_missing_landlock_is_fatal() -> None:
    calls = priv_calls(4, False)
    calls = [*calls[:-3], call("landlock_abi", err=oserror(ENOSYS, "landlock_create_ruleset"))]
    with pytest.raises(Fatal) as e:
        run_privileges(make_setup(), 4, calls)
    assert str(e.value) == (
        "cannot get landlock ABI: landlock_create_ruleset: function not implemented"
    )


@pytest.mark.parametrize("abi", [5, None])
def test_host_abstract_tolerates_old_or_missing_landlock(abi: int | None) -> None:
    """Without the abstract-socket scope there is nothing old kernels cannot do."""
    calls = priv_calls(4, False, scope=2)
    if abi is None:
        calls[-3] = call("landlock_abi", err=oserror(ENOSYS, "landlock_create_ruleset"))
    else:
        calls[-3] = call("landlock_abi", ret=abi)
    del calls[-2]  # no landlock_scope; seccomp still loads
    run_privileges(make_setup(host_abstract=True), 4, calls)


PRIV_STEPS = [
    # (privileged, index into priv_calls(40, privileged), errno, message)
    (False, 0, EPERM, "cannot clear the ambient capability set: operation not permitted"),
    (False, 1, EPERM, "cannot drop capability from bounding set: operation not permitted"),
    (False, 38, EINVAL, "cannot drop capability from bounding set: invalid argument"),
    (False, 42, EPERM, "cannot capset: operation not permitted"),
    (True, 41, EPERM, "cannot capset: operation not permitted"),
    (True, 42, EPERM, "cannot raise CAP_SYS_ADMIN: operation not permitted"),
    (True, 43, EPERM, "cannot capset: operation not permitted"),
    (False, 43, EINVAL, "cannot set no_new_privs: invalid argument"),
    (False, 45, ENOSYS, "cannot enforce landlock ruleset: function not implemented"),
    (True, 47, EINVAL, "cannot load syscall filter: invalid argument"),
]


@pytest.mark.parametrize(
    ("privileged", "i", "err", "message"),
    PRIV_STEPS,
    ids=[f"{'priv' if p else 'nopriv'}-{i}" for p, i, _, _ in PRIV_STEPS],
)
def test_privileges_step_failure(privileged: bool, i: int, err: int, message: str) -> None:
    calls = priv_calls(40, privileged)
    with pytest.raises(Fatal) as e:
        run_privileges(make_setup(privileged=privileged), 40, broken_at(calls, i, err))
    assert str(e.value) == message


def test_privilege_steps_cover_every_call() -> None:
    """Every kind of call is broken once; capset and ambient_raise at each of their uses."""
    broken = [(p, priv_calls(40, p)[i]) for p, i, _, _ in PRIV_STEPS]
    assert {c.name for _, c in broken} == {c.name for c in priv_calls(40, True)} - {
        "landlock_abi"  # its own tests: old or missing landlock
    }
    assert [c.args for p, c in broken if p and c.name in ("capset", "ambient_raise")] == [
        ((1 << 41) - 1, (1 << 41) - 1, 1 << 21),
        (21,),
        (0, 1 << 21, 1 << 21),
    ]


# -- 1. identity --------------------------------------------------------------------

IDENTITY = [
    call("set_pdeathsig", 9),
    call("set_name", "init"),
    call("set_ptracer", 0),
    call("set_dumpable", False),
    call("sethostname", "hakurei-test"),
    call("loopback_up"),
]


@pytest.fixture
def alive() -> Iterator[tuple[int, int]]:
    """The shim's liveness pipe: init gets the read end, the shim holds the write end."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as e:
        return e.errno == errno.EBADF
    return False


def run_identity(setup: Setup, calls: list[Call], alive_fd: int) -> None:
    k = FakeKernel(calls)
    Init(k, setup, []).identity(alive_fd)
    k.done()


def test_identity_whole_sequence(alive: tuple[int, int]) -> None:
    run_identity(make_setup(hostname="hakurei-test"), IDENTITY, alive[0])
    assert closed(alive[0])


def test_identity_keeps_the_host_name_without_hostname(alive: tuple[int, int]) -> None:
    run_identity(make_setup(), [*IDENTITY[:-2], IDENTITY[-1]], alive[0])


def test_identity_leaves_the_host_network_alone(alive: tuple[int, int]) -> None:
    run_identity(make_setup(hostname="hakurei-test", host_net=True), IDENTITY[:-1], alive[0])


def test_identity_exits_when_the_shim_is_already_gone(alive: tuple[int, int]) -> None:
    """EOF on the liveness pipe: pdeathsig was armed too late to ever fire."""
    os.close(alive[1])
    calls = [IDENTITY[0], exits(EXIT_SETUP)]
    with pytest.raises(Exited) as e:
        run_identity(make_setup(hostname="hakurei-test"), calls, alive[0])
    assert e.value.status == EXIT_SETUP


def test_identity_pdeathsig_failure_stops_everything(alive: tuple[int, int]) -> None:
    with pytest.raises(Fatal) as e:
        run_identity(make_setup(), [failing(IDENTITY[0], EINVAL)], alive[0])
    assert str(e.value) == "cannot set the parent-death signal: invalid argument"


@pytest.mark.parametrize("verbose", [False, True])
def test_identity_yama_failure_is_not_fatal(
    alive: tuple[int, int], capfd: pytest.CaptureFixture[str], verbose: bool
) -> None:
    calls = list(IDENTITY)
    calls[2] = failing(calls[2], EINVAL)
    run_identity(make_setup(hostname="hakurei-test", verbose=verbose), calls, alive[0])
    expected = "init: cannot enable ptrace protection via Yama LSM: prctl: invalid argument\n"
    assert capfd.readouterr().err == (expected if verbose else "")


@pytest.mark.parametrize(
    ("i", "message"),
    [
        (1, "cannot set the process name: operation not permitted"),
        (3, "cannot set SUID_DUMP_DISABLE: operation not permitted"),
        (4, "cannot set hostname: operation not permitted"),
        (5, "cannot bring up the loopback interface: operation not permitted"),
    ],
)
def test_identity_step_failure(alive: tuple[int, int], i: int, message: str) -> None:
    with pytest.raises(Fatal) as e:
        run_identity(make_setup(hostname="hakurei-test"), broken_at(IDENTITY, i, EPERM), alive[0])
    assert str(e.value) == message


# -- no late imports -------------------------------------------------------------------------


def step_messages() -> list[str]:
    """Every ``self.step("<message>", ...)`` in the installed init module."""
    with open(init_mod.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "step"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(node.args[0].value)
    return found


#: Ops for the late-import run, and the calls their apply makes (after the pivot).
LATE_OPS = (
    "Ops().mkdir('/etc', 0o700).tmpfs('/tmp', 0, 0o1777).proc('/proc')"
    ".link('/etc/mtab', '/proc/mounts')"
)
LATE_APPLY = [
    call("mkdir_in", "/sysroot", "/etc", 0o700, 0o700, ret=10),
    call("close", 10),
    call("mkdir_in", "/sysroot", "/tmp", 0o755, 0o755, ret=11),
    call("mount_here", 11, "ephemeral", "tmpfs", 6, "mode=01777"),
    call("close", 11),
    call("mkdir_in", "/sysroot", "/proc", 0o755, 0o755, ret=12),
    call("mount_here", 12, "proc", "proc", 0xE, ""),
    call("close", 12),
    call("symlink_in", "/sysroot", "/proc/mounts", "/etc/mtab", 0o755),
]


def late_calls() -> list[tuple[str, tuple[Any, ...], Any]]:
    """filesystem() then privileges(4) for LATE_OPS, as plain literals."""
    calls = fs_calls()
    calls[8:13] = LATE_APPLY
    calls += priv_calls(4, privileged=False)
    return [(c.name, c.args, c.ret) for c in calls]


#: Runs in ``python -I -S`` set up exactly as the shim entry (``init_argv``),
#: with the ``__NAME__`` placeholders substituted.  Everything it needs is built
#: before ``filesystem()`` puts the blocker in; nothing it builds may load a
#: module the entry did not, or it would hide a late import.
LATE = r"""
import sys
sys.path[0:0] = sys.argv[1:]
from hakurei.init.shim import main
from hakurei.ops import REGISTRY
REGISTRY.values()  # the op modules the shim's decoder loads for a record naming every op
entry_modules = set(sys.modules)

import errno
from hakurei import errors as E
from hakurei.init.init import Fatal, Init, LateImportBlocker, say
from hakurei.init.kernel import Kernel
from hakurei.ops import REGISTRY, Ops
from hakurei.wire import Setup


class Replay(Kernel):
    # tests/fakekernel.py in miniature: it imports inspect and typing.
    def __init__(self, calls):
        self.calls = calls
        self.pos = 0

    def __getattribute__(self, name):
        if name.startswith("_") or name in ("calls", "pos"):
            return object.__getattribute__(self, name)

        def replay(*args):
            want = self.calls[self.pos]
            if (name, args) != want[:2]:
                raise AssertionError(f"call {self.pos}: got {name}{args!r}, want {want!r}")
            self.pos += 1
            return want[2]

        return replay


ops = (
    Ops()
    .bind("/usr", "/usr", 0)
    .proc("/proc")
    .dev("/dev", True)
    .tmpfs("/tmp", 1 << 20, 0o1777)
    .link("/etc/mtab", "/proc/mounts")
    .place("/etc/hostname", b"h")
    .remount("/", 1)
    .overlay("/.hakurei", "/upper", "/work", "/lower0", "/lower1")
    .overlay_ephemeral("/.e", "/lower")
    .overlay_readonly("/.r", "/lower")
    .etc("/etc", "host")
    .root("/var/lib/root", 0)
    .place("/etc/data", b"d", 0o640, True)
    .file("/etc/f", b"f")
    .chmod("/etc/f", 0o600)
    .mqueue("/mq")
    .lock("/etc/f")
)
assert {type(op) for op in ops} == set(REGISTRY.values())
fields = dict(
    path="/bin/true", args=["true"], env=[], dir="/", uid=1, gid=1, host_uid=1, host_gid=1,
    hostname="", parent_perm=0o755, retain_session=False, host_net=False, privileged=False,
    forward_cancel=False, host_abstract=False, adopt_wait_delay=1.0, bpf=__BPF__, nrules=2,
    files=0, parent_pid=1, verbose=True,
)
run = Init(Kernel(), Setup(ops, **fields), [])
kernel = Replay(__CALLS__)
sequence = Init(kernel, Setup(__OPS__, **fields), [])


class OldLandlock(Kernel):
    def __init__(self, abi):
        self.abi = abi

    def landlock_abi(self):
        if isinstance(self.abi, BaseException):
            raise self.abi
        return self.abi


def raiser(exc):
    def fn(*args):
        raise exc
    return fn


errors = [
    OSError(errno.ENOENT, "x", "/nonexistent"),
    PermissionError(errno.EPERM, "x"),
    OSError("no errno"),
    ValueError("bug"),
    E.PathError("readlink", "/", errno.ENOTRECOVERABLE),
    E.MountError("/a", "/b", "", 0x1000, "", errno.EPERM),
    E.MountError("/a", "/b", "", 0x1020, "", errno.EPERM),
    E.MountError("proc", "/b", "proc", 0, "", errno.EPERM),
    E.MountError("", "/b", "", 0, "", errno.EPERM),
    E.AbsoluteError("rel"),
    E.OpRepeatError("autoetc"),
    E.OpStateError("overlay"),
    E.TmpfsSizeError(-1),
    E.OverlayArgumentError("lowerdir is empty"),
    E.MountinfoError("parse", 'numeric field "meow" invalid syntax', 57005),
    E.ProgramError("/bin/nope", errno.ENOENT),
    E.SetupError("invalid setup descriptor"),
    E.StartError("start container init", OSError(errno.EPERM, "x")),
    E.OpError("bad op"),
]
landlock_runs = [
    Init(OldLandlock(abi), Setup([], **fields), [])
    for abi in (5, OSError(errno.ENOSYS, "x", "landlock_create_ruleset"))
]
lines = []
built_modules = set(sys.modules)

sequence.filesystem()
assert sys.meta_path[0] is LateImportBlocker
sequence.privileges(4)
assert kernel.pos == len(kernel.calls)
for i, op in enumerate(ops):
    lines.append(f"{op.PREFIX} {op}")
    lines.append(repr(op))
    lines.append(str(run.op_error("apply", i, PermissionError(errno.EPERM, "x"))))
    lines.append(str(run.op_error("prepare", i, E.OpStateError(op.TAG))))
for e in errors:
    lines.append(E.describe(e))
for status in (0x2A00, 0x4E, 0x137F):
    lines.append(str(run.program_status(status)))
for what in __MESSAGES__:
    for exc in (OSError(errno.EPERM, "x", "/p"), OSError("no errno")):
        try:
            run.step(what, raiser(exc))
        except Fatal as f:
            lines.append(str(f))
for landlock_run in landlock_runs:
    try:
        landlock_run.landlock()
    except Fatal as f:
        lines.append(str(f))
say("hakurei: init: \udcff")
try:
    import json
except ImportError as e:
    lines.append(f"blocked: {e}")
sys.meta_path.remove(LateImportBlocker)
lines.append(f"extra modules: {sorted(built_modules - entry_modules)}")
print("\n".join(lines))
"""


def run_late(code: str) -> subprocess.CompletedProcess[str]:
    argv = init_argv()
    assert argv[1:4] == ["-I", "-S", "-c"]
    return subprocess.run(
        [*argv[:4], code, *argv[5:]],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_nothing_after_the_first_pivot_imports() -> None:
    messages = step_messages()
    assert "cannot pivot into intermediate root" in messages
    assert "cannot load syscall filter" in messages
    assert len(messages) >= 25
    code = LATE
    for name, value in [
        ("__CALLS__", repr(late_calls())),
        ("__OPS__", LATE_OPS),
        ("__BPF__", repr(BPF)),
        ("__MESSAGES__", repr(messages)),
    ]:
        code = code.replace(name, value)
    r = run_late(code)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    # The harness itself loaded only what the real entry had loaded.
    assert out[-1] == "extra modules: []"
    assert out[-2] == "blocked: late import of json after the host filesystem was detached"
    assert 'mounting tmpfs on "/tmp" size 1048576' in out
    assert (
        'cannot apply op at index 3 (tmpfs tmpfs on "/tmp" size 1048576): operation not permitted'
        in out
    )
    assert "cannot readlink /: state not recoverable" in out
    assert "cannot mount proc on /b: operation not permitted" in out
    assert "/nonexistent: no such file or directory" in out
    for what in messages:
        assert f"{what}: operation not permitted" in out
        assert f"{what}: no errno" in out
    assert "kernel version too old for LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET" in out
    assert "cannot get landlock ABI: landlock_create_ruleset: function not implemented" in out
    assert [line for line in out if line in ("42", "206", "255")] == ["42", "206", "255"]
    assert r.stderr.splitlines() == [
        'init: creating directory "/etc" perm -rwx------',
        'init: mounting tmpfs on "/tmp" size 0',
        'init: mounting proc on "/proc"',
        'init: creating symlink on "/etc/mtab" linkname "/proc/mounts"',
        "init: landlock abi version 6",
        "init: 2 filter rules loaded",
        "init: initial process exited with code 42",
        "init: initial process exited with signal 78",
        "init: initial process exited with status 0x137f",
        "hakurei: init: ?",
    ]


def test_the_blocker_blocks_in_a_fresh_interpreter() -> None:
    code = (
        "import sys;sys.path[0:0]=sys.argv[1:];from hakurei.init.shim import main\n"
        "from hakurei.init.init import LateImportBlocker\n"
        "assert 'json' not in sys.modules\n"
        "sys.meta_path.insert(0, LateImportBlocker)\n"
        "import json\n"
    )
    r = run_late(code)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (
        "ImportError: late import of json after the host filesystem was detached"
    )
