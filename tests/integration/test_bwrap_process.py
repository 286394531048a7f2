"""The process mechanisms ``hakurei bwrap`` maps bubblewrap's options onto (issue 12).

Each is driven as a user would: through the library (``run_sync`` keywords)
where the mechanism is the library's, through ``hakurei exec`` where it hands
the container an fd of the calling process.  What is checked is what the
program (or the caller) sees.
"""

from __future__ import annotations

import errno
import json
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hakurei import capnames
from hakurei.errors import ParamsError

from conftest import BASE, PY, children, exec_sh, hakurei, ok, one_line_125, py, run, sh

# -- 1. --json-status-fd: an exit code only for a program that ran --------------------


def json_status(*argv: str) -> tuple[int, list[dict[str, int]]]:
    r_fd, w_fd = os.pipe()
    try:
        r = hakurei("exec", *BASE, "--json-status-fd", str(w_fd), *argv, pass_fds=(w_fd,))
        os.close(w_fd)
        with os.fdopen(r_fd) as f:
            return r.returncode, [json.loads(line) for line in f]
    finally:
        try:
            os.close(w_fd)
        except OSError:
            pass


def test_json_status_has_the_exit_code_of_a_program_that_ran() -> None:
    status, lines = json_status("--", "/bin/sh", "-c", "exit 42")
    assert status == 42
    assert [list(x) for x in lines] == [["child-pid"], ["exit-code"]]
    assert lines[1] == {"exit-code": 42}


def test_json_status_has_no_exit_code_when_the_program_is_missing() -> None:
    status, lines = json_status("--", "/nonexistent/program")
    assert status == 127
    assert [list(x) for x in lines] == [["child-pid"]]


def test_json_status_has_no_exit_code_when_a_program_name_is_not_in_path() -> None:
    status, lines = json_status("--", "no-such-program-anywhere")
    assert status == 127
    assert [list(x) for x in lines] == [["child-pid"]]


def test_json_status_has_no_exit_code_when_setup_fails_before_exec() -> None:
    status, lines = json_status("--bind", "/nonexistent/source", "/mnt", "--", "/bin/true")
    assert status == 125
    assert [list(x) for x in lines] == [["child-pid"]]


def test_json_status_as_pid_1_has_the_exit_code_only_when_the_exec_worked() -> None:
    status, lines = json_status("--as-pid-1", "--", "/bin/sh", "-c", "exit 42")
    assert (status, lines[1:]) == (42, [{"exit-code": 42}])
    status, lines = json_status("--as-pid-1", "--", "/nonexistent/program")
    assert status == 127
    assert [list(x) for x in lines] == [["child-pid"]]


# -- 2. --as-pid-1 -------------------------------------------------------------------


def test_as_pid_1_program_is_pid_1() -> None:
    r = exec_sh(*BASE, "--as-pid-1", script="echo $$; exit 3")
    assert (r.returncode, r.stdout) == (3, "1\n"), r.stderr


def test_as_pid_1_through_the_library() -> None:
    assert ok(sh("echo $$; cat /proc/1/comm", as_pid_1=True)) == "1\nsh\n"


def test_as_pid_1_through_the_library_returns_the_programs_status() -> None:
    assert sh("exit 3", as_pid_1=True).returncode == 3
    missing = run(["/nonexistent/program"], as_pid_1=True)
    assert missing.returncode == 127


def test_without_as_pid_1_the_program_is_not_pid_1() -> None:
    assert ok(sh("echo $$")) != "1\n"


def test_as_pid_1_gets_the_passed_fds_and_a_new_session() -> None:
    r_fd, w_fd = os.pipe()
    try:
        r = exec_sh(
            *BASE,
            "--as-pid-1",
            "--pass-fd",
            str(w_fd),
            script="echo through >&3; ps -o sid= -p 1",
            pass_fds=(w_fd,),
        )
        os.close(w_fd)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["1"]  # the program's own session, pid 1 inside
        assert os.read(r_fd, 100) == b"through\n"
    finally:
        os.close(r_fd)
        try:
            os.close(w_fd)
        except OSError:
            pass


# -- 3. capabilities kept ------------------------------------------------------------

SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
CAPS_SCRIPT = "grep ^Cap /proc/self/status; echo --; grep ^Cap /proc/1/status"


def sets_of(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in text.splitlines())}


def program_and_init(out: str) -> tuple[dict[str, int], dict[str, int]]:
    program, _, init = out.partition("--\n")
    return sets_of(program), sets_of(init)


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def test_kept_caps_survive_the_exec_of_a_non_root_program_and_init_holds_none() -> None:
    kept = 1 << capnames.number("CAP_NET_BIND_SERVICE") | 1 << capnames.number("sys_chroot")
    program, init = program_and_init(ok(sh(CAPS_SCRIPT, caps=kept)))
    assert os.getuid() != 0
    assert program == dict.fromkeys(SETS, kept)
    assert init == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": kept, "CapAmb": 0}


def test_cap_add_all_then_cap_drop_one_through_exec() -> None:
    r = exec_sh(*BASE, "--cap-add", "ALL", "--cap-drop", "CAP_KILL", script=CAPS_SCRIPT)
    assert r.returncode == 0, r.stderr
    program, init = program_and_init(r.stdout)
    want = ((1 << (last_cap() + 1)) - 1) & ~(1 << capnames.number("KILL"))
    assert program == dict.fromkeys(SETS, want)
    assert (init["CapPrm"], init["CapEff"], init["CapInh"], init["CapAmb"]) == (0, 0, 0, 0)


def test_kept_cap_sys_chroot_works_in_the_container() -> None:
    kept = 1 << capnames.number("CAP_SYS_CHROOT")
    assert ok(sh("/usr/sbin/chroot / /bin/echo chrooted", caps=kept)) == "chrooted\n"
    denied = sh("/usr/sbin/chroot / /bin/echo chrooted")
    assert denied.returncode != 0


def test_as_pid_1_keeps_the_caps_in_pid_1_itself() -> None:
    kept = 1 << capnames.number("CAP_NET_RAW")
    program, init = program_and_init(ok(sh(CAPS_SCRIPT, caps=kept, as_pid_1=True)))
    assert program == init == dict.fromkeys(SETS, kept)


def test_unknown_capability_name_is_one_line() -> None:
    one_line_125(hakurei("exec", "--cap-add", "CAP_NOPE", "--", "true"), "CAP_NOPE")


# -- 4. raw seccomp programs ---------------------------------------------------------

# x86_64 numbers (the suite runs there; the assertion says so if not).
NR_MKDIR, NR_MKDIRAT, NR_SYMLINK, NR_SYMLINKAT = 83, 258, 88, 266
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000

MKDIR = (NR_MKDIR, NR_MKDIRAT)
SYMLINK = (NR_SYMLINK, NR_SYMLINKAT)


def insn(code: int, jt: int, jf: int, k: int) -> bytes:
    """One ``struct sock_filter``: u16 code, u8 jt, u8 jf, u32 k."""
    return struct.pack("=HBBI", code, jt, jf, k)


def fail_with(err: int, *nrs: int) -> bytes:
    """A program that makes the syscalls ``nrs`` fail with ``err``, allowing the rest."""
    assert os.uname().machine == "x86_64"
    prog = insn(BPF_LD_W_ABS, 0, 0, 0)  # seccomp_data.nr
    for i, nr in enumerate(nrs):
        prog += insn(BPF_JEQ_K, len(nrs) - i, 0, nr)  # to the errno return
    prog += insn(BPF_RET_K, 0, 0, RET_ALLOW)
    return prog + insn(BPF_RET_K, 0, 0, RET_ERRNO | err)


PROBE = """
import os
calls = {"mkdir": lambda: os.mkdir("/tmp/d"), "symlink": lambda: os.symlink("x", "/tmp/l")}
for what, call in calls.items():
    try:
        call()
        print(what, 0)
    except OSError as e:
        print(what, e.errno)
"""


def probe(out: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_a_raw_seccomp_program_makes_a_syscall_fail_with_its_errno() -> None:
    out = ok(py(PROBE, seccomp_programs=[fail_with(errno.EXDEV, *MKDIR)]))
    assert probe(out) == {"mkdir": errno.EXDEV, "symlink": 0}


def test_without_a_raw_program_the_probe_succeeds() -> None:
    assert probe(ok(py(PROBE))) == {"mkdir": 0, "symlink": 0}


def test_stacked_raw_programs_all_apply_and_the_last_loaded_decides_ties() -> None:
    first = fail_with(errno.EXDEV, *MKDIR, *SYMLINK)
    second = fail_with(errno.ENOTTY, *MKDIR)
    out = ok(py(PROBE, seccomp_programs=[first, second]))
    assert probe(out) == {"mkdir": errno.ENOTTY, "symlink": errno.EXDEV}


#: x86_64 numbers of what init itself calls to start and reap the program.
NR_CLONE, NR_WAIT4, NR_RT_SIGTIMEDWAIT, NR_CLONE3 = 56, 61, 128, 435

WAITING = """
import os
try:
    os.waitpid(-1, os.WNOHANG)
except OSError as e:
    print(e.errno)
"""


def test_a_raw_program_that_forbids_what_init_needs_binds_the_program_only() -> None:
    """bubblewrap's allowlists forbid clone and wait4: init must still start and reap."""
    deny = fail_with(errno.ENOSYS, NR_CLONE, NR_WAIT4, NR_RT_SIGTIMEDWAIT, NR_CLONE3)
    assert ok(py(WAITING, seccomp_programs=[deny])) == f"{errno.ENOSYS}\n"
    assert ok(py(WAITING)) == f"{errno.ECHILD}\n"


def with_program_fds(*programs: bytes) -> list[int]:
    fds = []
    for program in programs:
        with tempfile.TemporaryFile() as f:
            f.write(program)
            f.seek(0)
            fds.append(os.dup(f.fileno()))
    return fds


def test_add_seccomp_fd_stacks_programs_through_exec() -> None:
    a, b = with_program_fds(fail_with(errno.EXDEV, *SYMLINK), fail_with(errno.ENOTTY, *MKDIR))
    try:
        r = hakurei(
            "exec", *BASE, "--add-seccomp-fd", str(a), "--add-seccomp-fd", str(b),
            "--", PY, "-I", "-S", "-c", PROBE, pass_fds=(a, b),
        )  # fmt: skip
    finally:
        os.close(a)
        os.close(b)
    assert r.returncode == 0, r.stderr
    assert probe(r.stdout) == {"mkdir": errno.ENOTTY, "symlink": errno.EXDEV}


def test_seccomp_fd_and_add_seccomp_fd_are_not_combined() -> None:
    a, b = with_program_fds(fail_with(errno.EXDEV, *MKDIR), fail_with(errno.EXDEV, *MKDIR))
    try:
        r = hakurei(
            "exec", "--seccomp-fd", str(a), "--add-seccomp-fd", str(b), "--", "true",
            pass_fds=(a, b),
        )  # fmt: skip
    finally:
        os.close(a)
        os.close(b)
    one_line_125(r, "--add-seccomp-fd cannot be combined with --seccomp-fd")


def test_a_seccomp_program_that_is_not_whole_instructions_is_refused() -> None:
    (a,) = with_program_fds(fail_with(errno.EXDEV, *MKDIR)[:-3])
    try:
        r = hakurei("exec", "--add-seccomp-fd", str(a), "--", "true", pass_fds=(a,))
    finally:
        os.close(a)
    one_line_125(r, "not a non-zero multiple of 8")
    with pytest.raises(ParamsError, match="multiple of 8"):
        sh("true", seccomp_programs=[b"1234"])


# -- 5. --disable-userns / --assert-userns-disabled ----------------------------------
# Without a syscall filter: hakurei's presets refuse new user namespaces by
# themselves, which would hide whether the mechanism works (bwrap has none).


def test_disable_userns_leaves_the_program_unable_to_create_a_user_namespace() -> None:
    r = exec_sh(
        *BASE,
        "--disable-userns",
        "--no-seccomp",
        script="unshare -U true && echo created; echo 100 > /proc/sys/user/max_user_namespaces"
        " || echo cannot raise; unshare -U true && echo created; id -u",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["cannot raise", str(os.getuid())], r.stderr


def test_without_disable_userns_the_program_can_create_one() -> None:
    assert (
        exec_sh(*BASE, "--no-seccomp", script="unshare -U true && echo created").stdout
        == "created\n"
    )


def test_hakurei_inside_a_disabled_container_cannot_start_one() -> None:
    # No private /tmp: the interpreter and its hakurei may live there.
    inner = f"{sys.executable} -m hakurei exec --ro-bind / / -- /bin/true"
    r = hakurei(
        "exec", "--ro-bind", "/", "/", "--proc", "/proc", "--disable-userns", "--no-seccomp", "--",
        "/bin/sh", "-c", f"{inner}; echo $?",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == "125\n"
    assert "cannot unshare namespaces" in r.stderr


def test_assert_userns_disabled_refuses_a_container_that_can_create_one() -> None:
    one_line_125(
        exec_sh(*BASE, "--assert-userns-disabled", "--no-seccomp", script="true"),
        "creation of new user namespaces was not disabled as requested",
    )
    assert (
        exec_sh(*BASE, "--disable-userns", "--assert-userns-disabled", script="true").returncode
        == 0
    )


def test_disable_userns_through_the_library() -> None:
    assert ok(sh("unshare -U true && echo created", seccomp_disable=True)) == "created\n"
    r = sh("unshare -U true", disable_userns=True, seccomp_disable=True)
    assert r.returncode != 0
    assert b"unshare" in (r.stderr or b"")


# -- 6. fds the container holds ------------------------------------------------------


def test_fds_of_the_caller_are_refused_by_the_library() -> None:
    for name in ("sync_fd", "block_fd", "userns_block_fd"):
        with pytest.raises(ParamsError, match=f"{name} is an fd of the calling process"):
            sh("true", **{name: 5})  # type: ignore[arg-type]


def test_a_held_fd_given_for_another_use_is_one_line() -> None:
    r_fd, w_fd = os.pipe()
    try:
        r = hakurei("exec", "--pass-fd", str(w_fd), "--sync-fd", str(w_fd), "--", "/bin/true",
                    pass_fds=(w_fd,))  # fmt: skip
    finally:
        os.close(r_fd)
        os.close(w_fd)
    one_line_125(r, f"--sync-fd: fd {w_fd} is given for another use as well")


def test_sync_fd_is_held_by_the_container_not_the_program_and_ends_with_it() -> None:
    r_fd, w_fd = os.pipe()
    ino = os.fstat(w_fd).st_ino
    p = subprocess.Popen(
        [sys.executable, "-m", "hakurei", "exec", *BASE, "--sync-fd", str(w_fd), "--",
         "/bin/sh", "-c", "ls -l /proc/self/fd/; echo ready; read x || true"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(w_fd,),
    )  # fmt: skip
    os.close(w_fd)
    try:
        assert p.stdout is not None and p.stdin is not None
        listing = []
        while (line := p.stdout.readline()) != "ready\n":
            assert line, "the program ended early"
            listing.append(line)
        # The program runs: the write end is still open somewhere (in init).
        assert select.select([r_fd], [], [], 0)[0] == []
        assert f"pipe:[{ino}]" not in "".join(listing)  # the program does not hold it
        p.stdin.close()
        assert p.wait(timeout=60) == 0
        assert os.read(r_fd, 1) == b""  # end of file: the container is gone
    finally:
        os.close(r_fd)
        if p.poll() is None:
            p.kill()
            p.wait()


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def wait_blocked_before_the_filter(pid: int) -> None:
    """Until init sleeps between no_new_privs and its syscall filter: where --block-fd waits.

    Without the block init passes that point in microseconds, running, and
    this fails at the deadline instead; the deadline bounds a failure only.
    """
    deadline = time.monotonic() + 30
    while True:
        st = status_of(pid)
        if st["State"].startswith("S") and st["NoNewPrivs"] == "1" and st["Seccomp"] == "0":
            return
        assert time.monotonic() < deadline, f"init never waited on the block fd: {st}"
        time.sleep(0.001)


def test_block_fd_holds_the_program_until_the_caller_writes() -> None:
    block_r, block_w = os.pipe()
    info_r, info_w = os.pipe()
    ino = os.fstat(block_r).st_ino
    p = subprocess.Popen(
        [sys.executable, "-m", "hakurei", "exec", *BASE,
         "--block-fd", str(block_r), "--info-fd", str(info_w), "--",
         "/bin/sh", "-c", "echo started; ls -l /proc/self/fd/"],
        stdout=subprocess.PIPE, text=True, pass_fds=(block_r, info_w),
    )  # fmt: skip
    os.close(block_r)
    os.close(info_w)
    try:
        with os.fdopen(info_r) as f:
            pid = json.load(f)["child-pid"]
        wait_blocked_before_the_filter(pid)
        assert children(pid) == []  # and no program yet
        os.write(block_w, b"x")
        out, _ = p.communicate(timeout=60)
    finally:
        os.close(block_w)
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    assert out.startswith("started\n")
    assert f"pipe:[{ino}]" not in out  # init closed it; the program never had it


def test_userns_block_fd_lets_the_caller_write_the_id_maps() -> None:
    block_r, block_w = os.pipe()
    info_r, info_w = os.pipe()
    p = subprocess.Popen(
        [sys.executable, "-m", "hakurei", "exec", *BASE, "--userns-block-fd", str(block_r),
         "--info-fd", str(info_w), "--", "/bin/sh", "-c", "id -u; id -g"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(block_r, info_w),
    )  # fmt: skip
    os.close(block_r)
    os.close(info_w)
    try:
        with os.fdopen(info_r) as f:
            pid = json.load(f)["child-pid"]
        Path(f"/proc/{pid}/uid_map").write_text(f"4242 {os.getuid()} 1\n")
        Path(f"/proc/{pid}/setgroups").write_text("deny\n")
        Path(f"/proc/{pid}/gid_map").write_text(f"4343 {os.getgid()} 1\n")
        os.write(block_w, b"x")
        out, err = p.communicate(timeout=60)
    finally:
        os.close(block_w)
        if p.poll() is None:
            p.kill()
            p.wait()
    assert (p.returncode, out) == (0, "4242\n4343\n"), err


def test_userns_block_fd_needs_info_fd() -> None:
    one_line_125(hakurei("exec", "--userns-block-fd", "1", "--", "true"), "stdio")
    r_fd, w_fd = os.pipe()
    try:
        r = hakurei("exec", "--userns-block-fd", str(r_fd), "--", "true", pass_fds=(r_fd,))
    finally:
        os.close(r_fd)
        os.close(w_fd)
    one_line_125(r, "--userns-block-fd requires --info-fd")


# -- 7. joining namespaces -----------------------------------------------------------


def test_userns_joins_the_user_namespace_of_another_container() -> None:
    info_r, info_w = os.pipe()
    first = subprocess.Popen(
        [sys.executable, "-m", "hakurei", "exec", *BASE, "--info-fd", str(info_w), "--",
         "/bin/sh", "-c", "readlink /proc/self/ns/user; read x || true"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(info_w,),
    )  # fmt: skip
    os.close(info_w)
    try:
        assert first.stdout is not None and first.stdin is not None
        with os.fdopen(info_r) as f:
            init = json.load(f)["child-pid"]
        theirs = first.stdout.readline()
        (program,) = children(init)  # its program: dumpable, so its ns files are ours to open
        fd = os.open(f"/proc/{program}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            joined = hakurei(
                "exec", *BASE, "--userns", str(fd), "--",
                "/bin/sh", "-c", "readlink /proc/self/ns/user; id -u",
                pass_fds=(fd,),
            )  # fmt: skip
        finally:
            os.close(fd)
        fresh = exec_sh(*BASE, script="readlink /proc/self/ns/user")
    finally:
        if first.stdin is not None:
            first.stdin.close()
        first.wait(timeout=60)
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout == f"{theirs}{os.getuid()}\n"
    assert fresh.stdout != theirs  # without --userns: a user namespace of its own


def test_userns_of_a_namespace_that_is_not_ours_to_join_is_one_line() -> None:
    fd = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)  # our own: not below it
    try:
        r = hakurei("exec", *BASE, "--userns", str(fd), "--", "/bin/true", pass_fds=(fd,))
    finally:
        os.close(fd)
    one_line_125(r, "cannot join the user namespace of userns fd")


def test_userns_is_not_combined_with_disable_userns() -> None:
    fd = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        r = hakurei("exec", "--userns", str(fd), "--disable-userns", "--", "/bin/true",
                    pass_fds=(fd,))  # fmt: skip
    finally:
        os.close(fd)
    one_line_125(r, "--userns goes with neither")


class Running:
    """A container whose program waits on stdin: its shim, init and program pids."""

    def __init__(self, *options: str, script: str) -> None:
        info_r, info_w = os.pipe()
        self.p = subprocess.Popen(
            [sys.executable, "-m", "hakurei", "exec", *BASE, *options,
             "--info-fd", str(info_w), "--", "/bin/sh", "-c", f"{script}; read x || true"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(info_w,),
        )  # fmt: skip
        os.close(info_w)
        with os.fdopen(info_r) as f:
            self.init = json.load(f)["child-pid"]
        assert self.p.stdout is not None
        self.first_line = self.p.stdout.readline()  # the program runs
        (self.program,) = children(self.init)

    def ns(self, pid: int, kind: str) -> int:
        return os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()
        self.p.wait(timeout=60)


def test_userns2_puts_the_program_in_a_user_namespace_below_the_joined_one() -> None:
    # The first container's own user namespace (its shim's) and the nested one
    # --disable-userns made for its program, which is below it.
    first = Running("--disable-userns", script="readlink /proc/self/ns/user")
    try:
        outer, nested = first.ns(first.p.pid, "user"), first.ns(first.program, "user")
        try:
            r = hakurei(
                "exec", *BASE, "--userns", str(outer), "--userns2", str(nested), "--",
                "/bin/sh", "-c", "readlink /proc/self/ns/user; ls -l /proc/self/fd/",
                pass_fds=(outer, nested),
            )  # fmt: skip
            inode = os.fstat(nested).st_ino
        finally:
            os.close(outer)
            os.close(nested)
    finally:
        first.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == first.first_line.strip()
    assert f"-> user:[{inode}]" not in r.stdout  # the fd was init's to use, not the program's


def test_pidns_starts_the_container_in_another_containers_pid_namespace() -> None:
    first = Running(script="readlink /proc/self/ns/pid")
    try:
        user, pid = first.ns(first.program, "user"), first.ns(first.program, "pid")
        try:
            r = hakurei(
                "exec", *BASE, "--userns", str(user), "--pidns", str(pid), "--",
                "/bin/sh", "-c", "readlink /proc/self/ns/pid; ls /proc | grep -c '^[0-9]'",
                pass_fds=(user, pid),
            )  # fmt: skip
        finally:
            os.close(user)
            os.close(pid)
    finally:
        first.close()
    assert r.returncode == 0, r.stderr
    same, count = r.stdout.splitlines()
    assert same == first.first_line.strip()
    # the first container's init and program, this one's init, program and ls at least
    assert int(count) >= 5


def test_pidns_of_a_namespace_not_ours_is_one_line() -> None:
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        r = hakurei("exec", *BASE, "--pidns", str(fd), "--", "/bin/true", pass_fds=(fd,))
    finally:
        os.close(fd)
    one_line_125(r, "cannot join the pid namespace of pidns fd")
