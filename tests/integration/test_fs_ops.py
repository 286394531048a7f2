"""What each filesystem op does, observed by a program inside the container (reference §7).

Every probe runs Python in the container and prints what it saw; write
attempts report the errno name (``EROFS``, ``EACCES``) or ``ok``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hakurei.errors import OpError
from hakurei.ops import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    Bind,
    Link,
    Mkdir,
    Ops,
    Overlay,
    Place,
    Proc,
    Tmpfs,
)
from hakurei.std import MS_RDONLY, MS_REC
from hakurei.sync import run_sync

from conftest import base_ops, mountinfo, nothing_left_running, ok, py, run, sh, vfs

PRELUDE = """
import errno, os, sys

def attempt(fn, *args):
    try:
        fn(*args)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def create(path, data=b"x"):
    def do():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # a full tmpfs first writes short, then fails
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return attempt(do)

def write(path, data=b"x"):
    def do():
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return attempt(do)
"""


def probe(ops: Ops, code: str, *args: str) -> list[str]:
    """Run PRELUDE + ``code`` in a container built from ``ops``; its output lines."""
    return ok(py(PRELUDE + code, *args, ops=ops)).splitlines()


# -- tmpfs ------------------------------------------------------------------------


def test_readonly_tmpfs_refuses_new_files_with_erofs() -> None:
    ops = base_ops().readonly("/etc/hakurei/readonly", 0o755)
    out = probe(
        ops,
        "print(create('/etc/hakurei/readonly/f'));"
        "print(attempt(os.mkdir, '/etc/hakurei/readonly/d'))",
    )
    assert out == ["EROFS", "EROFS"]


def test_tmpfs_size_and_perm_are_visible() -> None:
    ops = base_ops().tmpfs("/t", 1 << 20, 0o750).tmpfs("/s", 0, 0o1777)
    out = probe(
        ops,
        "v = os.statvfs('/t');"
        "print(oct(os.stat('/t').st_mode & 0o7777), v.f_blocks * v.f_frsize);"
        "print(create('/t/small', b'x' * 4096));"
        "print(create('/t/big', b'x' * (2 << 20)));"
        "print(oct(os.stat('/s').st_mode & 0o7777), create('/s/f'))",
    )
    assert out == ["0o750 1048576", "ok", "ENOSPC", "0o1777 ok"]


def test_tmpfs_size_option_in_mountinfo() -> None:
    entries = mountinfo(base_ops().tmpfs("/t", 1 << 20, 0o750).proc("/proc"))
    (t,) = [e for e in entries if e.target == "/t"]
    assert "size=1024k" in t.fs_options.split(",")
    assert "mode=750" in t.fs_options.split(",")
    assert vfs(t.vfs_options) == "rw,nosuid,nodev"


# -- mkdir --------------------------------------------------------------------------


# No setgid: mkdir(2) drops it on Linux (it is inherited, never requested), as in Go.
@pytest.mark.parametrize(
    ("perm", "parents"), [(0o700, 0o700), (0o1751, 0o755), (0o555, 0o755), (0o750, 0o750)]
)
def test_mkdir_perm_is_the_leafs_and_missing_parents_get_0755_less_what_it_denies(
    perm: int, parents: int
) -> None:
    # As bubblewrap makes them: --perms 1777 --dir /rw/a/b must not make a 1777, and a
    # directory closed to group or others is not reachable through parents open to them.
    out = probe(
        base_ops().mkdir("/a/b/c", perm),
        "print(*(oct(os.stat(p).st_mode & 0o7777) for p in ('/a', '/a/b', '/a/b/c')))",
    )
    assert out == [f"{oct(parents)} {oct(parents)} {oct(perm)}"]


def test_mkdir_leaves_an_existing_directory_alone() -> None:
    ops = base_ops().tmpfs("/t", 0, 0o750).mkdir("/t", 0o700)
    assert probe(ops, "print(oct(os.stat('/t').st_mode & 0o7777))") == ["0o750"]


# -- symlink ------------------------------------------------------------------------


def test_link_contents_are_not_interpreted() -> None:
    ops = base_ops().link("/x/y", "some/where/../else").link("/z", "/nonexistent")
    out = probe(ops, "print(os.readlink('/x/y')); print(os.readlink('/z'))")
    assert out == ["some/where/../else", "/nonexistent"]


def test_link_dereference_reads_one_level_of_the_host_link(tmp_path: Path) -> None:
    final = tmp_path / "final"
    final.write_text("end")
    middle = tmp_path / "middle"
    middle.symlink_to(final)
    first = tmp_path / "first"
    first.symlink_to(middle)
    ops = base_ops().link("/d", str(first), dereference=True)
    assert probe(ops, "print(os.readlink('/d'))") == [str(middle)]


def test_link_onto_an_existing_path_fails_in_bubblewraps_words() -> None:
    result = sh("true", base_ops().link("/usr", "elsewhere"))
    assert result.returncode == 125
    assert result.stderr == (
        b"hakurei: Can't make symlink at /usr: destination exists and is not a symlink\n"
    )
    result = sh("true", base_ops().link("/l", "one").link("/l", "other"))
    assert result.returncode == 125
    assert result.stderr == b"hakurei: Can't make symlink at /l: existing destination is one\n"


# -- place --------------------------------------------------------------------------


def test_place_has_the_content_and_is_read_only() -> None:
    data = b"\x00line one\nline two\xff"
    ops = base_ops().place("/etc/placed", data)
    out = probe(
        ops,
        "print(open('/etc/placed', 'rb').read() == bytes.fromhex(sys.argv[1]));"
        "print(write('/etc/placed')); print(attempt(os.truncate, '/etc/placed', 0))",
        data.hex(),
    )
    assert out == ["True", "EROFS", "EROFS"]


# -- bind ---------------------------------------------------------------------------


def test_bind_optional_missing_source_is_skipped(tmp_path: Path) -> None:
    ops = base_ops().bind(str(tmp_path / "missing"), "/opt/m", BIND_OPTIONAL)
    assert probe(ops, "print(os.path.lexists('/opt/m'), os.path.lexists('/opt'))") == [
        "False False"
    ]


def test_bind_writable_writes_through_to_the_host(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("host")
    ops = base_ops().bind(str(tmp_path), "/w", BIND_WRITABLE)
    out = probe(ops, "print(open('/w/old').read(), create('/w/new', b'from container'))")
    assert out == ["host ok"]
    assert (tmp_path / "new").read_text() == "from container"


def test_bind_is_read_only_by_default(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("host")
    ops = base_ops().bind(str(tmp_path), "/w")
    out = probe(ops, "print(open('/w/old').read(), create('/w/new'), write('/w/old'))")
    assert out == ["host EROFS EROFS"]
    assert sorted(os.listdir(tmp_path)) == ["old"]
    assert (tmp_path / "old").read_text() == "host"


def test_bound_device_node_is_usable_only_with_the_device_flag() -> None:
    code = "print(write('/n'), attempt(open, '/n', 'rb'))"
    assert probe(base_ops().bind("/dev/null", "/n"), code) == ["EACCES EACCES"]
    assert probe(base_ops().bind("/dev/null", "/n", BIND_DEVICE), code) == ["ok ok"]


def test_bind_ensure_creates_the_host_directory_0700(tmp_path: Path) -> None:
    src = tmp_path / "made" / "here"
    ops = base_ops().bind(str(src), "/e", BIND_ENSURE | BIND_WRITABLE)
    assert probe(ops, "print(create('/e/f'))") == ["ok"]
    for path in (tmp_path / "made", src):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert os.listdir(src) == ["f"]


def test_bind_of_a_file_creates_the_target_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("content")
    ops = base_ops().bind(str(tmp_path / "f"), "/deep/er/f")
    assert probe(ops, "print(open('/deep/er/f').read(), write('/deep/er/f'))") == ["content EROFS"]


def test_parent_directories_follow_parent_perm_less_what_the_leaf_denies(tmp_path: Path) -> None:
    """As bubblewrap makes them: missing parents get parent_perm (0755 by default), less
    group/other access where the leaf has a mode that denies it (a 0600 placed file, a 0750
    or 0 tmpfs); a bind's or a link's parents get parent_perm as it is."""
    ops = (
        base_ops()
        .bind(str(tmp_path), "/b1/b2/dir")
        .link("/l1/l2/link", "x")
        .place("/p1/file", b"")
        .tmpfs("/t1/t", 0, 0o750)
        .tmpfs("/z1/z", 0, 0)
    )
    code = "print(*(oct(os.stat(p).st_mode & 0o7777) for p in sys.argv[1:]))"
    paths = ("/b1", "/b1/b2", "/l1", "/l1/l2", "/p1", "/t1", "/z1", "/z1/z")
    assert probe(ops, code, *paths) == ["0o755 0o755 0o755 0o755 0o700 0o750 0o700 0o0"]
    ops_710 = (
        base_ops()
        .link("/l1/link", "x")
        .place("/p1/file", b"")
        .bind(str(tmp_path), "/b1/dir")
        .tmpfs("/t1/t", 0, 0o1777)
    )
    paths = ("/l1", "/p1", "/b1", "/t1")
    got = ok(py(PRELUDE + code, *paths, ops=ops_710, parent_perm=0o710)).split()
    assert got == ["0o710", "0o700", "0o710", "0o710"]


def test_missing_bind_source_exits_125_with_one_line_naming_op_and_path(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "missing")
    result = sh("echo should not run", base_ops().bind(missing, "/m"))
    assert result.returncode == 125
    assert result.stdout == b""
    lines = (result.stderr or b"").decode().splitlines()
    assert len(lines) == 1, lines
    # bubblewrap's words, which its test suite and users grep for
    assert lines[0] == f"hakurei: Can't find source path {missing}: No such file or directory"


# -- relative paths are refused before anything runs --------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Bind("usr", "/usr"),
        lambda: Bind("/usr", "usr"),
        lambda: Tmpfs("tmp"),
        lambda: Mkdir("a/b"),
        lambda: Link("rel", "/x"),
        lambda: Link("/x", "rel", dereference=True),
        lambda: Place("etc/x", b""),
        lambda: Proc("proc"),
        lambda: Overlay("/o", ["/a", "rel"], None, None),
        lambda: Ops().root("host"),
        lambda: Ops().dev("dev"),
        lambda: Ops().remount("", MS_RDONLY),
    ],
)
def test_relative_path_in_an_op_is_an_op_error(make: object) -> None:
    with pytest.raises(OpError):
        make()  # type: ignore[operator]


def test_relative_path_set_after_construction_is_an_op_error_before_spawn(
    tmp_path: Path,
) -> None:
    op = Bind("/usr", "/usr")
    op.source = "usr"
    marker = tmp_path / "ran"
    # tmp_path is bound writable: had anything been started, the marker would show.
    writable = Bind(str(tmp_path), str(tmp_path), BIND_WRITABLE)
    with pytest.raises(OpError, match="not absolute"):
        run_sync(
            "/bin/sh",
            ["sh", "-c", f"echo > {marker}"],
            ops=[op, *base_ops()[1:], writable],
            capture_output=True,
        )
    assert not marker.exists()
    nothing_left_running()  # and no shim was spawned


# -- remount ------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "sub"), [(MS_RDONLY, "ok"), (MS_RDONLY | MS_REC, "EROFS")])
def test_remount_read_only_reaches_submounts_only_when_recursive(flags: int, sub: str) -> None:
    ops = base_ops().tmpfs("/t").tmpfs("/t/sub").remount("/t", flags)
    assert probe(ops, "print(create('/t/f'), create('/t/sub/f'))") == [f"EROFS {sub}"]


def test_remount_root_read_only_keeps_writable_mounts_writable() -> None:
    ops = base_ops().tmpfs("/tmp", 0, 0o1777).remount("/", MS_RDONLY)
    assert probe(ops, "print(attempt(os.mkdir, '/new'), create('/tmp/f'))") == ["EROFS ok"]


# -- overlay ------------------------------------------------------------------------


def overlay_layers(tmp: Path) -> tuple[Path, Path, Path, Path]:
    upper, work, a, b = (tmp / n for n in ("upper", "work", "a", "b"))
    for d in (upper, work, a, b):
        d.mkdir()
    (a / "top").write_text("from a")
    (b / "top").write_text("from b")
    (b / "only_b").write_text("b")
    return upper, work, a, b


OVERLAY_PROBE = (
    "print(open('/o/top').read(), open('/o/only_b').read(), create('/o/new', b'written'))"
)


def test_overlay_merges_lowers_first_on_top_and_writes_to_upper(tmp_path: Path) -> None:
    upper, work, a, b = overlay_layers(tmp_path)
    ops = base_ops().overlay("/o", str(upper), str(work), str(a), str(b))
    assert probe(ops, OVERLAY_PROBE) == ["from a b ok"]
    assert (upper / "new").read_text() == "written"
    assert sorted(os.listdir(a)) == ["top"] and sorted(os.listdir(b)) == ["only_b", "top"]


def test_overlay_ephemeral_writes_vanish(tmp_path: Path) -> None:
    upper, work, a, b = overlay_layers(tmp_path)
    ops = base_ops().overlay_ephemeral("/o", str(a), str(b))
    assert probe(ops, OVERLAY_PROBE) == ["from a b ok"]
    # Nothing of the write reached the host: not the layers, not the unused dirs beside them.
    assert sorted(os.listdir(a)) == ["top"] and sorted(os.listdir(b)) == ["only_b", "top"]
    assert os.listdir(upper) == [] and os.listdir(work) == []
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "upper", "work"]


def test_overlay_readonly_refuses_writes(tmp_path: Path) -> None:
    _, _, a, b = overlay_layers(tmp_path)
    ops = base_ops().overlay_readonly("/o", str(a), str(b))
    assert probe(ops, OVERLAY_PROBE) == ["from a b EROFS"]


# -- autoetc ------------------------------------------------------------------------


def test_autoetc_links_are_relative_and_skip_accounts() -> None:
    code = (
        "for n in sorted(os.listdir('/etc')):\n"
        "    print(n, os.readlink('/etc/' + n) if n != '.host' else os.listdir('/etc/.host'))"
    )
    ops = base_ops().etc("/etc", "host")
    got = dict(line.split(" ", 1) for line in probe(ops, code))
    assert got.pop(".host") == "['host']"
    want = {
        n: ("/proc/mounts" if n == "mtab" else f".host/host/{n}")
        for n in os.listdir("/etc")
        if n not in ("passwd", "group", ".host")
    }
    assert got == want
    assert "passwd" not in got and "group" not in got


def test_autoetc_links_resolve_to_the_host_files_read_only() -> None:
    ops = base_ops().etc().place("/etc/passwd", b"root:x:0:0::/:/bin/sh\n")
    out = probe(
        ops,
        "print(open('/etc/debian_version').read() == sys.argv[1]);"
        "print(open('/etc/passwd').read().strip(), bool(os.statvfs('/etc/.host/host').f_flag & 1));"
        "print(os.path.islink('/etc/passwd'))",
        Path("/etc/debian_version").read_text(),
    )
    # ST_RDONLY: the host files are root's, so a write would fail on permissions first.
    assert out == ["True", "root:x:0:0::/:/bin/sh True", "False"]


# -- autoroot -----------------------------------------------------------------------


def test_autoroot_binds_top_level_recreates_links_and_skips_the_private_names(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "root"
    for name in ("proc", "dev", "tmp", "mnt", "etc", "data"):
        (fake / name).mkdir(parents=True)
        (fake / name / "marker").write_text(name)
    (fake / "afile").write_text("file")
    (fake / "alink").symlink_to("data")
    ops = base_ops().root(str(fake))
    out = probe(
        ops,
        "print(*(os.path.lexists('/' + n) for n in ('proc', 'dev', 'tmp', 'mnt', 'etc')));"
        "print(open('/data/marker').read(), open('/afile').read());"
        "print(os.path.islink('/alink'), open('/alink/marker').read());"
        "print(create('/data/new'))",
    )
    # /alink is the image's own link, meaning the container's /data.
    assert out == ["False False False False False", "data file", "True data", "EROFS"]


# -- dev ----------------------------------------------------------------------------


DEV_PROBE = """
print(write('/dev/null'), len(open('/dev/zero', 'rb').read(8)), len(os.urandom(4)))
print(create('/dev/shm/f'), os.path.exists('/dev/pts/ptmx'), os.readlink('/dev/ptmx'))
m, s = os.openpty()
print(os.ttyname(s))
print(create('/dev/new'))
"""


def test_dev_is_minimal_read_only_with_writable_shm_and_private_pts() -> None:
    out = probe(base_ops().dev("/dev"), DEV_PROBE)
    assert out == ["ok 8 4", "ok True pts/ptmx", "/dev/pts/0", "EROFS"]


def test_dev_writable_lets_the_program_add_entries() -> None:
    out = probe(base_ops().dev_writable("/dev"), DEV_PROBE)
    assert out == ["ok 8 4", "ok True pts/ptmx", "/dev/pts/0", "ok"]


def test_dev_lists_only_the_minimal_entries() -> None:
    names = ok(run(["/bin/ls", "-A", "/dev"], base_ops().dev("/dev", mqueue=True))).split()
    assert sorted(names) == sorted(
        [
            "null", "zero", "full", "random", "urandom", "tty",
            "stdin", "stdout", "stderr", "fd", "core", "ptmx",
            "shm", "pts", "mqueue",
        ]
    )  # fmt: skip


# -- awkward paths ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["with space", "tab\there", "new\nline", "back\\slash"])
def test_bind_and_remount_of_a_path_mountinfo_escapes(tmp_path: Path, name: str) -> None:
    """The kernel writes these octal-escaped in mountinfo; remount must still find the mount."""
    src = tmp_path / name
    src.mkdir()
    (src / "f").write_text("seen")
    target = f"/m/{name}"
    ops = base_ops().bind(str(src), target).proc("/proc")
    out = probe(ops, "print(open(sys.argv[1] + '/f').read(), create(sys.argv[1] + '/g'))", target)
    assert out == ["seen EROFS"]
    (entry,) = [e for e in mountinfo(ops) if e.target == target]
    assert vfs(entry.vfs_options) == "ro,nosuid,nodev"


def test_overlay_layers_with_commas_colons_and_backslashes(tmp_path: Path) -> None:
    """overlayfs splits options on ``,`` and layers on ``:``; the op must escape both."""
    lowers = []
    for i, name in enumerate(("a,b", "c:d", "e\\f")):
        d = tmp_path / name
        d.mkdir()
        (d / f"f{i}").write_text(name)
        lowers.append(str(d))
    upper, work = tmp_path / "up:per", tmp_path / "wo,rk"
    upper.mkdir()
    work.mkdir()
    ops = base_ops().overlay("/o", str(upper), str(work), *lowers)
    out = probe(ops, "print(*(open(f'/o/f{i}').read() for i in range(3)), create('/o/new'))")
    assert out == ["a,b c:d e\\f ok"]
    assert os.listdir(upper) == ["new"]


def test_bind_source_through_a_symlink_binds_what_it_names(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("real")
    (tmp_path / "link").symlink_to("real")
    ops = base_ops().bind(str(tmp_path / "link"), "/l")
    assert probe(ops, "print(os.path.islink('/l'), open('/l/f').read())") == ["False real"]


def test_bind_optional_dangling_symlink_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    ops = base_ops().bind(str(tmp_path / "dangling"), "/d", BIND_OPTIONAL)
    assert probe(ops, "print(os.path.lexists('/d'))") == ["False"]


def test_host_root_bound_on_root_like_the_go_example() -> None:
    """Go's Example: Bind("/", "/") with a private /proc and /dev over it."""
    ops = Ops().bind("/", "/").proc("/proc").dev("/dev", mqueue=True)
    out = ok(
        run(
            ["/bin/sh", "-c", "hostname; echo $$; ls /proc/1/comm"], ops, hostname="hakurei-example"
        )
    )
    assert out.split() == ["hakurei-example", "2", "/proc/1/comm"]


def test_dev_console_is_the_terminal_of_a_retained_session(tmp_path: Path) -> None:
    """§7.3 step 6: with RetainSession and a tty on stdout, /dev/console is that tty."""
    master, slave = os.openpty()
    err = tmp_path / "err"
    try:
        with open(err, "wb") as errf:
            result = run_sync(
                "/bin/sh",
                ["sh", "-c", "test -c /dev/console && stat -c %t:%T /dev/console"],
                ops=base_ops().dev("/dev"),
                stdout=slave,
                stderr=errf,
                retain_session=True,
                uid=os.getuid(),
                gid=os.getgid(),
            )
        assert result.returncode == 0, err.read_bytes()
        os.set_blocking(master, False)
        got = os.read(master, 4096).decode().strip()
        st = os.fstat(slave)
        assert got == f"{os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x}"
    finally:
        os.close(master)
        os.close(slave)
