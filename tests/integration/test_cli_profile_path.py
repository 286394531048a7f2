"""``hakurei exec`` with programs by name, ``--profile`` and the default working directory.

Issue 11 §2 and §3 at the command line: the CLI calls the library's profile
API (``hakurei.profile.PROFILES``, ``Profile.extend``/``finish``) and leaves
the working directory to init's fallback (``dir=None``).
"""

from __future__ import annotations

import os
from pathlib import Path

from hakurei.profile import DEFAULT_PATH, account

from conftest import hakurei


def test_exec_runs_a_program_by_name() -> None:
    r = hakurei("exec", "--", "ls", "/")
    assert (r.returncode, r.stderr) == (0, "")
    assert "usr" in r.stdout.split()


def test_exec_of_a_missing_name_is_127_naming_it_and_the_path() -> None:
    r = hakurei("exec", "--", "no-such-program")
    assert r.returncode == 127
    assert (
        r.stderr == f'hakurei: cannot start no-such-program: not found in PATH "{DEFAULT_PATH}"\n'
    )


def test_exec_looks_names_up_in_the_containers_path_from_setenv() -> None:
    r = hakurei("exec", "--setenv", "PATH", "/nowhere", "--", "ls")
    assert r.returncode == 127
    assert 'not found in PATH "/nowhere"' in r.stderr


def test_exec_default_profile_has_a_writable_home_whoami_and_git() -> None:
    script = "whoami; cd && pwd; git config --global user.name x && git config --global user.name"
    r = hakurei("exec", "--", "sh", "-c", script)
    name, home = account()
    assert (r.returncode, r.stdout) == (0, f"{name}\n{home}\nx\n"), r.stderr


def test_profile_default_with_a_bind_of_the_current_directory_runs_python3(
    tmp_path: Path,
) -> None:
    (tmp_path / "hello.py").write_text("import os; print('hello from', os.getcwd())\n")
    here = str(tmp_path)
    r = hakurei(
        "exec", "--profile", "default", "--bind", here, here, "--", "python3", "hello.py", cwd=here
    )
    assert (r.returncode, r.stdout) == (0, f"hello from {here}\n"), r.stderr


def test_profile_default_still_ends_with_a_read_only_root(tmp_path: Path) -> None:
    here = str(tmp_path)
    script = "touch ok && echo bind-writable; touch /x 2>/dev/null || echo root-ro"
    r = hakurei("exec", "--profile", "default", "--bind", here, here, "--", "sh", "-c", script,
                cwd=here)  # fmt: skip
    assert r.stdout == "bind-writable\nroot-ro\n", r.stderr
    assert (tmp_path / "ok").exists()


def test_profile_none_is_only_the_command_line_ops() -> None:
    ops = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"]
    ops += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
    r = hakurei("exec", "--profile", "none", *ops, "--", "ls", "/")
    assert (r.returncode, r.stdout.split()) == (0, ["bin", "lib", "lib64", "usr"]), r.stderr


def test_an_unknown_profile_is_one_line_and_125() -> None:
    r = hakurei("exec", "--profile", "bogus", "--", "true")
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "bogus" in r.stderr and "default" in r.stderr


def test_without_profile_an_op_option_still_replaces_the_default_profile(tmp_path: Path) -> None:
    # bubblewrap-compatible: no --profile and an op option is the "none" profile.
    here = str(tmp_path)
    r = hakurei("exec", "--bind", here, here, "--", "/usr/bin/true")
    assert r.returncode == 127, r.stderr  # no /usr: nothing to run


def test_the_program_starts_in_the_callers_directory_when_the_container_has_it(
    tmp_path: Path,
) -> None:
    here = str(tmp_path)
    r = hakurei("exec", "--profile", "default", "--bind", here, here, "--", "pwd", cwd=here)
    assert (r.returncode, r.stdout) == (0, f"{here}\n"), r.stderr


def test_the_program_starts_in_home_when_the_callers_directory_is_not_there(
    tmp_path: Path,
) -> None:
    r = hakurei("exec", "--", "pwd", cwd=str(tmp_path))
    assert (r.returncode, r.stdout) == (0, f"{account()[1]}\n"), r.stderr


def test_chdir_still_names_the_one_working_directory() -> None:
    r = hakurei("exec", "--chdir", "/usr/lib", "--", "pwd")
    assert (r.returncode, r.stdout) == (0, "/usr/lib\n"), r.stderr
    assert os.path.isdir("/usr/lib")


def test_etc_option_alone_names_the_user_for_whoami() -> None:
    """``--etc`` without the default profile still places a passwd naming the user."""
    links: list[str] = []
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):
            links += ["--symlink", os.readlink(top), top]
    r = hakurei("exec", "--ro-bind", "/usr", "/usr", *links, "--etc", "/etc", "--", "whoami")
    assert (r.returncode, r.stdout) == (0, f"{account()[0]}\n"), r.stderr
