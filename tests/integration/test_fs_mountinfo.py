"""The container's /proc/self/mountinfo, entry for entry (reference §11.1, §7).

Each case is the Go ``TestContainer`` harness: the base binds, the case's
own ops, then a read-only tmpfs, /tmp, a placed /etc/hostname, /proc and a
second placed file.  The expected list is written from the spec for the ops
passed (host binds take their fstype and source from the host mount that
holds the source), never copied from what the code prints.  Mount point,
fstype, source and VFS options (a trailing relatime/noatime ignored) must
match, in order, with the same count; some entries also name strings their
fs options must contain.

Like Go's matrix, each case also runs as its own uid/gid pair, under its own
hostname (read back from uname and from the placed /etc/hostname), and some
under host_net, retain_session, seccomp off, custom rules and multiarch; one
probe per case (a single container) reports what each of those changes, so a
parameter that is dropped on the way to the kernel fails the case.
"""

from __future__ import annotations

import errno
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

import pytest

from hakurei.ops import Bind, Link, Ops
from hakurei.ops._mountinfo import Entry, parse
from hakurei.seccomp import ALLOW_MULTIARCH, DENY_DEVEL, EXT, STRICT, Rule
from hakurei.std import MS_RDONLY

from conftest import PY, base_ops, host_mount_of, host_mounts, mountinfo, ok, run, vfs, vfs_with

Row = tuple[str, str, str, str]  # mount point, fstype, source, vfs options


class Want:
    """One expected entry; ``fs`` lists strings its fs options must contain."""

    def __init__(self, target: str, fstype: str, source: str, opts: str, *fs: str) -> None:
        self.row: Row = (target, fstype, source, opts)
        self.fs = fs


def host_bind(source: str, target: str, opts: str) -> Want:
    """A bind of a host path: fstype and source are those of the host mount holding it."""
    real = os.path.realpath(source)
    below = [e.target for e in host_mounts() if e.target.startswith(real.rstrip("/") + "/")]
    # A recursive bind would bring these along; no case here binds such a source.
    assert not below, f"{source} has host submounts {below}"
    m = host_mount_of(real)
    return Want(target, m.fstype, m.source, vfs_with(m.vfs_options, *opts.split(",")))


def root(read_only: bool) -> Want:
    """The container root: the sysroot directory of the intermediate tmpfs (§4.5 step 9)."""
    return Want("/", "tmpfs", "rootfs", "ro,nosuid,nodev" if read_only else "rw,nosuid,nodev")


def base_expected() -> list[Want]:
    """What base_ops() mounts: its binds, read-only and nodev (links mount nothing)."""
    out = []
    for op in base_ops():
        if isinstance(op, Bind):
            out.append(host_bind(op.source, op.target, "ro,nosuid,nodev"))
        else:
            assert isinstance(op, Link), op
    return out


def harness_ops(hostname: str = "test-case") -> Ops:
    """What the Go harness appends after the case's ops (/etc/hostname holds exactly the name)."""
    return (
        Ops()
        .readonly("/etc/hakurei/readonly", 0o755)
        .tmpfs("/tmp", 0, 0o1777)
        .place("/etc/hostname", hostname.encode())
        .proc("/proc")
        .place("/etc/hakurei/want-mnt", b"expected\n")
    )


HARNESS = [
    Want("/etc/hakurei/readonly", "tmpfs", "readonly", "ro,nosuid,nodev"),
    Want("/tmp", "tmpfs", "ephemeral", "rw,nosuid,nodev"),
    Want("/etc/hostname", "tmpfs", "rootfs", "ro,nosuid,nodev"),
    Want("/proc", "proc", "proc", "rw,nosuid,nodev,noexec"),
    Want("/etc/hakurei/want-mnt", "tmpfs", "rootfs", "ro,nosuid,nodev"),
]


def dev_expected(mqueue: bool) -> list[Want]:
    """§7.3: read-only devtmpfs-named tmpfs, six nosuid device binds, devpts, mqueue, shm."""
    devices = [
        host_bind(f"/dev/{name}", f"/dev/{name}", "nosuid")
        for name in ("null", "zero", "full", "random", "urandom", "tty")
    ]
    pts = Want("/dev/pts", "devpts", "devpts", "rw,nosuid,noexec", "mode=620", "ptmxmode=666")
    mq = [Want("/dev/mqueue", "mqueue", "mqueue", "rw,nosuid,nodev,noexec")] if mqueue else []
    return [
        Want("/dev", "tmpfs", "devtmpfs", "ro,nosuid,nodev"),
        *devices,
        pts,
        *mq,
        Want("/dev/shm", "tmpfs", "tmpfs", "rw,nosuid,nodev"),
    ]


def layers(tmp: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        (tmp / name).mkdir()
        paths.append(str(tmp / name))
    return paths


def lowerdir_is(*lowers: str) -> Callable[[str], bool]:
    """fs options whose lowerdir= lists exactly these host layers, in order.

    The kernel echoes the layer paths as init gave them, seen from the
    intermediate root (``/host/...``); only the host path's tail is ours.
    """

    def check(fs_options: str) -> bool:
        for opt in fs_options.split(","):
            if opt.startswith("lowerdir="):
                got = opt.removeprefix("lowerdir=").split(":")
                return len(got) == len(lowers) and all(
                    g.endswith(want) for g, want in zip(got, lowers, strict=True)
                )
        return False

    return check


Case = Callable[[Path], tuple[Ops, list[Want], list[Callable[[str], bool]]]]


def case_minimal(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    return Ops(), [], []


def case_tmpfs(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    return (
        Ops().tmpfs("/.hakurei", 0, 0o755),
        [Want("/.hakurei", "tmpfs", "ephemeral", "rw,nosuid,nodev")],
        [],
    )


def case_dev(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    return Ops().dev("/dev", mqueue=True), dev_expected(True), []


def case_dev_no_mqueue(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    return Ops().dev("/dev"), dev_expected(False), []


def case_overlay(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    upper, work, a, b = layers(tmp, "upper", "work", "a", "b")
    ops = Ops().overlay("/.hakurei", upper, work, a, b)
    want = Want("/.hakurei", "overlay", "overlay", "rw", "upperdir=", "workdir=", "userxattr")
    return ops, [want], [lowerdir_is(a, b), lambda fs: fs.startswith("rw,")]


def case_overlay_ephemeral(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    (a,) = layers(tmp, "a")
    ops = Ops().overlay_ephemeral("/.hakurei", a)
    want = Want("/.hakurei", "overlay", "overlay", "rw", "upperdir=", "workdir=", "userxattr")
    return ops, [want], [lowerdir_is(a)]


def case_overlay_readonly(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    a, b = layers(tmp, "a", "b")
    ops = Ops().overlay_readonly("/.hakurei", a, b)
    # The mount itself has flags 0 (rw); the overlay superblock is read-only.
    want = Want("/.hakurei", "overlay", "overlay", "rw", "userxattr")
    return (
        ops,
        [want],
        [
            lowerdir_is(a, b),
            lambda fs: fs.startswith("ro,") and "upperdir=" not in fs and "workdir=" not in fs,
        ],
    )


def case_readonly_tmpfs(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    return (
        Ops().readonly("/.hakurei", 0o700),
        [Want("/.hakurei", "tmpfs", "readonly", "ro,nosuid,nodev")],
        [],
    )


def case_place(tmp: Path) -> tuple[Ops, list[Want], list[Callable[[str], bool]]]:
    return (
        Ops().place("/.hakurei/placed", b"data"),
        [Want("/.hakurei/placed", "tmpfs", "rootfs", "ro,nosuid,nodev")],
        [],
    )


#: What the probe reports; each case states all of it (mountinfo aside).
Facts = dict[str, object]

#: Runs in every case, in the container, with the harness's /proc and /etc:
#: one JSON line of facts, then the container's own mountinfo.
PROBE = r"""
import json, os, sys

def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0

def create_in_readonly():
    os.close(os.open("/etc/hakurei/readonly/x", os.O_CREAT | os.O_WRONLY, 0o644))

def modify_ldt():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(154, 0, None, 0) != 0:  # x86_64 modify_ldt(read, NULL, 0)
        raise OSError(ctypes.get_errno(), "modify_ldt")

with open("/etc/hostname") as f:
    etc_hostname = f.read()
with open("/proc/self/status") as f:
    status = dict(line.rstrip("\n").split(":\t", 1) for line in f)
facts = {
    "ids": [os.getuid(), os.getgid()],
    "hostname": os.uname().nodename,
    "etc_hostname": etc_hostname,
    "readonly": errno_of(create_in_readonly),
    "seccomp": status["Seccomp"],
    "no_new_privs": status["NoNewPrivs"],
    "net": os.readlink("/proc/self/ns/net"),
    "session": os.getsid(0),
    "setuid": errno_of(lambda: os.setuid(os.getuid())),
    "modify_ldt": errno_of(modify_ldt) if os.uname().machine == "x86_64" else None,
}
sys.stdout.write(json.dumps(facts) + "\n")
with open("/proc/self/mountinfo") as f:
    sys.stdout.write(f.read())
"""


class Matrix:
    """One Go ``TestContainer`` case: its ops, the container parameters, what it must see.

    ``params`` go to ``run_sync`` beside the per-case uid/gid and hostname;
    ``setuid`` and ``modify_ldt`` are the errnos the filter gives those calls
    (0: allowed), ``session`` the program's session id as seen inside (2: its
    own, since it is PID 2; 0: the caller's, whose leader is outside the pid
    namespace).
    """

    def __init__(
        self,
        case: Case,
        ids: tuple[int, int],
        *,
        read_only: bool = True,
        setuid: int = 0,
        modify_ldt: int = 0,
        session: int = 2,
        **params: object,
    ) -> None:
        self.case = case
        self.ids = ids
        self.read_only = read_only
        self.params = {"seccomp_flags": ALLOW_MULTIARCH, **params}
        self.setuid = setuid
        self.modify_ldt = modify_ldt
        self.session = session

    def expected(self, hostname: str) -> Facts:
        filtered = not self.params.get("seccomp_disable", False)
        host_net = bool(self.params.get("host_net", False))
        return {
            "ids": list(self.ids),
            "hostname": hostname,
            "etc_hostname": hostname,
            "readonly": errno.EROFS,
            "seccomp": "2" if filtered else "0",
            "no_new_privs": "1",
            "net": HOST_NET if host_net else "another net namespace",
            "session": self.session,
            "setuid": self.setuid,
            "modify_ldt": self.modify_ldt if platform.machine() == "x86_64" else None,
        }


HOST_NET = os.readlink("/proc/self/ns/net")
EPERM = errno.EPERM

# Go's cases run with these id pairs and always with ALLOW_MULTIARCH, under
# which modify_ldt is not denied; "no multiarch" shows the difference.
CASES: dict[str, Matrix] = {
    # Go "minimal": PresetStrict (deny-ns + ext: setuid is EPERM), new session, no host net.
    "minimal": Matrix(case_minimal, (1000, 100), seccomp_presets=STRICT, setuid=EPERM),
    # Go "allow": Ext|DenyDevel, RetainSession, HostNet.
    "allow": Matrix(
        case_minimal,
        (1, 31),
        read_only=False,
        seccomp_presets=EXT | DENY_DEVEL,
        retain_session=True,
        host_net=True,
        session=0,
    ),
    # Go "no filter": SeccompDisable.
    "no filter": Matrix(case_minimal, (9, 9), seccomp_disable=True),
    # Go "custom rules": a single rule, setuid -> EPERM, replacing every preset;
    # without multiarch, modify_ldt allowed shows the presets really are gone.
    "custom rules": Matrix(
        case_minimal,
        (1971, 100),
        seccomp_presets=STRICT,
        seccomp_rules=[Rule("setuid", EPERM)],
        seccomp_flags=0,
        setuid=EPERM,
    ),
    "no multiarch": Matrix(case_minimal, (8, 16384), seccomp_flags=0, modify_ldt=EPERM),
    "writable root": Matrix(case_minimal, (1000, 100), read_only=False),
    "tmpfs": Matrix(case_tmpfs, (1, 31), read_only=False),
    "dev": Matrix(case_dev, (9, 9)),
    "dev no mqueue": Matrix(case_dev_no_mqueue, (1971, 100)),
    "overlay": Matrix(case_overlay, (8, 16384), read_only=False),
    "overlay ephemeral": Matrix(case_overlay_ephemeral, (1000, 100)),
    "overlay readonly": Matrix(case_overlay_readonly, (1, 31), read_only=False),
    "readonly tmpfs": Matrix(case_readonly_tmpfs, (9, 9)),
    "place": Matrix(case_place, (1971, 100)),
}


def rows(entries: list[Entry]) -> list[Row]:
    return [(e.target, e.fstype, e.source, vfs(e.vfs_options)) for e in entries]


@pytest.mark.parametrize("name", list(CASES))
def test_mountinfo_matches_entry_for_entry(name: str, tmp_path: Path) -> None:
    m = CASES[name]
    hostname = "test-" + name.replace(" ", "-")
    case_ops, case_want, fs_checks = m.case(tmp_path)
    ops = Ops(base_ops() + case_ops + harness_ops(hostname))
    if m.read_only:
        ops.remount("/", MS_RDONLY)
    want = [root(m.read_only), *base_expected(), *case_want, *HARNESS]

    uid, gid = m.ids
    out = ok(
        run([PY, "-I", "-S", "-c", PROBE], ops, uid=uid, gid=gid, hostname=hostname, **m.params)
    )
    head, _, table = out.partition("\n")
    facts = json.loads(head)
    if facts["net"] != HOST_NET:
        facts["net"] = "another net namespace"
    got = parse(table.encode())

    assert facts == m.expected(hostname)
    assert rows(got) == [w.row for w in want]
    for entry, w in zip(got, want, strict=True):
        for text in w.fs:
            assert text in entry.fs_options, (entry.target, text, entry.fs_options)
    case_entries = got[1 + len(base_expected()) :][: len(case_want)]
    for check in fs_checks:
        assert any(check(e.fs_options) for e in case_entries), [e.fs_options for e in case_entries]


def test_root_entry_is_the_sysroot_of_the_intermediate_tmpfs() -> None:
    first = mountinfo(base_ops().proc("/proc"))[0]
    assert (first.root, first.target, first.fstype, first.source) == (
        "/sysroot",
        "/",
        "tmpfs",
        "rootfs",
    )
