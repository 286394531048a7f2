"""What the container must not be able to see or do to the host's mounts.

As ``hk`` nothing can be mounted on the host, so submounts come from what
the host already has: its ``/dev`` holds ``/dev/shm`` (a writable tmpfs) and
``/dev/pts``.  Flags the kernel locks come from a nested container, whose
parent container's mounts (proc ``nosuid,nodev,noexec``) are locked in it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei.ops import BIND_DEVICE, BIND_WRITABLE, Ops
from hakurei.ops._mountinfo import parse
from hakurei.std import MS_RDONLY

from conftest import base_ops, host_mounts, mountinfo, ok, py, run, vfs

PROBE_CREATE = """
import errno, os, sys
try:
    os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def host_submounts(top: str) -> list[str]:
    return [e.target for e in host_mounts() if e.target.startswith(top + "/")]


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A fresh name in the host's /dev/shm, removed afterwards whatever happened."""
    path = f"/dev/shm/hakurei-test-{os.getpid()}"
    yield path
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def test_read_only_recursive_bind_makes_a_writable_host_submount_read_only(
    shm_name: str,
) -> None:
    shm = [e for e in host_mounts() if e.target == "/dev/shm"]
    # Debian 12 (and CI) mount a writable tmpfs there; the test needs one.
    assert shm, "needs a tmpfs mounted on the host's /dev/shm"
    assert vfs(shm[-1].vfs_options).split(",")[0] == "rw"
    assert os.access("/dev/shm", os.W_OK)
    inside = "/hostdev" + shm_name.removeprefix("/dev")

    ops = base_ops().bind("/dev", "/hostdev").proc("/proc")
    out = ok(py(PROBE_CREATE, inside, ops=ops)).split()
    assert out == ["EROFS"]
    assert not os.path.exists(shm_name)

    entries = [e for e in mountinfo(ops) if e.target.startswith("/hostdev")]
    # The host /dev and every mount under it (stacked ones included) came along ...
    assert len(entries) == 1 + len(host_submounts("/dev"))
    for e in entries:
        # ... and every one of them is read-only, nosuid and nodev.
        assert set(vfs(e.vfs_options).split(",")) >= {"ro", "nosuid", "nodev"}, e


def test_writable_bind_of_the_same_tree_does_write_through(shm_name: str) -> None:
    """The control for the test above: the same write succeeds when the bind is writable."""
    inside = "/hostdev" + shm_name.removeprefix("/dev")
    ops = base_ops().bind("/dev", "/hostdev", BIND_WRITABLE)
    assert ok(py(PROBE_CREATE, inside, ops=ops)).split() == ["ok"]
    assert os.path.exists(shm_name)


NESTED = r"""
import sys
from hakurei.sync import run_sync
from hakurei.ops import Ops, BIND_DEVICE, BIND_WRITABLE
ops = Ops().bind("/usr", "/usr")
for top in sys.argv[1:]:
    name, _, to = top.partition("=")
    ops.link(name, to) if to else ops.bind(name, name)
ops.bind("/dev", "/adev", 0).bind("/proc", "/aproc", BIND_WRITABLE | BIND_DEVICE).proc("/proc")
r = run_sync("/bin/cat", ["cat", "/proc/self/mountinfo"], ops=ops, capture_output=True,
             uid=1000, gid=1000, seccomp_disable=True)
sys.stdout.write(r.stdout.decode())
sys.stderr.write(r.stderr.decode())
sys.exit(r.returncode)
"""


def test_locked_flags_survive_binds_in_a_nested_container() -> None:
    """Flags of mounts made by an outer container are locked in an inner one and kept.

    The inner container binds the outer's /proc writable and with devices
    allowed: nothing may clear its nosuid, nodev and noexec.  It binds the
    outer's /dev read-only: its devpts keeps noexec and its writable shm
    becomes read-only.
    """
    prefix = sys.prefix
    tops = []
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):
            tops.append(f"{top}={os.readlink(top)}")
        elif os.path.isdir(top):
            tops.append(top)
    # /tmp first: the venv may live under /tmp (CI's does), and a later tmpfs would hide it.
    outer = base_ops().proc("/proc").dev("/dev", mqueue=True).tmpfs("/tmp").bind(prefix, prefix)
    result = run([f"{prefix}/bin/python", "-I", "-c", NESTED, *tops], outer)
    text = ok(result)
    inner = {e.target: set(vfs(e.vfs_options).split(",")) for e in parse(text)}
    assert inner["/aproc"] >= {"rw", "nosuid", "nodev", "noexec"}, inner["/aproc"]
    assert inner["/adev/pts"] >= {"ro", "nosuid", "noexec"}, inner["/adev/pts"]
    assert inner["/adev/mqueue"] >= {"ro", "nosuid", "nodev", "noexec"}
    assert inner["/adev/shm"] >= {"ro", "nosuid", "nodev"}
    assert inner["/proc"] >= {"nosuid", "nodev", "noexec"}


def test_host_root_and_intermediate_root_are_unreachable() -> None:
    ops = base_ops().proc("/proc").dev("/dev").tmpfs("/tmp").place("/etc/x", b"x")
    entries = mountinfo(ops.remount("/", MS_RDONLY))
    root, rest = entries[0], entries[1:]
    assert (root.target, root.root) == ("/", "/sysroot")
    # The root is the top of this mount tree: its parent is not visible.
    assert root.parent not in {e.id for e in entries}
    assert [e.target for e in entries].count("/") == 1
    for e in rest:
        assert e.target not in ("/host", "/sysroot") and not e.target.startswith(
            ("/host/", "/sysroot/", "/proc/self")
        ), e
        assert not e.root.startswith(("/host", "/sysroot")), e
        if (e.major, e.minor) == (root.major, root.minor):
            # Only placed files come from the intermediate tmpfs: unlinked inodes.
            assert e.root.endswith("//deleted"), e

    listing = ok(py("import os; print(*sorted(os.listdir('/')))", ops=ops)).split()
    assert listing == sorted(["usr", "bin", "sbin", "lib", "lib64", "proc", "dev", "tmp", "etc"])


def test_proc_belongs_to_the_container_pid_namespace() -> None:
    code = (
        "import os; print(*sorted(p for p in os.listdir('/proc') if p.isdigit()));"
        "print(open('/proc/1/comm').read().strip(), os.readlink('/proc/self'))"
    )
    ops = base_ops().proc("/proc")
    assert ok(py(code, ops=ops)).splitlines() == ["1 2", "init 2"]


def test_mount_namespace_is_private_and_nothing_leaks_to_the_host(tmp_path: Path) -> None:
    for d in ("a", "b", "upper", "work", "w"):
        (tmp_path / d).mkdir()
    before = Path("/proc/self/mountinfo").read_text()
    ops = (
        Ops(base_ops())
        .bind(str(tmp_path / "w"), "/w", BIND_WRITABLE | BIND_DEVICE)
        .proc("/proc")
        .dev("/dev", mqueue=True)
        .tmpfs("/tmp")
        .overlay("/o", str(tmp_path / "upper"), str(tmp_path / "work"), str(tmp_path / "a"))
        .overlay_ephemeral("/e", str(tmp_path / "a"))
        .place("/etc/x", b"x")
        .etc()
        .remount("/", MS_RDONLY)
    )
    ns = ok(py("import os; print(os.readlink('/proc/self/ns/mnt'))", ops=ops)).strip()
    after = Path("/proc/self/mountinfo").read_text()
    assert after == before
    assert ns.startswith("mnt:[") and ns != os.readlink("/proc/self/ns/mnt")


def test_program_holds_no_descriptor_or_directory_of_the_setup() -> None:
    """Nothing of the host or the intermediate root is reachable through fds, cwd or init."""
    code = (
        "import os\n"
        "print(*sorted(os.listdir('/proc/self/fd'), key=int))\n"  # 3 is this listing
        "print(os.readlink('/proc/self/root'), os.readlink('/proc/self/cwd'))\n"
        "for p in ('/proc/1/root', '/proc/1/cwd', '/proc/1/fd/0'):\n"
        "    try:\n"
        "        print(os.readlink(p))\n"
        "    except PermissionError:\n"
        "        print('EACCES')\n"
    )
    out = ok(py(code, ops=base_ops().proc("/proc"))).splitlines()
    assert out == ["0 1 2 3", "/ /", "EACCES", "EACCES", "EACCES"]


ESCAPE = """
try() { if "$@" 2>/dev/null; then echo yes; else echo no; fi; }
echo $(try mount -o remount,bind,rw /usr) $(try mount -o remount,bind,rw /) \
     $(try umount -l /usr) $(try touch /usr/x) $(try mount -o remount,bind,rw /tmp)
"""


def test_read_only_mounts_stay_so_for_a_program_with_its_own_user_namespace() -> None:
    """The container's mounts are locked in any namespace the program makes.

    A program may create a user and mount namespace and so hold
    CAP_SYS_ADMIN over a copy of its mounts; the kernel locks what it copied:
    read-only binds cannot be made writable, nor unmounted to reveal what they
    cover.  A writable tmpfs shows the remount itself is allowed.
    """
    ops = base_ops().proc("/proc").dev("/dev").tmpfs("/tmp").remount("/", MS_RDONLY)
    out = ok(run(["/usr/bin/unshare", "-Urm", "/bin/sh", "-c", ESCAPE], ops)).split()
    assert out == ["no", "no", "no", "no", "yes"]
