"""The default profile that users can add to (issue 11 §3), through the library.

``default_profile().extend(ops)`` puts the caller's ops after the profile's
own and before its final read-only remount of ``/``; the profile's ``HOME``
is a writable private tmpfs, and its ``/etc/passwd`` and ``/etc/group`` name
the user with that home, so ``whoami`` and ``git config --global`` work.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from hakurei.ops import BIND_WRITABLE, Ops, Remount
from hakurei.profile import PROFILES, default_profile, none_profile
from hakurei.sync import run_sync

from conftest import ok, run


def sh_in(profile_ops: Ops, script: str, env: dict[str, str], **kw: object) -> str:
    return ok(run(["/bin/sh", "-c", script], profile_ops, env=env, **kw))


def test_a_bind_added_to_the_default_profile_sees_the_hosts_programs_too(tmp_path: Path) -> None:
    # `--bind $PWD $PWD -- python3` failed: the bind replaced the whole profile.
    (tmp_path / "hello.py").write_text("print('hello from', __file__)\n")
    p = default_profile().extend(Ops().bind(str(tmp_path), str(tmp_path)))
    out = ok(run(["/usr/bin/python3", str(tmp_path / "hello.py")], p.finish(), env=p.env))
    assert out == f"hello from {tmp_path}/hello.py\n"


def test_the_added_ops_come_before_the_final_read_only_remount(tmp_path: Path) -> None:
    p = default_profile().extend(Ops().bind(str(tmp_path), str(tmp_path), BIND_WRITABLE))
    ops = p.finish()
    assert isinstance(ops[-1], Remount) and ops[-1].target == "/"
    script = f"touch {tmp_path}/written && echo bind-writable; touch /x 2>/dev/null || echo root-ro"
    assert sh_in(ops, script, p.env) == "bind-writable\nroot-ro\n"
    assert (tmp_path / "written").exists()


def test_extend_can_be_called_again_and_keeps_the_order() -> None:
    p = default_profile()
    p.extend(Ops().mkdir("/work")).extend(Ops().tmpfs("/work", 0, 0o755))
    tail = p.finish()[-3:]
    assert [type(op).__name__ for op in tail] == ["Mkdir", "Tmpfs", "Remount"]
    assert sh_in(p.finish(), "touch /work/f && echo ok", p.env) == "ok\n"


def test_finish_returns_a_fresh_list_each_time() -> None:
    p = default_profile()
    first = p.finish()
    first.append(first[0])
    assert len(p.finish()) == len(first) - 1


def test_profiles_are_named_default_and_none() -> None:
    assert set(PROFILES) >= {"default", "none"}
    assert PROFILES["none"]().finish() == []
    assert [type(op) for op in PROFILES["default"]().finish()] == [
        type(op) for op in default_profile().finish()
    ]


def test_the_none_profile_is_only_the_callers_ops(tmp_path: Path) -> None:
    p = none_profile().extend(
        Ops().bind("/usr", "/usr").link("/bin", "usr/bin").link("/lib", "usr/lib")
    )
    p.extend(Ops().link("/lib64", "usr/lib64").proc("/proc"))
    assert ok(run(["/bin/ls", "/"], p.finish(), env=p.env)).split() == [
        "bin",
        "lib",
        "lib64",
        "proc",
        "usr",
    ]


def test_whoami_names_the_user() -> None:
    p = default_profile()
    name = pwd.getpwuid(os.getuid()).pw_name
    assert sh_in(p.finish(), "whoami; id -un; id -gn", p.env) == f"{name}\n{name}\n{name}\n"


def test_user_logname_and_home_are_set_and_home_is_in_passwd() -> None:
    p = default_profile()
    out = sh_in(p.finish(), 'echo "$USER $LOGNAME $HOME"; getent passwd "$USER"', p.env)
    name, home = p.env["USER"], p.env["HOME"]
    assert (
        out == f"{name} {name} {home}\n{name}:x:{os.getuid()}:{os.getgid()}:{name}:{home}:/bin/sh\n"
    )


def test_home_exists_is_writable_and_private() -> None:
    p = default_profile()
    script = 'cd && echo x > f && cat f && stat -c "%a %u" "$HOME"'
    assert sh_in(p.finish(), script, p.env) == f"x\n700 {os.getuid()}\n"


def test_home_is_not_the_hosts() -> None:
    p = default_profile()
    assert sh_in(p.finish(), 'ls -A "$HOME" | wc -l', p.env) == "0\n"


def test_git_config_global_writes_and_reads_the_users_gitconfig() -> None:
    p = default_profile()
    script = "git config --global user.name x && git config --global user.name && cat ~/.gitconfig"
    assert sh_in(p.finish(), script, p.env) == "x\n[user]\n\tname = x\n"


def test_pip_runs_and_a_user_install_fails_only_for_want_of_an_index() -> None:
    # Debian's pip refuses --user installs into its own Python (PEP 668) on
    # the host as well; --break-system-packages gets past that to the point:
    # pip's cache and user site live in $HOME, which must be writable.
    p = default_profile()
    pip = ["/usr/bin/python3", "-m", "pip"]
    version = run([*pip, "--version"], p.finish(), env=p.env)
    if b"No module named pip" in version.stderr:
        pytest.fail("python3-pip is not installed (scripts/setup-system.sh installs it)")
    assert ok(version).startswith("pip ")
    install = ["install", "--user", "--no-index", "--break-system-packages", "nothing-here"]
    r = run([*pip, *install], p.finish(), env=p.env)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "No matching distribution found for nothing-here" in err, err
    assert "not writable" not in err and "Read-only" not in err, err


def test_the_default_working_directory_with_the_profile_is_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    p = default_profile()
    r = run_sync("/bin/pwd", ops=p.finish(), env=p.env, dir=None, capture_output=True)
    assert r.stdout == f"{p.env['HOME']}\n".encode()


ETC_PROBE = (
    "cat /etc/debian_version; test -L /etc/hostname && echo hostname-is-a-link;"
    " test -e /etc/.host && echo has-.host; grep -c . /etc/passwd;"
    " touch /etc/new 2>/dev/null || echo etc-read-only"
)


def test_the_default_etc_shows_the_hosts_files_with_only_the_profiles_accounts() -> None:
    p = default_profile()
    out = sh_in(p.finish(), ETC_PROBE, p.env)
    host_version = Path("/etc/debian_version").read_text()
    # Real files (a bind), not links into /etc/.host; passwd names root, the user, nobody.
    assert out == f"{host_version}3\netc-read-only\n"


def test_an_op_under_etc_added_to_the_default_profile_still_lands_there() -> None:
    # A read-only bind of the host /etc could not take /etc/added: the profile
    # makes its auto /etc (links, writable until the final remount) instead.
    p = default_profile().extend(Ops().place("/etc/added", b"mine\n"))
    out = sh_in(p.finish(), "cat /etc/added; " + ETC_PROBE, p.env)
    host_version = Path("/etc/debian_version").read_text()
    assert out == f"mine\n{host_version}hostname-is-a-link\nhas-.host\n3\netc-read-only\n"
