"""Profiles and working directories without a kernel: what they build and send."""

from __future__ import annotations

import os
import pwd

import pytest

from hakurei.errors import HakureiError, OpError
from hakurei.ops import Ops, Remount, Tmpfs
from hakurei.params import Params, working_dirs
from hakurei.profile import account, default_env, default_profile, none_profile


@pytest.mark.parametrize(
    ("pw_dir", "home"),
    [
        ("/home/alice", "/home/alice"),
        ("/srv/alice", "/srv/alice"),
        ("/tmp/alice", "/tmp/alice"),
        ("/nonexistent", "/home/alice"),
        ("/", "/home/alice"),
        ("/usr/lib/alice", "/home/alice"),
        ("/etc/alice", "/home/alice"),
        ("/home/../etc", "/home/alice"),
        ("relative", "/home/alice"),
        ("/home/a:b", "/home/alice"),
    ],
)
def test_home_is_the_passwd_home_when_it_can_be_a_mount_point_of_its_own(
    monkeypatch: pytest.MonkeyPatch, pw_dir: str, home: str
) -> None:
    entry = pwd.struct_passwd(("alice", "x", 1000, 1000, "", pw_dir, "/bin/sh"))
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: entry)
    assert account(1000) == ("alice", home)
    assert account(0) == ("root", "/root")


def test_default_profile_mounts_the_home_it_names_and_puts_it_in_passwd() -> None:
    p = default_profile(1000, 2000)
    name, home = account(1000)
    ops = p.finish()
    homes = [op for op in ops if isinstance(op, Tmpfs) and op.target == home]
    assert len(homes) == 1 and homes[0].perm == 0o700
    passwd = next(op for op in ops if getattr(op, "path", None) == "/etc/passwd")
    assert f"{name}:x:1000:2000:{name}:{home}:/bin/sh\n".encode() in passwd.data
    assert (p.env["HOME"], p.env["USER"], p.env["LOGNAME"]) == (home, name, name)


def test_extend_lands_before_the_final_remount_only() -> None:
    p = default_profile()
    n = len(p.finish())
    ops = p.extend(Ops().mkdir("/a")).extend([Remount("/a", 1)]).finish()
    assert len(ops) == n + 2
    assert [type(op).__name__ for op in ops[-3:]] == ["Mkdir", "Remount", "Remount"]
    assert ops[-1].target == "/"


def test_extend_refuses_what_is_not_an_op() -> None:
    with pytest.raises(OpError, match="not an op"):
        none_profile().extend(["--bind"])  # type: ignore[list-item]


def test_default_env_has_home_user_logname_and_only_term_lang_from_the_host() -> None:
    env = default_env({"TERM": "xterm", "LANG": "C", "SECRET": "x", "HOME": "/host/home"})
    name, home = account()
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "USER": name,
        "LOGNAME": name,
        "TERM": "xterm",
        "LANG": "C",
    }


def test_dir_none_is_cwd_then_home_then_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    assert working_dirs(None, ["HOME=/h", "HOME=/home/x"]) == (cwd, ["/home/x", "/"])
    assert working_dirs(None, []) == (cwd, ["/"])
    assert working_dirs(None, ["HOME=relative"]) == (cwd, ["/"])
    monkeypatch.chdir("/")
    assert working_dirs(None, ["HOME=/"]) == ("/", [])


def test_dir_path_or_list() -> None:
    assert working_dirs("/x", []) == ("/x", [])
    assert working_dirs(["/x", "/y"], []) == ("/x", ["/y"])
    p = Params("ls", ops=Ops().proc("/proc"), dir=["/a", "/b"], seccomp_disable=True)
    s = p.resolve(0)
    assert (s.path, s.dir, s.dir_fallback) == ("ls", "/a", ["/b"])


@pytest.mark.parametrize("bad", [[], (), 3, [3]])
def test_dir_of_the_wrong_kind_is_refused(bad: object) -> None:
    with pytest.raises(HakureiError, match=r"dir|working directory"):
        working_dirs(bad, [])  # type: ignore[arg-type]
