"""The container's /proc/self/mountinfo, entry for entry (reference §11.1, §7).

Each case is the Go ``TestContainer`` harness: the base binds, the case's
own ops, then a read-only tmpfs, /tmp, a placed /etc/hostname, /proc and a
second placed file.  The expected list is written from the spec for the ops
passed (host binds take their fstype and source from the host mount that
holds the source), never copied from what the code prints.  Mount point,
fstype, source and VFS options (a trailing relatime/noatime ignored) must
match, in order, with the same count; some entries also name strings their
fs options must contain.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hakurei.init.kernel import MS_RDONLY
from hakurei.ops import Bind, Link, Ops
from hakurei.ops._mountinfo import Entry

from conftest import base_ops, host_mount_of, host_mounts, mountinfo, vfs, vfs_with

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


def harness_ops() -> Ops:
    """What the Go harness appends after the case's ops."""
    return (
        Ops()
        .readonly("/etc/hakurei/readonly", 0o755)
        .tmpfs("/tmp", 0, 0o1777)
        .place("/etc/hostname", b"test-case\n")
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


CASES: dict[str, tuple[Case, bool]] = {
    # name: (case, root remounted read-only)
    "minimal": (case_minimal, True),
    "writable root": (case_minimal, False),
    "tmpfs": (case_tmpfs, False),
    "dev": (case_dev, True),
    "dev no mqueue": (case_dev_no_mqueue, True),
    "overlay": (case_overlay, False),
    "overlay ephemeral": (case_overlay_ephemeral, True),
    "overlay readonly": (case_overlay_readonly, False),
    "readonly tmpfs": (case_readonly_tmpfs, True),
    "place": (case_place, True),
}


def rows(entries: list[Entry]) -> list[Row]:
    return [(e.target, e.fstype, e.source, vfs(e.vfs_options)) for e in entries]


@pytest.mark.parametrize("name", list(CASES))
def test_mountinfo_matches_entry_for_entry(name: str, tmp_path: Path) -> None:
    case, read_only = CASES[name]
    case_ops, case_want, fs_checks = case(tmp_path)
    ops = Ops(base_ops() + case_ops + harness_ops())
    if read_only:
        ops.remount("/", MS_RDONLY)
    want = [root(read_only), *base_expected(), *case_want, *HARNESS]

    got = mountinfo(ops)

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
