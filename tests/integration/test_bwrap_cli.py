"""``hakurei bwrap``: bubblewrap's command line and defaults, seen from inside real containers.

Each test runs the front end the way a bubblewrap user would: through a symlink
named ``bwrap`` to the installed ``hakurei`` script, as the ordinary user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: bubblewrap's own test suite's everyday root: the host, a private /tmp.
RUN = ("--bind", "/", "/", "--tmpfs", "/tmp")
#: The host as it is, for tests whose files live under the host's /tmp.
HOST = ("--bind", "/", "/")


@pytest.fixture(scope="module")
def bwrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``bwrap`` symlink to the installed ``hakurei`` script, as a user would make one."""
    script = Path(sys.executable).parent / "hakurei"
    assert script.is_file(), script
    link = tmp_path_factory.mktemp("bin") / "bwrap"
    link.symlink_to(script)
    return str(link)


def run(bwrap: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bwrap, *args], capture_output=True, text=True, timeout=60, check=False, **kw
    )  # type: ignore[call-overload, no-any-return]


def sh(bwrap: str, *options: str, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return run(bwrap, *RUN, *options, "sh", "-c", script, **kw)


def failed(r: subprocess.CompletedProcess[str], line: str, status: int = 1) -> None:
    """bubblewrap's way to fail: one ``bwrap:`` line, exit 1."""
    assert r.returncode == status, r
    assert r.stderr == f"bwrap: {line}\n", r.stderr


# -- what bwrap prints ------------------------------------------------------------------


def test_help_names_what_was_run_and_version_is_bubblewraps(bwrap: str) -> None:
    r = run(bwrap, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {bwrap} [OPTIONS...] [--] COMMAND")
    assert "--ro-bind SRC DEST" in r.stdout and "--hakurei-status" in r.stdout
    assert run(bwrap, "--version").stdout == "bubblewrap 0.11.1\n"


def test_bad_options_are_one_bwrap_line_and_exit_1(bwrap: str) -> None:
    failed(run(bwrap, "--frobnicate", "true"), "Unknown option --frobnicate")
    failed(run(bwrap, "--bind", "/"), "--bind takes two arguments")
    failed(run(bwrap, *RUN), "No command specified")
    failed(
        run(bwrap, "--hostname", "x", *RUN, "true"), "Specifying --hostname requires --unshare-uts"
    )
    r = run(bwrap, "--hakurei-status", "--frobnicate", "true")
    assert (r.returncode, r.stderr) == (125, "bwrap: Unknown option --frobnicate\n")


@pytest.mark.parametrize(
    "size", ["0", "123bogus", "", "-12345678", " -12345678", str(2**64), str(2**63 + 1)]
)
def test_bogus_tmpfs_sizes_are_refused(bwrap: str, size: str) -> None:
    r = run(bwrap, *RUN, "--size", size, "--tmpfs", "/tmp/a", "true")
    assert r.returncode == 1 and r.stderr.startswith("bwrap: --size "), r


def test_perms_and_size_apply_once_and_only_to_the_next_op(bwrap: str) -> None:
    r = run(bwrap, *RUN, "--perms", "0640", "--perms", "0640", "--tmpfs", "/tmp/a", "true")
    failed(r, "--perms given twice for the same action")
    r = run(bwrap, *RUN, "--size", "4096", "--size", "4096", "--tmpfs", "/tmp/a", "true")
    failed(r, "--size given twice for the same action")
    r = run(bwrap, *RUN, "--perms", "0700", "--symlink", "a", "/tmp/b", "true")
    failed(r, "--perms must be followed by an option that creates a file")
    r = sh(
        bwrap, "--size", "0x100000", "--perms", "01777", "--tmpfs", "/tmp/t",
        script="stat -c %a /tmp/t; df --output=size --block-size=1K /tmp/t | tail -1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1777", "1024"]


def test_a_warning_for_a_repeated_chdir_and_level_prefix_marks_levels(bwrap: str) -> None:
    r = run(bwrap, *RUN, "--chdir", "/", "--chdir", "/", "true")
    assert (r.returncode, r.stderr) == (0, "bwrap: Only the last --chdir option will take effect\n")
    r = run(bwrap, "--level-prefix", *RUN, "--chdir", "/", "--chdir", "/", "true")
    assert r.stderr == "<4>bwrap: Only the last --chdir option will take effect\n"
    r = run(bwrap, "--level-prefix", "--frobnicate")
    assert (r.returncode, r.stderr) == (1, "<3>bwrap: Unknown option --frobnicate\n")


# -- bubblewrap's defaults --------------------------------------------------------------


def test_environment_is_inherited_and_edited_in_order_with_pwd_set(
    bwrap: str, tmp_path: Path
) -> None:
    env = {**os.environ, "FOO": "wrong", "BAR": "baz", "GONE": "x"}
    r = run(
        bwrap, *HOST, "--setenv", "FOO", "bar", "--unsetenv", "GONE",
        "sh", "-c", 'echo "$FOO$BAR${GONE-unset}"; echo "$PWD"', env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.stdout.splitlines() == ["barbazunset", str(tmp_path)], r.stderr
    r = run(bwrap, *HOST, "--clearenv", "/usr/bin/env", env=env, cwd=tmp_path)
    assert r.stdout == f"PWD={tmp_path}\n", r.stderr


def test_working_directory_is_kept_else_home_else_root(bwrap: str, tmp_path: Path) -> None:
    r = run(bwrap, *HOST, "pwd", cwd=tmp_path)
    assert r.stdout == f"{tmp_path}\n", r.stderr
    hidden = (
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    )  # fmt: skip
    r = run(bwrap, *hidden, "--dir", "/home/me", "--setenv", "HOME", "/home/me", "/bin/sh",
            "-c", "pwd", cwd=tmp_path)  # fmt: skip
    assert r.stdout == "/home/me\n", r.stderr
    r = run(bwrap, *hidden, "--unsetenv", "HOME", "/bin/sh", "-c", "pwd", cwd=tmp_path)
    assert r.stdout == "/\n", r.stderr


def test_network_is_shared_unless_unshared(bwrap: str) -> None:
    host = os.stat("/proc/self/ns/net").st_ino
    probe = "stat -L -c %i /proc/self/ns/net"
    assert sh(bwrap, script=probe).stdout == f"{host}\n"
    assert sh(bwrap, "--unshare-net", script=probe).stdout != f"{host}\n"
    assert sh(bwrap, "--unshare-all", script=probe).stdout != f"{host}\n"
    assert sh(bwrap, "--unshare-all", "--share-net", script=probe).stdout == f"{host}\n"


def test_the_callers_session_is_kept_unless_new_session(bwrap: str) -> None:
    # A session led from outside the pid namespace reads as 0 inside it.
    probe = ("python3", "-c", "import os; print(os.getsid(0) == os.getpid(), os.getsid(0) == 0)")
    assert run(bwrap, *RUN, *probe).stdout == "False True\n"
    assert run(bwrap, *RUN, "--new-session", *probe).stdout == "True False\n"


def test_no_syscall_filter_unless_asked_and_no_capabilities_ever(bwrap: str) -> None:
    probe = "grep -E '^(Seccomp|NoNewPrivs|CapEff|CapPrm|CapBnd):' /proc/self/status"
    r = sh(bwrap, script=probe)
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert fields["Seccomp"] == "0" and fields["NoNewPrivs"] == "1", r.stdout
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == "0000000000000000"
    r = sh(bwrap, "--hakurei-seccomp", "strict", script=probe)
    assert "Seccomp:\t2" in r.stdout, r.stdout
    r = run(bwrap, *RUN, "--hakurei-seccomp", "nonsense", "true")
    assert r.returncode == 1 and r.stderr.startswith("bwrap: --hakurei-seccomp: "), r


def test_program_status_and_signal_death_pass_through(bwrap: str) -> None:
    assert sh(bwrap, script="exit 42").returncode == 42
    assert sh(bwrap, script="kill -TERM $$").returncode == 128 + 15


# -- the program --------------------------------------------------------------------------


def test_argv0_and_a_program_named_like_an_option_after_the_separator(
    bwrap: str, tmp_path: Path
) -> None:
    assert run(bwrap, *RUN, "--argv0", "right", "sh", "-c", "echo $0").stdout == "right\n"
    odd = tmp_path / "--odd-name--"
    odd.write_text("#!/bin/sh\necho hello\n")
    odd.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    assert run(bwrap, *HOST, "--", "--odd-name--", env=env).stdout == "hello\n"
    r = run(bwrap, *RUN, "--", "--dev-bind", "/dev", "/dev", "sh", "-c", "echo ran")
    assert r.returncode != 0 and "ran" not in r.stdout


def test_args_fd_inserts_nul_separated_options(bwrap: str) -> None:
    r_fd, w_fd = os.pipe()
    os.write(w_fd, b"--dir\0/tmp/from-args\0--setenv\0X\0y\0")
    os.close(w_fd)
    try:
        r = run(bwrap, *RUN, "--args", str(r_fd), "sh", "-c", 'test -d /tmp/from-args && echo "$X"',
                pass_fds=(r_fd,))  # fmt: skip
    finally:
        os.close(r_fd)
    assert r.stdout == "y\n", r.stderr


def test_proc_self_exe_starts_this_front_end_again(bwrap: str) -> None:
    r = run(bwrap, "--bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--",
            "/proc/self/exe", "--bind", "/", "/", "--tmpfs", "/tmp", "sh", "-c",
            "echo nested; test -d /tmp && ls -A /tmp | wc -l")  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "nested\n0\n"), r.stderr


def test_info_and_json_status_fds_carry_bwraps_keys(bwrap: str, tmp_path: Path) -> None:
    info, status = tmp_path / "info.json", tmp_path / "status.json"
    with info.open("w") as fi, status.open("w") as fs:
        r = subprocess.run(
            f'{bwrap} --unshare-all --bind / / --proc /proc --info-fd 42 --json-status-fd 43 '
            "-- sh -c 'stat -L -c \"%n %i\" /proc/self/ns/*; exit 42' 42>&{} 43>&{}".format(
                fi.fileno(), fs.fileno()
            ),
            shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60,
            check=False,
            pass_fds=(fi.fileno(), fs.fileno()),
        )  # fmt: skip
    assert r.returncode == 42, r.stderr
    inside = dict(line.rsplit(" ", 1) for line in r.stdout.splitlines())
    got = json.loads(info.read_text())
    docs = [json.loads(line) for line in status.read_text().splitlines()]
    assert docs[0] == got and docs[1] == {"exit-code": 42}
    assert got["child-pid"] > 0
    for ns in ("ipc", "mnt", "net", "pid", "uts", "cgroup"):
        assert got[f"{ns}-namespace"] == int(inside[f"/proc/self/ns/{ns}"]), (ns, got)


# -- filesystem options -----------------------------------------------------------------------


def test_relative_sources_are_the_callers_and_relative_destinations_the_roots(
    bwrap: str, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("here\n")
    r = sh(bwrap, "--ro-bind", "data", "tmp/seen", script="cat /tmp/seen/f", cwd=tmp_path)
    assert r.stdout == "here\n", r.stderr


def test_overlay_sources_stack_bottom_first_and_escape_odd_paths(
    bwrap: str, tmp_path: Path
) -> None:
    for d in ("lower1", "lower2", "upper", "work"):
        (tmp_path / d).mkdir()
    (tmp_path / "lower1" / "a").write_text("1")
    (tmp_path / "lower1" / "b").write_text("2")
    (tmp_path / "lower2" / "b").write_text("3")
    r = sh(
        bwrap, "--overlay-src", "lower1", "--overlay-src", "lower2",
        "--overlay", "upper", "work", "/tmp/x",
        script="cat /tmp/x/a /tmp/x/b; printf 5 > /tmp/x/b", cwd=tmp_path,
    )  # fmt: skip
    assert r.stdout == "13", r.stderr
    assert (tmp_path / "upper" / "b").read_text() == "5"
    odd = 'lower ":,\\'
    (tmp_path / odd).mkdir()
    (tmp_path / odd / "a").write_text("1")
    r = sh(bwrap, "--overlay-src", odd, "--tmp-overlay", "/tmp/y",
           script="cat /tmp/y/a; printf 2 > /tmp/y/a; cat /tmp/y/a", cwd=tmp_path)  # fmt: skip
    assert r.stdout == "12", r.stderr
    assert (tmp_path / odd / "a").read_text() == "1"


def test_overlay_option_rules_are_bubblewraps(bwrap: str, tmp_path: Path) -> None:
    failed(run(bwrap, *RUN, "--overlay", "u", "w", "/tmp", "true"),
           "--overlay requires at least one --overlay-src")  # fmt: skip
    failed(run(bwrap, *RUN, "--overlay-src", "/usr", "--ro-overlay", "/tmp", "true"),
           "--ro-overlay requires at least two --overlay-src")  # fmt: skip
    rule = (
        "--overlay-src must be followed by another --overlay-src or one of --overlay, "
        "--tmp-overlay, or --ro-overlay"
    )
    failed(run(bwrap, *RUN, "--overlay-src", "/usr", "--chdir", "/", "true"), rule)
    failed(run(bwrap, *RUN, "--overlay-src", "/usr", "true"), rule)


def test_selinux_labels_are_accepted_and_ignored(bwrap: str) -> None:
    r = sh(bwrap, "--exec-label", "x", "--file-label", "y", script="echo ok")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr


def test_data_files_have_bwraps_modes_and_the_fds_bytes(bwrap: str) -> None:
    script = "for f in /tmp/f /tmp/b /tmp/r; do stat -c %a $f; cat $f; done; echo w >> /tmp/r"
    fds = []
    for data in (b"file\n", b"bind\n", b"ro\n"):
        r_fd, w_fd = os.pipe()
        os.write(w_fd, data)
        os.close(w_fd)
        fds.append(r_fd)
    try:
        r = sh(
            bwrap, "--file", str(fds[0]), "/tmp/f", "--perms", "0640",
            "--bind-data", str(fds[1]), "/tmp/b", "--ro-bind-data", str(fds[2]), "/tmp/r",
            script=script, pass_fds=fds,
        )  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)
    assert r.stdout.splitlines() == ["666", "file", "640", "bind", "600", "ro"], r.stderr
    assert "Read-only file system" in r.stderr


def test_chmod_mqueue_and_bind_fd(bwrap: str, tmp_path: Path) -> None:
    (tmp_path / "shown").write_text("by fd\n")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = sh(
            bwrap, "--dir", "/tmp/d", "--chmod", "1750", "/tmp/d", "--mqueue", "/tmp/mq",
            "--ro-bind-fd", str(fd), "/tmp/byfd",
            script="stat -c %a /tmp/d; stat -f -c %T /tmp/mq; cat /tmp/byfd/shown; "
            "ls /proc/self/fd | wc -l",
            pass_fds=(fd,),
        )  # fmt: skip
    finally:
        os.close(fd)
    lines = r.stdout.splitlines()
    assert lines[:3] == ["1750", "mqueue", "by fd"], r.stderr
    assert int(lines[3]) <= 4  # 0-2 and ls's own: neither the bound fd nor init's copy leaks


def test_lock_file_is_held_while_the_sandbox_runs(bwrap: str, tmp_path: Path) -> None:
    import fcntl

    lock = tmp_path / "lock"
    lock.touch()
    proc = subprocess.Popen(
        [bwrap, *HOST, "--lock-file", str(lock), "sh", "-c", "echo up; read x"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline() == "up\n"
        with lock.open("a") as f:
            with pytest.raises(BlockingIOError):
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=30) == 0
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # granted: the sandbox is gone
    finally:
        proc.kill()
        proc.wait()


def test_a_missing_source_and_a_conflicting_symlink_fail_in_bwraps_words(
    bwrap: str, tmp_path: Path
) -> None:
    r = run(bwrap, *RUN, "--bind", "/source-enoent", "/dest", "true")
    failed(r, "Can't find source path /source-enoent: No such file or directory")
    (tmp_path / "link").symlink_to("/dev/null")
    r = run(bwrap, *HOST, "--symlink", "/dev/full", str(tmp_path / "link"), "true")
    failed(r, f"Can't make symlink at {tmp_path}/link: existing destination is /dev/null")
    r = run(bwrap, "--hakurei-status", *RUN, "--bind", "/source-enoent", "/dest", "true")
    assert r.returncode == 125, r


# -- process options ------------------------------------------------------------------------


def _status_line(text: str, key: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(key)).split()[1]


def test_caps_are_added_and_dropped_in_order_and_unknown_ones_refused(bwrap: str) -> None:
    probe = ("sh", "-c", "grep CapEff /proc/self/status")
    r = run(bwrap, *RUN, "--uid", "0", "--cap-add", "ALL", "--cap-drop", "cap_kill", *probe)
    eff = int(_status_line(r.stdout, "CapEff:"), 16)
    assert eff and not eff & 1 << 5 and eff & 1 << 21, r
    r = run(bwrap, *RUN, "--cap-add", "CAP_SYS_CHROOT", *probe)
    assert int(_status_line(r.stdout, "CapEff:"), 16) == 1 << 18, r
    failed(run(bwrap, *RUN, "--cap-add", "CAP_NONSENSE", "true"), "unknown cap: CAP_NONSENSE")


def test_as_pid_1_needs_unshare_pid_and_makes_the_program_pid_1(bwrap: str) -> None:
    failed(run(bwrap, *RUN, "--as-pid-1", "true"), "Specifying --as-pid-1 requires --unshare-pid")
    r = run(bwrap, *RUN, "--unshare-pid", "--as-pid-1", "sh", "-c", "echo $$")
    assert r.stdout == "1\n", r.stderr
    assert run(bwrap, *RUN, "--unshare-pid", "sh", "-c", "echo $$").stdout != "1\n"


def _fd_with(data: bytes) -> int:
    import tempfile

    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        return os.dup(f.fileno())


def test_seccomp_programs_bind_the_program_not_our_init(bwrap: str) -> None:
    """An allowlist-style program that denies clone and wait4: init still starts and reaps."""
    import errno
    import struct

    def insn(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    nrs = (56, 61, 128, 435)  # x86_64 clone, wait4, rt_sigtimedwait, clone3
    prog = insn(0x20, 0, 0, 0)
    for i, nr in enumerate(nrs):
        prog += insn(0x15, len(nrs) - i, 0, nr)
    prog += insn(0x06, 0, 0, 0x7FFF0000) + insn(0x06, 0, 0, 0x00050000 | errno.ENOSYS)
    code = (
        "import os\ntry:\n    os.waitpid(-1, os.WNOHANG)\nexcept OSError as e:\n    print(e.errno)"
    )
    fd = _fd_with(prog)
    try:
        r = run(bwrap, *RUN, "--seccomp", str(fd), "python3", "-c", code, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert (r.returncode, r.stdout) == (0, f"{errno.ENOSYS}\n"), r.stderr


def test_seccomp_option_errors_are_bwraps(bwrap: str) -> None:
    failed(run(bwrap, *RUN, "--add-seccomp-fd", "-1", "true"), "Invalid fd: -1")
    failed(run(bwrap, *RUN, "--seccomp", "0a", "true"), "Invalid fd: 0a")
    a, b = _fd_with(b""), _fd_with(b"\x01")
    try:
        r = run(bwrap, *RUN, "--add-seccomp-fd", str(a), "--seccomp", str(a), "true",
                pass_fds=(a,))  # fmt: skip
        failed(r, "--seccomp cannot be combined with --add-seccomp-fd")
        r = run(bwrap, *RUN, "--add-seccomp-fd", str(b), "true", pass_fds=(b,))
        failed(r, "Invalid seccomp data, must be multiple of 8")
    finally:
        os.close(a)
        os.close(b)


def test_disable_userns_stops_nested_sandboxes_and_the_assertion_checks_it(bwrap: str) -> None:
    failed(run(bwrap, *RUN, "--disable-userns", "true"), "--disable-userns requires --unshare-user")
    nested = f"{bwrap} --bind / / true"
    r = run(bwrap, "--unshare-user", "--disable-userns", "--dev-bind", "/", "/", "sh", "-c", nested)
    assert r.returncode != 0, r
    r = run(bwrap, "--dev-bind", "/", "/", "sh", "-c", nested)
    assert r.returncode == 0, r.stderr
    r = run(bwrap, "--assert-userns-disabled", "--dev-bind", "/", "/", "true")
    assert r.returncode == 1 and "not disabled" in r.stderr, r


def test_a_program_that_cannot_start_exits_1_without_an_exit_code(
    bwrap: str, tmp_path: Path
) -> None:
    status = tmp_path / "status.json"
    with status.open("w") as f:
        r = run(bwrap, *RUN, "--json-status-fd", str(f.fileno()), "/nonexistent",
                pass_fds=(f.fileno(),))  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("bwrap: "), r
    assert "exit-code" not in status.read_text()
    r = run(bwrap, "--hakurei-status", *RUN, "/nonexistent")
    assert r.returncode == 127, r


def test_sync_fd_reads_eof_once_the_sandbox_is_gone(bwrap: str) -> None:
    import select

    r_fd, w_fd = os.pipe()
    proc = subprocess.Popen(
        [bwrap, *RUN, "--sync-fd", str(w_fd), "sh", "-c", "echo up; read x"],
        pass_fds=(w_fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    os.close(w_fd)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"up\n"
        assert select.select([r_fd], [], [], 0)[0] == []  # held while the sandbox runs
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert os.read(r_fd, 1) == b""  # blocks until init, the last holder, is gone
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(r_fd)
        proc.kill()
        proc.wait()


def test_userns_block_fd_rules_are_bwraps(bwrap: str) -> None:
    r_fd, w_fd = os.pipe()
    try:
        r = run(bwrap, *RUN, "--userns-block-fd", str(r_fd), "true", pass_fds=(r_fd,))
        failed(r, "--userns-block-fd requires --unshare-user")
        r = run(bwrap, *RUN, "--unshare-user", "--userns-block-fd", str(r_fd), "true",
                pass_fds=(r_fd,))  # fmt: skip
        failed(r, "--userns-block-fd requires --info-fd")
    finally:
        os.close(r_fd)
        os.close(w_fd)


def test_child_pid_namespaces_open_to_the_caller_but_init_stays_closed_to_the_program(
    bwrap: str,
) -> None:
    """With --info-fd init is open to the caller (bwrap's child-pid), never to the program."""
    r_fd, w_fd = os.pipe()
    script = (
        "cat /proc/1/environ >/dev/null 2>&1 && echo environ-read || echo environ-denied; "
        "kill -0 1 2>/dev/null && echo signal-sent || echo signal-denied; echo up; read x"
    )
    proc = subprocess.Popen(
        [bwrap, *RUN, "--proc", "/proc", "--dev", "/dev", "--unshare-pid",
         "--info-fd", str(w_fd), "sh", "-c", script],
        pass_fds=(w_fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(w_fd)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with os.fdopen(r_fd) as f:
            child = json.loads(f.read())["child-pid"]
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines == ["environ-denied\n", "signal-denied\n", "up\n"]
        fd = os.open(f"/proc/{child}/ns/user", os.O_RDONLY)  # the caller may: as with bwrap
        os.close(fd)
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    r = run(
        bwrap, *RUN, "--proc", "/proc", "sh", "-c", "cat /proc/1/environ >/dev/null && echo read"
    )
    assert r.stdout == "", r  # without --info-fd init is not dumpable at all


# -- every other option, once, through the front end ------------------------------------------

EVERY = [
    (("--dir", "/tmp/a/b"), "stat -c %a /tmp/a /tmp/a/b", "755\n755\n"),
    (("--perms", "0700", "--dir", "/tmp/p/q"), "stat -c %a /tmp/p /tmp/p/q", "700\n700\n"),
    (("--tmpfs", "/tmp/t"), "stat -f -c %T /tmp/t", "tmpfs\n"),
    (("--proc", "/tmp/proc"), "test -r /tmp/proc/self/status && echo proc", "proc\n"),
    (("--dev", "/tmp/dev"), "test -c /tmp/dev/null && readlink /tmp/dev/stdout",
     "/proc/self/fd/1\n"),
    (("--ro-bind", "/etc", "/tmp/etc"), "touch /tmp/etc/x 2>&1 | grep -c Read-only", "1\n"),
    (("--bind", "/var/tmp", "/tmp/vt", "--remount-ro", "/tmp/vt"),
     "touch /tmp/vt/x 2>&1 | grep -c Read-only", "1\n"),
    (("--bind-try", "/nonexistent", "/tmp/n", "--ro-bind-try", "/etc", "/tmp/e"),
     "test -e /tmp/n || test -d /tmp/e && echo tried", "tried\n"),
    (("--dev-bind", "/dev/null", "/tmp/null", "--dev-bind-try", "/nonexistent", "/tmp/x"),
     "echo x > /tmp/null && echo written", "written\n"),
    (("--symlink", "/etc/hostname", "/tmp/link"), "readlink /tmp/link", "/etc/hostname\n"),
    (("--unshare-uts", "--hostname", "sandbox"), "hostname", "sandbox\n"),
    (("--uid", "4242", "--gid", "4343"), "id -u; id -g", "4242\n4343\n"),
    (("--unshare-ipc", "--unshare-cgroup", "--unshare-cgroup-try", "--unshare-user-try"),
     "echo accepted", "accepted\n"),
    (("--die-with-parent",), "echo fine", "fine\n"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "script", "expected"), EVERY, ids=[e[0][0] for e in EVERY])
def test_each_filesystem_and_namespace_option_through_the_front_end(
    bwrap: str, options: tuple[str, ...], script: str, expected: str
) -> None:
    r = sh(bwrap, *options, script=script)
    assert (r.returncode, r.stdout) == (0, expected), r.stderr


def test_block_fd_holds_the_program_until_the_caller_writes(bwrap: str) -> None:
    import select

    r_fd, w_fd = os.pipe()
    proc = subprocess.Popen(
        [bwrap, *RUN, "--block-fd", str(r_fd), "echo", "ran"], pass_fds=(r_fd,),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    os.close(r_fd)
    assert proc.stdout is not None
    try:
        # Nothing on stdout while the block holds (a bounded look for an absence; the
        # exact point init waits at is proven in test_bwrap_process.py).
        assert select.select([proc.stdout], [], [], 0.3)[0] == []
        os.write(w_fd, b"x")
        assert proc.stdout.read() == b"ran\n"
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(w_fd)
        proc.kill()
        proc.wait()


def test_userns_and_pidns_join_another_sandbox_through_its_child_pid(
    bwrap: str, tmp_path: Path
) -> None:
    """bubblewrap's way: --info-fd's child-pid, then /proc/PID/ns/* as --userns and --pidns."""
    r_fd, w_fd = os.pipe()
    first = subprocess.Popen(
        [bwrap, *RUN, "--proc", "/proc", "--unshare-pid", "--info-fd", str(w_fd), "sh", "-c",
         "readlink /proc/self/ns/user /proc/self/ns/pid; read x"],
        pass_fds=(w_fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(w_fd)
    assert first.stdin is not None and first.stdout is not None
    try:
        with os.fdopen(r_fd) as f:
            child = json.loads(f.read())["child-pid"]
        want = [first.stdout.readline(), first.stdout.readline()]
        user = os.open(f"/proc/{child}/ns/user", os.O_RDONLY)
        pid = os.open(f"/proc/{child}/ns/pid", os.O_RDONLY)
        try:
            r = run(bwrap, *RUN, "--proc", "/proc", "--userns", str(user), "--pidns", str(pid),
                    "readlink", "/proc/self/ns/user", "/proc/self/ns/pid",
                    pass_fds=(user, pid))  # fmt: skip
        finally:
            os.close(user)
            os.close(pid)
        assert r.stdout.splitlines(keepends=True) == want, r.stderr
    finally:
        first.stdin.write("\n")
        first.stdin.flush()
        first.wait(timeout=30)


def test_the_sandbox_ends_with_the_program_silently_killing_what_it_left(bwrap: str) -> None:
    r = sh(bwrap, "--dev", "/dev", script="sleep 1000 & exit 3")
    assert (r.returncode, r.stderr) == (3, "")
