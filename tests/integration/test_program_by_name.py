"""Programs by name and where they start (issue 11 §2), through the library.

A name without ``/`` is looked up in the *container's* ``PATH`` (the
program's environment) as ``execvp`` does; a relative path with ``/`` is
relative to the container's working directory; ``dir=None`` starts in the
caller's directory when the container has it, else in ``HOME``, else ``/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakurei.ops import Ops
from hakurei.profile import DEFAULT_PATH, default_env, default_ops

from conftest import ok, run


def _plus(extra: Ops) -> Ops:
    """The default profile with ``extra`` before its final read-only remount of ``/``.

    Spliced by hand so these tests need nothing of the profile API (issue 11 §3).
    """
    base = default_ops()
    return Ops([*base[:-1], *extra, base[-1]])


def test_a_name_is_found_in_the_containers_path() -> None:
    assert "usr" in ok(run(["ls", "/"])).split()


def test_the_lookup_uses_the_containers_path_not_the_hosts() -> None:
    # /opt/tools exists only inside, and the host's PATH does not name it.
    assert "/opt/tools" not in os.environ.get("PATH", "")
    ops = _plus(Ops().link("/opt/tools/greet", "/usr/bin/echo"))
    env = {**default_env(), "PATH": "/opt/tools"}
    assert ok(run(["greet", "hello"], ops, env=env)) == "hello\n"


def test_a_missing_name_is_127_naming_the_name_and_the_path_searched() -> None:
    r = run(["no-such-program", "x"])
    assert r.returncode == 127
    assert r.stderr == (
        f'hakurei: cannot start no-such-program: not found in PATH "{DEFAULT_PATH}"\n'.encode()
    )


def test_without_path_in_the_environment_the_search_is_glibcs_default() -> None:
    # execvp (glibc >= 2.24) searches /bin:/usr/bin when PATH is unset.
    assert ok(run(["sh", "-c", "echo found"], env={})) == "found\n"
    r = run(["no-such-program"], env={})
    assert (r.returncode, r.stderr) == (
        127,
        b'hakurei: cannot start no-such-program: not found in PATH "/bin:/usr/bin"\n',
    )


def test_a_name_with_control_bytes_is_escaped_in_the_message() -> None:
    r = run(["evil\x1b[2Jname"])
    assert r.returncode == 127
    assert b"\x1b" not in r.stderr
    assert r.stderr.startswith(b'hakurei: cannot start "evil\\x1b[2Jname": not found in PATH')


def test_a_non_executable_match_is_skipped_and_then_reported_as_126() -> None:
    # execvp: EACCES is remembered, the search goes on; only if nothing else is
    # found is the status "found but not executable" (126).
    ops = _plus(
        Ops()
        .place("/opt/a/tool", b"#!/bin/sh\necho wrong\n")  # mode 0444
        .link("/opt/b/tool", "/usr/bin/echo")
    )
    env = {**default_env(), "PATH": "/opt/a:/opt/b"}
    assert ok(run(["tool", "right"], ops, env=env)) == "right\n"
    r = run(["tool"], ops, env={**env, "PATH": "/opt/a"})
    assert (r.returncode, r.stderr) == (126, b"hakurei: cannot start tool: permission denied\n")


def test_an_empty_path_entry_is_the_working_directory() -> None:
    env = {**default_env(), "PATH": "/nowhere:"}
    assert ok(run(["echo", "from cwd"], env=env, dir="/usr/bin")) == "from cwd\n"


def test_a_relative_path_with_a_slash_is_relative_to_the_working_directory() -> None:
    assert ok(run(["bin/echo", "relative"], dir="/usr")) == "relative\n"
    assert ok(run(["./echo", "dot"], dir="/usr/bin")) == "dot\n"


def test_a_relative_path_is_never_looked_up_in_path() -> None:
    r = run(["bin/echo"], dir="/")  # /bin is a link to usr/bin on merged-usr Debian
    assert r.returncode == 0
    r = run(["usr/bin/no-such"], dir="/")
    assert (r.returncode, r.stderr) == (
        127,
        b"hakurei: cannot start usr/bin/no-such: no such file or directory\n",
    )


def test_dir_none_starts_in_the_callers_directory_when_the_container_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        ok(run(["pwd"], _plus(Ops().bind(str(tmp_path), str(tmp_path))), dir=None))
        == f"{tmp_path}\n"
    )


def test_dir_none_starts_in_home_when_the_callers_directory_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not bound: not in the container
    env = default_env()
    assert ok(run(["pwd"], dir=None, env=env)) == f"{env['HOME']}\n"


def test_dir_none_starts_in_root_without_a_usable_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in default_env().items() if k != "HOME"}
    assert ok(run(["pwd"], dir=None, env=env)) == "/\n"
    env["HOME"] = "/no/such/home"
    assert ok(run(["pwd"], dir=None, env=env)) == "/\n"


def test_a_list_of_dirs_is_tried_in_order() -> None:
    assert ok(run(["pwd"], dir=["/no/such", "/usr/lib", "/"])) == "/usr/lib\n"


def test_the_last_dir_failing_is_the_setup_error_it_always_was() -> None:
    r = run(["pwd"], dir=["/no/such", "/nor/this"])
    assert r.returncode == 125
    assert r.stderr == b"hakurei: cannot chdir /nor/this: no such file or directory\n"
