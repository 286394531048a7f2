"""The filesystem options ``hakurei bwrap`` maps onto, through ``hakurei exec`` (issue 12).

``--chmod``, ``--file``/``--bind-data``/``--ro-bind-data``, ``--lock-file``,
``--mqueue`` and ``--bind-fd``/``--ro-bind-fd``, each observed from inside a
real container (or, for the lock, from the host while the container lives),
run as the ordinary user.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import BASE, exec_sh, hakurei, one_line_125, processes_with

# -- --chmod -------------------------------------------------------------------------


def test_chmod_sets_the_mode_of_what_earlier_options_made() -> None:
    r = exec_sh(
        *BASE, "--dir", "/tmp/d", "--chmod", "1755", "/tmp/d",
        "--file", "0", "/tmp/f", "--chmod", "0400", "/tmp/f",
        script="stat -c %a /tmp/d /tmp/f", input="",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "1755\n400\n"), r.stderr


def test_chmod_applies_in_command_line_order() -> None:
    """Before the --dir that makes it, there is nothing to change: one line, 125."""
    r = exec_sh(*BASE, "--chmod", "700", "/tmp/d", "--dir", "/tmp/d", script="true")
    one_line_125(r, "cannot chmod 0700 /tmp/d: no such file or directory")


def test_chmod_never_follows_a_link_out_of_the_new_root(tmp_path: Path) -> None:
    """A link planted in a bound directory is resolved inside the container.

    Its target names the host's file as init sees it while building
    (``/host/...``); resolved in the new root that path does not exist.
    """
    victim = tmp_path / "victim"
    victim.write_text("x")
    victim.chmod(0o644)
    (tmp_path / "esc").symlink_to(f"/host{victim}")
    r = exec_sh(
        *BASE, "--bind", str(tmp_path), "/tmp/w", "--chmod", "777", "/tmp/w/esc", script="true"
    )
    one_line_125(r, "cannot chmod 0777 /tmp/w/esc")
    assert victim.stat().st_mode & 0o7777 == 0o644


@pytest.mark.parametrize("mode", ["8", "-1", "17777", ""])
def test_chmod_with_a_bad_mode_is_one_line(mode: str) -> None:
    one_line_125(hakurei("exec", *BASE, "--chmod", mode, "/tmp", "--", "/bin/true"), "--chmod")


# -- --file, --bind-data, --ro-bind-data ---------------------------------------------


@pytest.mark.parametrize(
    ("options", "mode"),
    [
        (["--file", "0"], "666"),
        (["--perms", "0640", "--file", "0"], "640"),
        (["--bind-data", "0"], "600"),
        (["--perms", "0640", "--bind-data", "0"], "640"),
        (["--ro-bind-data", "0"], "600"),
        (["--perms", "0640", "--ro-bind-data", "0"], "640"),
    ],
)
def test_data_files_have_bubblewraps_modes_and_the_fds_bytes(options: list[str], mode: str) -> None:
    r = exec_sh(
        *BASE, *options, "/tmp/file",
        script="stat -c %a /tmp/file; cat /tmp/file", input="data from fd 0\n",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, f"{mode}\ndata from fd 0\n"), r.stderr


def pipe_with(data: bytes) -> int:
    """The read end of a pipe holding ``data``, its write end closed."""
    r_fd, w_fd = os.pipe()
    os.write(w_fd, data)
    os.close(w_fd)
    return r_fd


def test_bind_data_is_writable_and_ro_bind_data_is_not() -> None:
    """Each fd is read once and closed, as bubblewrap does: one fd per option."""
    script = "echo new > /tmp/rw && cat /tmp/rw; echo new > /tmp/ro 2>/dev/null || echo refused"
    fd = pipe_with(b"old")
    try:
        r = exec_sh(
            *BASE, "--bind-data", "0", "/tmp/rw", "--ro-bind-data", str(fd), "/tmp/ro",
            script=script, input="old", pass_fds=(fd,),
        )  # fmt: skip
    finally:
        os.close(fd)
    assert (r.returncode, r.stdout) == (0, "new\nrefused\n"), r.stderr


def test_file_is_written_into_the_tree_where_the_host_sees_it(tmp_path: Path) -> None:
    """--file writes into the directory (here a writable bind); --bind-data never does."""
    fd = pipe_with(b"private bytes")
    try:
        r = exec_sh(
            *BASE, "--bind", str(tmp_path), "/tmp/w",
            "--file", "0", "/tmp/w/written", "--bind-data", str(fd), "/tmp/w/private",
            script="cat /tmp/w/private", input="bytes", pass_fds=(fd,),
        )  # fmt: skip
    finally:
        os.close(fd)
    assert (r.returncode, r.stdout) == (0, "private bytes"), r.stderr
    written = tmp_path / "written"
    assert written.read_bytes() == b"bytes" and written.stat().st_mode & 0o7777 == 0o666
    # The mount point of the private copy is all that is left of it on the host.
    assert (tmp_path / "private").read_bytes() == b""


def test_data_files_read_a_pipe_and_parents_follow_bubblewraps_modes() -> None:
    r_fd = pipe_with(b"piped\n")
    try:
        r = exec_sh(
            *BASE, "--ro-bind-data", str(r_fd), "/tmp/p/q/f",
            script="cat /tmp/p/q/f; stat -c %a /tmp/p /tmp/p/q", pass_fds=(r_fd,),
        )  # fmt: skip
    finally:
        os.close(r_fd)
    # A 0600 file's missing parents are 0700, as bubblewrap makes them.
    assert (r.returncode, r.stdout) == (0, "piped\n700\n700\n"), r.stderr


def test_file_refuses_to_follow_a_link_at_its_destination() -> None:
    r = exec_sh(
        *BASE, "--symlink", "/etc/hostname", "/tmp/l", "--file", "0", "/tmp/l", script="true"
    )
    one_line_125(r, "/tmp/l")


def test_data_from_an_fd_that_is_not_open_is_one_line() -> None:
    one_line_125(
        hakurei("exec", *BASE, "--file", "999", "/tmp/f", "--", "/bin/true"), "--file: fd 999"
    )


def test_data_over_the_limit_is_one_line() -> None:
    with open("/dev/zero", "rb") as zero:
        r = hakurei(
            "exec", *BASE, "--bind-data", str(zero.fileno()), "/tmp/f", "--", "/bin/true",
            pass_fds=(zero.fileno(),),
        )  # fmt: skip
    one_line_125(r, "--bind-data: more than 16777216 bytes")


# -- --lock-file ---------------------------------------------------------------------

STARTER = """
import subprocess, sys
p = subprocess.Popen(sys.argv[1:])
print(p.pid, flush=True)
p.wait()
"""


def write_lock(path: Path) -> int:
    """What bubblewrap's test does: F_SETLK with F_WRLCK; 0 if granted, else the errno."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack("hhqqhh", fcntl.F_WRLCK, 0, 0, 0, 0, 0))
        return 0
    except OSError as e:
        return e.errno or -1
    finally:
        os.close(fd)


def wait_gone(pid: int, timeout: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.mark.parametrize("victim", ["parent", "cli"])
def test_lock_file_is_held_while_the_container_lives_and_freed_when_it_is_killed(
    tmp_path: Path, victim: str
) -> None:
    """bubblewrap's "die with parent" case: SIGKILL the CLI's parent (or the CLI itself,
    which init's parent-death signal ties it to), and the lock is free."""
    lock = tmp_path / "lock"
    lock.touch()
    marker = f"hk-{uuid.uuid4().hex}"
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, sys.executable, "-m", "hakurei", "exec",
         "--die-with-parent", *BASE, "--bind", str(tmp_path), str(tmp_path),
         "--lock-file", str(lock), "--", "/bin/sh", "-c",
         # the program never has init's fd of the lock file
         f"ls -l /proc/self/fd/ | grep -c {lock} ; echo ready; sleep 300; : {marker}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert starter.stdout is not None
        cli = int(starter.stdout.readline())
        assert starter.stdout.readline() == "0\n"
        assert starter.stdout.readline() == "ready\n"
        container = [p for p in processes_with(marker) if p != starter.pid]
        assert write_lock(lock) in (errno.EAGAIN, errno.EACCES)
        if victim == "cli":
            os.kill(cli, signal.SIGKILL)
            assert wait_gone(cli, 10)
    finally:
        starter.kill()
        starter.wait(timeout=60)
    assert wait_gone(cli, 10)
    for pid in container:
        assert wait_gone(pid, 10)
    assert write_lock(lock) == 0


def test_lock_file_that_does_not_exist_fails_setup_in_one_line() -> None:
    r = exec_sh(*BASE, "--lock-file", "/tmp/missing", script="true")
    one_line_125(r, "cannot open lock file /tmp/missing: no such file or directory")


# -- --mqueue ------------------------------------------------------------------------


def test_mqueue_mounts_the_containers_own_message_queues() -> None:
    r = exec_sh(
        *BASE, "--mqueue", "/tmp/mq",
        script="grep ' /tmp/mq ' /proc/self/mountinfo | cut -d' ' -f9; ls -A /tmp/mq | wc -l",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "mqueue\n0\n"), r.stderr


# -- --bind-fd, --ro-bind-fd ---------------------------------------------------------


def test_bind_fd_binds_the_directory_the_fd_is_open_on(tmp_path: Path) -> None:
    (tmp_path / "file-data").write_text("from the fd\n")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = exec_sh(
            *BASE, "--bind-fd", str(fd), "/tmp/b", "--ro-bind-fd", str(fd), "/tmp/ro",
            script="cat /tmp/b/file-data; echo w > /tmp/b/new && echo written; "
            "echo w > /tmp/ro/x 2>/dev/null || echo refused; ls /proc/self/fd | wc -l",
            pass_fds=(fd,),
        )  # fmt: skip
    finally:
        os.close(fd)
    # The program has 0, 1, 2 and ls's own: never the CLI's copies of the fd.
    assert (r.returncode, r.stdout) == (0, "from the fd\nwritten\nrefused\n4\n"), r.stderr
    assert (tmp_path / "new").read_text() == "w\n"


def test_bind_fd_follows_a_directory_renamed_after_it_was_opened(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "f").write_text("moved\n")
    fd = os.open(tmp_path / "old", os.O_PATH | os.O_DIRECTORY)
    try:
        (tmp_path / "old").rename(tmp_path / "new")
        (tmp_path / "old").mkdir()  # a decoy under the old name
        r = exec_sh(*BASE, "--ro-bind-fd", str(fd), "/tmp/b", script="cat /tmp/b/f", pass_fds=(fd,))
    finally:
        os.close(fd)
    assert (r.returncode, r.stdout) == (0, "moved\n"), r.stderr


def test_bind_fd_of_a_removed_directory_fails_in_one_line_and_binds_no_decoy(
    tmp_path: Path,
) -> None:
    """The fd's magic link now reads "/.../gone (deleted)": a directory of that very name
    (or a new "gone") is another inode, and nothing is bound from it."""
    (tmp_path / "gone").mkdir()
    fd = os.open(tmp_path / "gone", os.O_PATH | os.O_DIRECTORY)
    try:
        (tmp_path / "gone").rmdir()
        (tmp_path / "gone").mkdir()
        (tmp_path / "gone (deleted)").mkdir()
        (tmp_path / "gone (deleted)" / "decoy").write_text("decoy")
        r = exec_sh(*BASE, "--ro-bind-fd", str(fd), "/tmp/b", script="ls /tmp/b", pass_fds=(fd,))
    finally:
        os.close(fd)
    one_line_125(r, "removed, or replaced by another file")


def test_bind_fd_that_is_not_open_is_one_line() -> None:
    one_line_125(
        hakurei("exec", *BASE, "--bind-fd", "999", "/tmp/b", "--", "/bin/true"),
        "--bind-fd: fd 999",
    )
