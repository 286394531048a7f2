"""``hakurei exec`` as a user runs it: options in order, the default profile, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hakurei.profile import account

from conftest import hakurei

#: The installed command, beside this venv's interpreter (bin/hakurei in the repository).
SCRIPT = os.path.join(os.path.dirname(sys.executable), "hakurei")


def test_readme_example_works() -> None:
    r = hakurei("exec", "--", "/bin/sh", "-c", "id; hostname; ls /")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"uid={os.getuid()}(")
    assert lines[1] == os.uname().nodename
    assert set(lines[2:]) >= {"bin", "dev", "etc", "proc", "tmp", "usr"}
    assert "root" not in lines[2:]  # /home holds only the profile's own empty home (a tmpfs)


def test_console_script_is_installed() -> None:
    r = subprocess.run(
        [SCRIPT, "exec", "--", "/bin/echo", "hi"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (r.returncode, r.stdout) == (0, b"hi\n")


def test_default_profile_is_read_only_with_a_writable_tmp() -> None:
    script = (
        "touch /tmp/ok && echo tmp; touch /x || true; touch /usr/x || true; touch /etc/x || true"
    )
    r = hakurei("exec", "--", "/bin/sh", "-c", script)
    assert r.stdout == "tmp\n"
    assert r.stderr.count("Read-only file system") == 3, r.stderr


def test_default_environment_leaks_nothing_else() -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "SECRET": "x", "TERM": "dumb", "LANG": "C"}
    env["HOME"] = "/host/home"
    r = hakurei("exec", "--", "/usr/bin/env", env=env)
    name, home = account()
    assert sorted(r.stdout.splitlines()) == [
        f"HOME={home}",
        "LANG=C",
        f"LOGNAME={name}",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "TERM=dumb",
        f"USER={name}",
    ]


def test_setenv_and_keep_env() -> None:
    env = {"KEEP": "kept", "DROP": "dropped"}
    r = hakurei("exec", "--setenv", "A", "1", "--keep-env", "KEEP", "--", "/usr/bin/env", env=env)
    lines = r.stdout.splitlines()
    assert "A=1" in lines and "KEEP=kept" in lines
    assert not any(line.startswith("DROP=") for line in lines)


def test_ops_apply_in_command_line_order(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("host file\n")
    place = tmp_path / "placed"
    place.write_text("placed\n")
    r = hakurei(
        "exec",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc",
        "--size", "1048576", "--perms", "1777", "--tmpfs", "/tmp",
        "--perms", "700", "--dir", "/data/private",
        "--bind", str(tmp_path), "/data/host",
        "--place", "/data/placed", str(place),
        "--remount-ro", "/",
        "--hostname", "cli-box",
        "--",
        "/bin/sh", "-c",
        "hostname; cat /data/host/f /data/placed; stat -c %a /tmp /data/private;"
        "grep ' /tmp ' /proc/self/mountinfo; echo w > /data/host/written",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:6] == ["cli-box", "host file", "placed", "1777", "700", lines[5]]
    assert "size=1024k" in lines[5]  # tmpfs omits mode=1777: it is its default
    assert (tmp_path / "written").read_text() == "w\n"  # --bind is writable


def test_ro_bind_is_read_only(tmp_path: Path) -> None:
    r = hakurei(
        "exec", "--ro-bind", "/", "/", "--ro-bind", str(tmp_path), str(tmp_path),
        "--", "/bin/sh", "-c", f"echo x > {tmp_path}/f",
    )  # fmt: skip
    assert r.returncode == 2  # sh: a failed redirection
    assert r.stderr == f"/bin/sh: 1: cannot create {tmp_path}/f: Read-only file system\n"
    assert not (tmp_path / "f").exists()


def test_bind_try_skips_a_missing_source() -> None:
    r = hakurei(
        "exec", "--ro-bind", "/", "/", "--ro-bind-try", "/nonexistent", "/opt/x", "--",
        "/bin/true",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_verbose_prints_init_steps() -> None:
    r = hakurei("exec", "-v", "--", "/bin/true")
    assert r.returncode == 0
    assert 'init: mounting "/usr" flags 0x4005' in r.stderr
    assert 'init: remounting "/" flags 0x1' in r.stderr
    assert "init: initial process exited with code 0" in r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bind", "/nonexistent", "/x", "--", "/bin/true"], "/nonexistent"),
        (["--bind", "relative", "/x", "--", "/bin/true"], 'path "relative" is not absolute'),
        (["--tmpfs", "tmp", "--", "/bin/true"], 'path "tmp" is not absolute'),
        (["--perms", "9z", "--tmpfs", "/tmp", "--", "/bin/true"], "not an octal mode"),
        (["--size", "-1", "--tmpfs", "/tmp", "--", "/bin/true"], "negative"),
        (["--seccomp", "bogus", "--", "/bin/true"], "bogus"),
        (["--uid", "abc", "--", "/bin/true"], "--uid"),
        (["--frobnicate", "--", "/bin/true"], "--frobnicate"),
        (["--", ""], 'program path "" is empty'),
        (["--place", "/x", "/nonexistent-file", "--", "/bin/true"], "/nonexistent-file"),
    ],
)
def test_bad_input_is_one_line_and_125(args: list[str], needle: str) -> None:
    r = hakurei("exec", *args)
    assert r.returncode == 125, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("hakurei: ") and needle in lines[0].replace("'", '"'), lines
    assert "Traceback" not in r.stderr


def test_exit_statuses_pass_through() -> None:
    assert hakurei("exec", "--", "/bin/sh", "-c", "exit 42").returncode == 42
    assert hakurei("exec", "--", "/bin/sh", "-c", "kill -KILL $$").returncode == 137
    assert hakurei("exec", "--", "/nonexistent").returncode == 127


def exec_imports(*args: str) -> set[str]:
    """The modules ``hakurei exec ARGS`` loads, started as the installed command starts it.

    The command (bin/hakurei) execs this venv's python with ``-I -S`` on
    itself (test_the_command_runs_python_isolated_without_site); ``-I``
    ignores PYTHONPROFILEIMPORTTIME, so the same command line is run here with
    ``-X importtime`` added.
    """
    cmd = [sys.executable, "-I", "-S", "-X", "importtime", SCRIPT, "exec", *args]
    r = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "hakurei.cli" in imported and "hakurei.init.init" in imported  # the probe works
    return imported


def test_exec_imports_nothing_slow() -> None:
    """The command loads no trio, argparse, typing, subprocess, collections, re nor site.

    collections alone cost ~2.5 ms of every start when a runtime
    ``collections.abc`` import slipped into the profile; site (.pth files,
    sitecustomize) ~2 ms, and older pips' console-script wrapper imported re.
    ctypes ~4 ms (its C types come from ``_ctypes`` through hakurei.init.ffi),
    python-prctl's ``_prctl`` ~0.5 ms (prctl goes through libc).
    """
    imported = exec_imports("--", "/bin/true")
    slow = {"trio", "argparse", "typing", "subprocess", "collections", "enum", "termios"}
    slow |= {"re", "site", "importlib.metadata", "msgpack", "ctypes", "_prctl", "types"}
    assert imported & slow == set()
    # The default profile builds no overlay and no auto root: their modules stay out.
    assert {"hakurei.ops.overlay", "hakurei.ops.root"} & imported == set()


def test_exec_imports_only_the_ops_its_options_build() -> None:
    imported = exec_imports("--ro-bind", "/", "/", "--proc", "/proc", "--", "/bin/true")
    ops = {m for m in imported if m.startswith("hakurei.ops.")}
    assert ops == {"hakurei.ops.base", "hakurei.ops._mount", "hakurei.ops.bind", "hakurei.ops.proc"}


def test_the_command_runs_python_isolated_without_site() -> None:
    """``hakurei`` is its own launcher: this venv's python with -I -S, no pip wrapper."""
    cli = subprocess.Popen(
        [SCRIPT, "exec", "--", "/bin/sh", "-c", "echo ready; read x; true"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert cli.stdin is not None and cli.stdout is not None
    try:
        assert cli.stdout.readline() == b"ready\n"
        with open(f"/proc/{cli.pid}/cmdline", "rb") as f:
            argv = f.read().decode().split("\0")[:-1]
    finally:
        cli.stdin.close()
        assert cli.wait(timeout=30) == 0
    python = os.path.join(os.path.dirname(sys.executable), "python3")
    assert argv[:4] == [python, "-I", "-S", SCRIPT]
    assert argv[4:] == ["exec", "--", "/bin/sh", "-c", "echo ready; read x; true"]


def test_the_command_works_through_a_symlink(tmp_path: Path) -> None:
    """A link elsewhere (pipx puts one in ~/.local/bin) still finds the venv's packages."""
    link = tmp_path / "hakurei"
    link.symlink_to(SCRIPT)
    r = subprocess.run(
        [str(link), "exec", "--", "/bin/echo", "linked"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, b"linked\n", b"")


def test_the_cli_is_its_own_shim() -> None:
    """One interpreter: the CLI process forks init directly (no re-exec)."""
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hakurei",
            "exec",
            "--",
            "/bin/sh",
            "-c",
            "echo ready; read x; true",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert cli.stdin is not None and cli.stdout is not None
    try:
        assert cli.stdout.readline() == b"ready\n"
        with open(f"/proc/{cli.pid}/task/{cli.pid}/children") as f:
            children = f.read().split()
        assert len(children) == 1
        with open(f"/proc/{children[0]}/comm") as f:
            assert f.read() == "init\n"
        with open(f"/proc/{cli.pid}/comm") as f:
            assert f.read() == "hakurei-shim\n"
    finally:
        cli.stdin.close()
        assert cli.wait(timeout=30) == 0


def test_internal_entry_rejects_garbage_with_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hakurei", "init"],
        input=os.urandom(300),
        env={"HAKUREI_SETUP": "0"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 125
    assert r.stderr.decode().count("\n") == 1


SETUID = (
    "import os\n"
    "try:\n"
    "    os.setuid(os.getuid()); print('setuid ok')\n"
    "except PermissionError:\n"
    "    print('setuid EPERM')\n"
)


def test_seccomp_rules_file_replaces_the_presets(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"syscall": "setuid", "errno": 1}]')
    rules.chmod(0o644)
    r = hakurei("exec", "--seccomp-rules", str(rules), "--", "/usr/bin/python3", "-c", SETUID)
    assert (r.returncode, r.stdout) == (0, "setuid EPERM\n"), r.stderr
    # Without the custom rule (and without seccomp) the same call goes through.
    r = hakurei("exec", "--no-seccomp", "--", "/usr/bin/python3", "-c", SETUID)
    assert (r.returncode, r.stdout) == (0, "setuid ok\n"), r.stderr


def test_seccomp_rules_naming_an_unknown_syscall_is_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"syscall": "frobnicate", "errno": 1}]')
    r = hakurei("exec", "--seccomp-rules", str(rules), "--", "/bin/true")
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "frobnicate" in r.stderr


def test_presets_by_name() -> None:
    # STRICT has ext + deny-ns: setuid is denied and so is a user namespace.
    r = hakurei("exec", "--seccomp", "strict", "--", "/usr/bin/python3", "-c", SETUID)
    assert r.stdout == "setuid EPERM\n", r.stderr
    r = hakurei("exec", "--seccomp", "strict", "--", "/usr/bin/unshare", "-U", "/bin/true")
    assert (r.returncode, r.stderr) == (1, "unshare: unshare failed: Operation not permitted\n")
    # deny-ns alone: user namespaces still denied, setuid allowed (no ext).
    r = hakurei("exec", "--seccomp", "deny-ns", "--", "/usr/bin/python3", "-c", SETUID)
    assert r.stdout == "setuid ok\n", r.stderr
    r = hakurei("exec", "--seccomp", "deny-ns", "--", "/usr/bin/unshare", "-U", "/bin/true")
    assert (r.returncode, r.stderr) == (1, "unshare: unshare failed: Operation not permitted\n")
    r = hakurei("exec", "--no-seccomp", "--", "/usr/bin/unshare", "-U", "/bin/true")
    assert r.returncode == 0, r.stderr


def test_hakurei_seccomp_prints_the_filter() -> None:
    r = hakurei("seccomp", "--format", "json")
    assert r.returncode == 0, r.stderr
    import json

    rules = json.loads(r.stdout)
    assert len(rules) == 52  # EVERYDAY (STRICT but the 21 id calls), as `hakurei exec` uses
    assert {"syscall": "unshare", "errno": 1} in rules
    r = hakurei("seccomp", "--format", "pfc")
    assert r.returncode == 0 and "unshare" in r.stdout
