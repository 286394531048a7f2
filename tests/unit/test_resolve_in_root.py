"""The seam's in-root resolution (``Kernel.mkdir_in``/``file_in``/``open_in``/``symlink_in``).

Every op reaches its destination through these helpers, so their algorithm is
what keeps setup inside the container's root.  Two halves:

* on the fake: the helpers' own code runs (called unbound, with the fake as
  ``self``), and every primitive they issue (``openat2``, ``mkdirat``,
  ``openat``, ``close`` ...) is replayed, so the exact resolve flags, the
  order, the error wrapping and the closing of every fd are checked;
* on the real kernel, in a temporary directory (no privileges needed):
  links planted the way a container would plant them never lead setup out of
  the root.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from hakurei.errors import PathError
from hakurei.init.kernel import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    Kernel,
)

from fakekernel import Call, FakeKernel, call

ROOT = 3  # the container's root, as an O_PATH directory fd
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
HERE = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
DIRF = os.O_PATH | os.O_DIRECTORY
NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK
DIR = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, 0, 0))
FILE = os.stat_result((stat.S_IFREG | 0o444, 0, 0, 0, 0, 0, 0, 0, 0, 0))


def oserror(err: int, name: str = "x") -> OSError:
    """What the real primitives raise: OSError(errno, ...) is already its subclass."""
    return OSError(err, os.strerror(err), name)


def replay(calls: list[Call]) -> FakeKernel:
    return FakeKernel(calls)


# -- _mkdir_in: directories ---------------------------------------------------------------


def test_existing_directory_is_one_openat2_in_root() -> None:
    k = replay([call("openat2", ROOT, "a/b", DIRF, IN_ROOT, ret=5)])
    assert Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755) == 5
    k.done()


def test_the_root_itself_is_dot() -> None:
    k = replay([call("openat2", ROOT, ".", DIRF, IN_ROOT, ret=5)])
    assert Kernel._mkdir_in(k, ROOT, "/", 0o700, 0o755) == 5
    k.done()


def test_missing_leaf_is_made_in_its_parent_with_perm_and_opened_without_links() -> None:
    k = replay(
        [
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "b", 0o700),
            call("openat2", 6, "b", DIRF, HERE, ret=7),
            call("close", 6),
        ]
    )
    assert Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755) == 7
    k.done()


def test_missing_parents_get_parent_perm_and_the_leaf_perm() -> None:
    k = replay(
        [
            call("openat2", ROOT, "a/b/c", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, ".", DIRF, IN_ROOT, ret=5),
            call("mkdirat", 5, "a", 0o750),
            call("openat2", 5, "a", DIRF, HERE, ret=6),
            call("close", 5),
            call("mkdirat", 6, "b", 0o750),
            call("openat2", 6, "b", DIRF, HERE, ret=7),
            call("close", 6),
            call("mkdirat", 7, "c", 0o1777),
            call("openat2", 7, "c", DIRF, HERE, ret=8),
            call("close", 7),
        ]
    )
    assert Kernel._mkdir_in(k, ROOT, "/a/b/c", 0o1777, 0o750) == 8
    k.done()


def test_a_link_at_the_new_name_is_resolved_again_from_the_root_in_root() -> None:
    """mkdirat found something (EEXIST); openat2 without links says it is a link
    (ELOOP): the whole path is resolved again from the root, never from the host."""
    k = replay(
        [
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "b", 0o700, err=oserror(errno.EEXIST)),
            call("openat2", 6, "b", DIRF, HERE, err=oserror(errno.ELOOP)),
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, ret=9),
            call("close", 6),
        ]
    )
    assert Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755) == 9
    k.done()


def test_a_directory_made_meanwhile_is_used() -> None:
    """EEXIST from mkdirat is a race another mkdir won: the directory is opened as is."""
    k = replay(
        [
            call("openat2", ROOT, "a", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, ".", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "a", 0o700, err=oserror(errno.EEXIST)),
            call("openat2", 6, "a", DIRF, HERE, ret=7),
            call("close", 6),
        ]
    )
    assert Kernel._mkdir_in(k, ROOT, "/a", 0o700, 0o755) == 7
    k.done()


def test_a_dangling_link_is_a_path_error_naming_the_container_path() -> None:
    k = replay(
        [
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "b", 0o700, err=oserror(errno.EEXIST)),
            call("openat2", 6, "b", DIRF, HERE, err=oserror(errno.ELOOP)),
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT, "a/b")),
            call("close", 6),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755)
    k.done()
    assert (info.value.op, info.value.path, info.value.errno) == ("resolve", "/a/b", errno.ENOENT)
    assert str(info.value) == "cannot resolve /a/b: no such file or directory"


def test_a_file_on_the_way_is_enotdir() -> None:
    k = replay([call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOTDIR))])
    with pytest.raises(PathError) as info:
        Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755)
    k.done()
    assert str(info.value) == "cannot resolve /a/b: not a directory"


def test_a_file_at_the_new_name_is_enotdir_and_closes_the_parent() -> None:
    k = replay(
        [
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "b", 0o700, err=oserror(errno.EEXIST)),
            call("openat2", 6, "b", DIRF, HERE, err=oserror(errno.ENOTDIR)),
            call("close", 6),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755)
    k.done()
    assert (info.value.op, info.value.path, info.value.errno) == ("resolve", "/a/b", errno.ENOTDIR)


def test_mkdirat_error_is_one_path_error_and_closes_the_parent() -> None:
    k = replay(
        [
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "b", 0o700, err=oserror(errno.EROFS)),
            call("close", 6),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel._mkdir_in(k, ROOT, "/a/b", 0o700, 0o755)
    k.done()
    assert str(info.value) == "cannot create directory /a/b: read-only file system"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_parent_error_names_the_parent_and_is_not_wrapped_again() -> None:
    """The parent's PathError passes through the child's frame unchanged."""
    k = replay(
        [
            call("openat2", ROOT, "a/b/c", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a/b", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "a", DIRF, IN_ROOT, ret=6),
            call("mkdirat", 6, "b", 0o750, err=oserror(errno.EACCES)),
            call("close", 6),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel._mkdir_in(k, ROOT, "/a/b/c", 0o700, 0o750)
    k.done()
    assert str(info.value) == "cannot create directory /a/b: permission denied"


@pytest.mark.parametrize("err", [errno.EACCES, errno.ELOOP, errno.ENOSYS])
def test_other_resolution_errors_are_path_errors(err: int) -> None:
    k = replay([call("openat2", ROOT, "a", DIRF, IN_ROOT, err=oserror(err))])
    with pytest.raises(PathError) as info:
        Kernel._mkdir_in(k, ROOT, "/a", 0o700, 0o755)
    k.done()
    assert (info.value.op, info.value.path, info.value.errno) == ("resolve", "/a", err)


# -- _new_file: the target of a file bind ---------------------------------------------------


def test_new_file_is_created_exclusively_without_following_or_blocking() -> None:
    k = replay(
        [
            call("openat2", ROOT, "etc", DIRF, IN_ROOT, ret=6),
            call("openat", 6, "hostname", NEW_FILE, 0o444, ret=7),
            call("close", 7),
            call("openat2", 6, "hostname", os.O_PATH, HERE, ret=8),
            call("close", 6),
        ]
    )
    assert Kernel._new_file(k, ROOT, "/etc/hostname", 0o444, 0o750) == 8
    k.done()


def test_new_file_parents_are_made_with_parent_perm() -> None:
    k = replay(
        [
            call("openat2", ROOT, "run", DIRF, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, ".", DIRF, IN_ROOT, ret=5),
            call("mkdirat", 5, "run", 0o700),
            call("openat2", 5, "run", DIRF, HERE, ret=6),
            call("close", 5),
            call("openat", 6, "x", NEW_FILE, 0o444, ret=7),
            call("close", 7),
            call("openat2", 6, "x", os.O_PATH, HERE, ret=8),
            call("close", 6),
        ]
    )
    assert Kernel._new_file(k, ROOT, "/run/x", 0o444, 0o700) == 8
    k.done()


def test_new_file_over_a_link_is_resolved_again_in_root() -> None:
    k = replay(
        [
            call("openat2", ROOT, "etc", DIRF, IN_ROOT, ret=6),
            call("openat", 6, "hostname", NEW_FILE, 0o444, err=oserror(errno.EEXIST)),
            call("openat2", 6, "hostname", os.O_PATH, HERE, err=oserror(errno.ELOOP)),
            call("openat2", ROOT, "etc/hostname", os.O_PATH, IN_ROOT, ret=9),
            call("close", 6),
        ]
    )
    assert Kernel._new_file(k, ROOT, "/etc/hostname", 0o444, 0o750) == 9
    k.done()


def test_new_file_create_error_is_a_path_error_and_closes_the_parent() -> None:
    k = replay(
        [
            call("openat2", ROOT, "etc", DIRF, IN_ROOT, ret=6),
            call("openat", 6, "hostname", NEW_FILE, 0o444, err=oserror(errno.EROFS)),
            call("close", 6),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel._new_file(k, ROOT, "/etc/hostname", 0o444, 0o750)
    k.done()
    assert str(info.value) == "cannot create file /etc/hostname: read-only file system"


# -- the public helpers: the root is opened afresh and always closed -------------------------


def test_mkdir_in_opens_the_root_and_closes_it() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "usr", DIRF, IN_ROOT, ret=5),
            call("close", ROOT),
        ]
    )
    assert Kernel.mkdir_in(k, "/sysroot", "/usr", 0o700, 0o700) == 5
    k.done()


def test_mkdir_in_closes_the_root_on_error() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "usr", DIRF, IN_ROOT, err=oserror(errno.ENOTDIR)),
            call("close", ROOT),
        ]
    )
    with pytest.raises(PathError):
        Kernel.mkdir_in(k, "/sysroot", "/usr", 0o700, 0o700)
    k.done()


def test_open_in_follows_links_in_root_and_closes_the_root() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "etc/.host/x", os.O_RDONLY, IN_ROOT, ret=5),
            call("close", ROOT),
        ]
    )
    assert Kernel.open_in(k, "/sysroot", "/etc/.host/x", os.O_RDONLY) == 5
    k.done()
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "gone", os.O_PATH, IN_ROOT, err=oserror(errno.ENOENT)),
            call("close", ROOT),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel.open_in(k, "/sysroot", "/gone", os.O_PATH)
    k.done()
    assert str(info.value) == "cannot resolve /gone: no such file or directory"


def test_file_in_existing_file() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "dev/null", os.O_PATH, IN_ROOT, ret=5),
            call("close", ROOT),
            call("fstat", 5, ret=FILE),
        ]
    )
    assert Kernel.file_in(k, "/sysroot", "/dev/null", 0o444, 0o700) == 5
    k.done()


def test_file_in_missing_file_is_created() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "etc/x", os.O_PATH, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "etc", DIRF, IN_ROOT, ret=6),
            call("openat", 6, "x", NEW_FILE, 0o444, ret=7),
            call("close", 7),
            call("openat2", 6, "x", os.O_PATH, HERE, ret=8),
            call("close", 6),
            call("close", ROOT),
            call("fstat", 8, ret=FILE),
        ]
    )
    assert Kernel.file_in(k, "/sysroot", "/etc/x", 0o444, 0o700) == 8
    k.done()


@pytest.mark.parametrize(("path", "rel"), [("/etc", "etc"), ("/", ".")])
def test_file_in_a_directory_is_eisdir_and_closes_it(path: str, rel: str) -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, rel, os.O_PATH, IN_ROOT, ret=5),
            call("close", ROOT),
            call("fstat", 5, ret=DIR),
            call("close", 5),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel.file_in(k, "/sysroot", path, 0o444, 0o700)
    k.done()
    assert str(info.value) == f"cannot mount a file on {path}: is a directory"


def test_file_in_resolution_error_closes_the_root() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "a/b", os.O_PATH, IN_ROOT, err=oserror(errno.ENOTDIR)),
            call("close", ROOT),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel.file_in(k, "/sysroot", "/a/b", 0o444, 0o700)
    k.done()
    assert str(info.value) == "cannot resolve /a/b: not a directory"


def test_file_in_creation_error_closes_the_parent_and_the_root() -> None:
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "etc/x", os.O_PATH, IN_ROOT, err=oserror(errno.ENOENT)),
            call("openat2", ROOT, "etc", DIRF, IN_ROOT, ret=6),
            call("openat", 6, "x", NEW_FILE, 0o444, err=oserror(errno.ENOSPC)),
            call("close", 6),
            call("close", ROOT),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel.file_in(k, "/sysroot", "/etc/x", 0o444, 0o700)
    k.done()
    assert str(info.value) == "cannot create file /etc/x: no space left on device"


def test_file_in_fstat_error_closes_the_fd() -> None:
    err = oserror(errno.EIO)
    k = replay(
        [
            call("open", "/sysroot", DIRF, ret=ROOT),
            call("openat2", ROOT, "a", os.O_PATH, IN_ROOT, ret=5),
            call("close", ROOT),
            call("fstat", 5, err=err),
            call("close", 5),
        ]
    )
    with pytest.raises(OSError) as info:
        Kernel.file_in(k, "/sysroot", "/a", 0o444, 0o700)
    k.done()
    assert info.value is err


def test_symlink_in_makes_the_link_in_its_parent_fd() -> None:
    k = replay(
        [
            call("mkdir_in", "/sysroot", "/usr", 0o750, 0o750, ret=6),
            call("symlinkat", "../lib", 6, "lib"),
            call("close", 6),
        ]
    )
    Kernel.symlink_in(k, "/sysroot", "../lib", "/usr/lib", 0o750)
    k.done()
    k = replay(
        [
            call("mkdir_in", "/sysroot", "/", 0o755, 0o755, ret=6),
            call("symlinkat", "usr/bin", 6, "bin"),
            call("close", 6),
        ]
    )
    Kernel.symlink_in(k, "/sysroot", "usr/bin", "/bin", 0o755)
    k.done()


def test_symlink_in_an_existing_name_is_one_path_error() -> None:
    k = replay(
        [
            call("mkdir_in", "/sysroot", "/etc", 0o755, 0o755, ret=6),
            call("symlinkat", "/proc/mounts", 6, "mtab", err=oserror(errno.EEXIST)),
            call("readlinkat", 6, "mtab", ret="/elsewhere"),
            call("close", 6),
        ]
    )
    with pytest.raises(PathError) as info:
        Kernel.symlink_in(k, "/sysroot", "/proc/mounts", "/etc/mtab", 0o755)
    k.done()
    assert info.value.errno == errno.EEXIST
    # bubblewrap's words, which users grep for
    assert str(info.value) == "Can't make symlink at /etc/mtab: existing destination is /elsewhere"


def test_symlink_in_the_same_link_already_there_is_created() -> None:
    """bubblewrap >= 0.9: ``--symlink`` twice with the same contents succeeds."""
    k = replay(
        [
            call("mkdir_in", "/sysroot", "/etc", 0o755, 0o755, ret=6),
            call("symlinkat", "/proc/mounts", 6, "mtab", err=oserror(errno.EEXIST)),
            call("readlinkat", 6, "mtab", ret="/proc/mounts"),
            call("close", 6),
        ]
    )
    Kernel.symlink_in(k, "/sysroot", "/proc/mounts", "/etc/mtab", 0o755)
    k.done()


def test_symlink_in_parent_error_passes_unchanged() -> None:
    err = PathError("resolve", "/etc", errno.ENOTDIR)
    k = replay([call("mkdir_in", "/sysroot", "/etc", 0o755, 0o755, err=err)])
    with pytest.raises(PathError) as info:
        Kernel.symlink_in(k, "/sysroot", "x", "/etc/mtab", 0o755)
    k.done()
    assert info.value is err


# -- the real kernel: planted links never lead out of the root --------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A container root and, beside it, a host directory a planted link aims at."""
    root, host = tmp_path / "root", tmp_path / "host"
    root.mkdir()
    host.mkdir()
    return root, host


def listing(p: Path) -> list[str]:
    return sorted(str(x.relative_to(p)) for x in p.rglob("*"))


@pytest.mark.parametrize("contents", ["ABS", "../../../../../../../../HOST", "../host"])
def test_a_planted_link_to_the_host_makes_directories_inside_the_root(
    tree: tuple[Path, Path], contents: str
) -> None:
    """``evil -> /host/...`` or ``../../host``: what is made lands in the root, never in host."""
    root, host = tree
    contents = contents.replace("ABS", str(host)).replace("HOST", str(host).lstrip("/"))
    (root / "evil").symlink_to(contents)
    k = Kernel()
    with pytest.raises(PathError) as info:
        k.mkdir_in(str(root), "/evil/x", 0o777, 0o777)
    assert info.value.path == "/evil"
    assert listing(host) == []
    # With the link's target present inside the root, the directory is made there.
    inside = root / os.path.normpath("/" + contents).lstrip("/")
    inside.mkdir(parents=True)
    os.close(k.mkdir_in(str(root), "/evil/x", 0o777, 0o777))
    assert (inside / "x").is_dir()
    assert listing(host) == []


def test_a_planted_link_never_leads_a_file_or_a_link_out(tree: tuple[Path, Path]) -> None:
    root, host = tree
    (root / "evil").symlink_to(host)
    (root / "inside").mkdir()
    (root / "dir").symlink_to("/inside")
    k = Kernel()
    for call_it in (
        lambda: k.file_in(str(root), "/evil/f", 0o444, 0o700),
        lambda: k.symlink_in(str(root), "x", "/evil/l", 0o700),
        lambda: k.open_in(str(root), "/evil", os.O_PATH),
    ):
        with pytest.raises(PathError):
            call_it()
    os.close(k.file_in(str(root), "/dir/f", 0o444, 0o700))
    k.symlink_in(str(root), "/etc/x", "/dir/l", 0o700)
    assert listing(root / "inside") == ["f", "l"]
    assert os.readlink(root / "inside" / "l") == "/etc/x"
    assert listing(host) == []


def test_mkdir_in_gives_perm_to_the_leaf_and_parent_perm_to_the_rest(
    tree: tuple[Path, Path],
) -> None:
    root, _ = tree
    old = os.umask(0)
    try:
        os.close(Kernel().mkdir_in(str(root), "/a/b/c", 0o1777, 0o750))
    finally:
        os.umask(old)
    modes = [stat.S_IMODE((root / p).stat().st_mode) for p in ("a", "a/b", "a/b/c")]
    assert modes == [0o750, 0o750, 0o1777]


def test_file_in_never_opens_a_planted_fifo_for_reading(tree: tuple[Path, Path]) -> None:
    """An existing FIFO is only reached by an O_PATH fd: setup does not hang on it."""
    root, _ = tree
    os.mkfifo(root / "fifo")
    fd = Kernel().file_in(str(root), "/fifo", 0o444, 0o700)
    try:
        assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def test_a_dotdot_link_resolves_while_other_processes_rename_and_mount(
    tree: tuple[Path, Path],
) -> None:
    """RESOLVE_IN_ROOT fails a ``..`` step with EAGAIN whenever any rename or mount
    happened anywhere on the machine meanwhile; another container doing either in a
    loop must not make this container's setup fail (the seam retries)."""
    root, host = tree
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "up").symlink_to("../../b")
    done = threading.Event()

    def rename_forever() -> None:
        x, y = host / "x", host / "y"
        x.touch()
        while not done.is_set():
            x.rename(y)
            y.rename(x)

    renamer = threading.Thread(target=rename_forever)
    renamer.start()
    k = Kernel()
    try:
        for _ in range(20000):
            os.close(k.open_in(str(root), "/a/b/c/up/c/up/c/up/c", os.O_PATH))
    finally:
        done.set()
        renamer.join()
