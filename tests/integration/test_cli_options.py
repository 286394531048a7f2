"""bubblewrap users' options on ``hakurei exec`` (issue 11 §5), run as the ordinary user."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import BASE, exec_sh, hakurei, one_line_125, processes_with

# -- /dev read-only after all ops --------------------------------------------------


def test_a_device_bound_under_dev_after_dev_works_and_dev_is_still_read_only() -> None:
    r = exec_sh(
        *BASE, "--dev", "/dev", "--dev-bind", "/dev/null", "/dev/hostnull",
        script="echo x > /dev/hostnull && echo bound; touch /dev/shm/f && echo shm; "
        "touch /dev/new 2>&1; grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f6",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["bound", "shm"], r.stdout
    assert "Read-only file system" in lines[2]
    assert lines[3].split(",")[0] == "ro"


def test_dev_bind_try_binds_what_exists_and_skips_what_does_not() -> None:
    r = exec_sh(
        *BASE, "--dev", "/dev",
        "--dev-bind-try", "/dev/null", "/dev/n2", "--dev-bind-try", "/nonexistent", "/dev/x",
        script="echo x > /dev/n2 && echo bound; test -e /dev/x || echo skipped",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "bound\nskipped\n"), r.stderr


# -- file descriptors ----------------------------------------------------------------


def test_pass_fd_gives_the_program_the_fds_as_3_4_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("first\n")
    b.write_text("second\n")
    fa, fb = os.open(b, os.O_RDONLY), os.open(a, os.O_RDONLY)  # fb < fa: order is the options'
    try:
        r = exec_sh(
            *BASE, "--pass-fd", str(fb), "--pass-fd", str(fa),
            script="cat <&3; cat <&4; ls /proc/self/fd | sort -n | tr '\\n' ' '",
            pass_fds=(fa, fb),
        )  # fmt: skip
    finally:
        os.close(fa)
        os.close(fb)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["first", "second"]
    assert r.stdout.splitlines()[2].split() == ["0", "1", "2", "3", "4", "5"]  # 5: ls's own


def test_pass_fd_that_is_not_open_is_one_line() -> None:
    one_line_125(hakurei("exec", "--pass-fd", "999", "--", "/bin/true"), "--pass-fd: fd 999")


def test_args_fd_reads_nul_separated_arguments_in_place() -> None:
    r_fd, w_fd = os.pipe()
    os.write(w_fd, b'--setenv\0A\0from fd\0--\0/bin/sh\0-c\0echo "$A" "$0"\0zero\0')
    os.close(w_fd)
    try:
        r = hakurei("exec", "--args", str(r_fd), pass_fds=(r_fd,))
    finally:
        os.close(r_fd)
    assert (r.returncode, r.stdout) == (0, "from fd zero\n"), r.stderr


def test_info_fd_names_the_containers_pid_1_and_closes() -> None:
    info_r, info_w = os.pipe()
    p = subprocess.Popen(
        [sys.executable, "-m", "hakurei", "exec", "--info-fd", str(info_w), "--",
         "/bin/sh", "-c", "read x; exit 0"],
        stdin=subprocess.PIPE, pass_fds=(info_w,),
    )  # fmt: skip
    os.close(info_w)
    try:
        with os.fdopen(info_r) as f:
            info = json.load(f)  # returns at end of file: nobody else holds the fd
        assert list(info) == ["child-pid"]
        with open(f"/proc/{info['child-pid']}/status") as f:
            nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
        assert nspid == [str(info["child-pid"]), "1"]
    finally:
        assert p.stdin is not None
        p.stdin.close()
        assert p.wait(timeout=60) == 0


def test_json_status_fd_reports_the_pid_then_the_exit_code() -> None:
    r_fd, w_fd = os.pipe()
    try:
        r = hakurei("exec", "--json-status-fd", str(w_fd), "--", "/bin/sh", "-c", "exit 7",
                    pass_fds=(w_fd,))  # fmt: skip
        os.close(w_fd)
        with os.fdopen(r_fd) as f:
            lines = [json.loads(line) for line in f]
    finally:
        try:
            os.close(w_fd)
        except OSError:
            pass
    assert r.returncode == 7, r.stderr
    assert [list(x) for x in lines] == [["child-pid"], ["exit-code"]]
    assert isinstance(lines[0]["child-pid"], int) and lines[1] == {"exit-code": 7}


# -- --die-with-parent ---------------------------------------------------------------

STARTER = """
import subprocess, sys
p = subprocess.Popen(sys.argv[1:])
print(p.pid, flush=True)
p.wait()
"""


def wait_gone(pid: int, timeout: float) -> bool:
    """True once ``pid`` has exited (its pidfd is readable), False after ``timeout``."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.mark.parametrize("die", [True, False])
def test_die_with_parent_ends_the_cli_and_its_container_with_the_parent(die: bool) -> None:
    marker = f"hk-{uuid.uuid4().hex}"
    option = ["--die-with-parent"] if die else []
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, sys.executable, "-m", "hakurei", "exec", *option,
         "--", "/bin/sh", "-c", f"echo ready; sleep 300; : {marker}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert starter.stdout is not None
        cli = int(starter.stdout.readline())
        assert starter.stdout.readline() == "ready\n"
        # The CLI, init (a fork of it) and the shell, at least.
        container = [p for p in processes_with(marker) if p != starter.pid]
        assert cli in container and len(container) >= 3
    finally:
        starter.kill()
        starter.wait(timeout=60)
    try:
        # Without the option the CLI outlives its parent (we then end it ourselves).
        assert wait_gone(cli, 10 if die else 0.5) is die
    finally:
        if not die:
            os.kill(cli, signal.SIGKILL)
    for pid in container:
        assert wait_gone(pid, 10)


def test_bubblewrap_spellings_of_what_hakurei_does_are_accepted() -> None:
    r = hakurei(
        "exec", "--unshare-all", "--unshare-user", "--unshare-user-try", "--unshare-pid",
        "--unshare-ipc", "--unshare-uts", "--unshare-cgroup", "--unshare-cgroup-try",
        "--unshare-net", "--new-session", "--", "/bin/sh", "-c",
        "echo $$; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "2\nlo\n"), r.stderr
    r = hakurei("exec", "--unshare-all", "--share-net", "--", "/bin/true")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--unshare-net", "--share-net"], "--unshare-net conflicts with --share-net"),
        (["--new-session", "--retain-session"], "--new-session conflicts with --retain-session"),
        (["--argv0", "x"], "--argv0 is not supported"),
        (["--overlay-src", "/x"], "--overlay-src is not supported"),
        (["--size", "0", "--tmpfs", "/t"], "--size: 0 is not a positive number"),
        (["--size", "1", "--size", "2", "--tmpfs", "/t"], "--size given twice"),
        (["--perms", "700", "--perms", "755", "--dir", "/t"], "--perms given twice"),
    ],
)
def test_refused_and_conflicting_options_are_one_line(options: list[str], needle: str) -> None:
    one_line_125(hakurei("exec", *options, "--", "/bin/true"), needle)


def test_clearenv_clears_everything_even_our_defaults() -> None:
    env = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C"}
    r = hakurei("exec", "--clearenv", "--setenv", "A", "1", "--", "/usr/bin/env", env=env)
    assert (r.returncode, r.stdout) == (0, "A=1\n"), r.stderr
    r = hakurei("exec", "--setenv", "A", "1", "--unsetenv", "PATH", "--", "/usr/bin/env", env=env)
    names = {line.partition("=")[0] for line in r.stdout.splitlines()}
    assert "PATH" not in names and {"A", "LANG", "TERM"} <= names, r.stderr


# -- directories setup creates -------------------------------------------------------


def test_bind_mount_points_and_their_parents_are_0755() -> None:
    r = exec_sh(
        *BASE, "--ro-bind", "/usr", "/tmp/a/b", "--ro-bind", "/etc/hostname", "/tmp/c/d",
        script="stat -c %a /tmp/a /tmp/c",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "755\n755\n"), r.stderr


def test_perms_apply_to_the_leaf_only_and_parents_lose_what_it_denies() -> None:
    """bubblewrap's rule: a parent is 0755 less the group/other access the leaf denies."""
    r = exec_sh(
        *BASE, "--perms", "0700", "--tmpfs", "/tmp/a/b", "--perms", "1777", "--dir", "/tmp/c/d",
        "--perms", "0750", "--dir", "/tmp/e/f", "--perms", "0604", "--dir", "/tmp/g/h",
        script="stat -c %a /tmp/a /tmp/a/b /tmp/c /tmp/c/d /tmp/e /tmp/g",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "700\n700\n755\n1777\n750\n705\n"), r.stderr


def test_symlink_that_already_exists_identically_is_fine() -> None:
    r = exec_sh(
        *BASE, "--symlink", "usr/bin", "/tmp/l", "--symlink", "usr/bin", "/tmp/l",
        script="readlink /tmp/l",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "usr/bin\n"), r.stderr
    r = exec_sh(*BASE, "--symlink", "a", "/tmp/l", "--symlink", "b", "/tmp/l", script="true")
    assert r.returncode == 125 and "/tmp/l" in r.stderr and r.stderr.count("\n") == 1, r.stderr


# -- --version and --help ------------------------------------------------------------


def test_version_and_help_with_examples_and_exit_statuses() -> None:
    r = hakurei("--version")
    assert r.returncode == 0 and r.stdout.startswith("hakurei ") and r.stdout.count("\n") == 1
    r = hakurei("exec", "--help")
    assert r.returncode == 0
    assert "examples:\n  hakurei exec " in r.stdout and "exit status:" in r.stdout
    for word in ("125", "126", "127", "128+N"):
        assert word in r.stdout
