"""Everyday tools under ``hakurei exec``'s default filter, ``everyday`` (issue 11 §4).

``strict`` (Go's preset) denies every set*id/setgroups/chown call, so
``make`` (glibc's posix_spawn resets ids), ``xterm`` (drops privileges it
never had) and ``chown`` to one's own ids fail.  ``everyday`` leaves those
calls to the kernel: with one uid and one gid mapped, no capabilities and
setgroups denied in the user namespace, it grants only what changes nothing.
Each test runs the same thing under ``--seccomp strict`` too and asserts how
it fails there, so the pair shows what the default changed, and what it kept.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HAKUREI = [sys.executable, "-m", "hakurei", "exec"]
#: A filesystem like the default profile's, spelled out: any filesystem option
#: replaces the default profile, and the X test needs binds.
BASE = [
    *("--ro-bind", "/usr", "/usr"),
    *("--symlink", "usr/bin", "/bin"),
    *("--symlink", "usr/sbin", "/sbin"),
    *("--symlink", "usr/lib", "/lib"),
    *("--symlink", "usr/lib64", "/lib64"),
    *("--etc", "/etc"),
    *("--proc", "/proc"),
    *("--dev", "/dev"),
    *("--tmpfs", "/tmp"),
]
#: No --seccomp option (the default, everyday), and Go's preset.
DEFAULT: tuple[str, ...] = ()
STRICT = ("--seccomp", "strict")


def hakurei(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HAKUREI, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sh(filter: tuple[str, ...], script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in the default profile (/tmp is a private writable tmpfs)."""
    return hakurei(*filter, "--", "/bin/sh", "-c", script)


# -- make -------------------------------------------------------------------------------

MAKE = r"""
cd /tmp
printf 'all:\n\tcc -o hello hello.c\n\t./hello\n' > Makefile
printf '#include <stdio.h>\nint main(void) { puts("built and ran"); return 0; }\n' > hello.c
make -s
"""


def test_make_runs_the_compiler_under_the_default_filter() -> None:
    r = sh(DEFAULT, MAKE)
    assert (r.returncode, r.stdout, r.stderr) == (0, "built and ran\n", "")


def test_make_cannot_spawn_the_compiler_under_strict() -> None:
    # glibc's posix_spawn (POSIX_SPAWN_RESETIDS) calls setgid/setuid with the ids it has.
    r = sh(STRICT, MAKE)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[0] == "make: cc: Operation not permitted"


# -- chown ------------------------------------------------------------------------------

CHOWN_OWN = 'touch /tmp/f && chown "$(id -u)" /tmp/f && chown ":$(id -g)" /tmp/f && echo chowned'


def test_chown_to_one_s_own_ids_works_under_the_default_filter() -> None:
    r = sh(DEFAULT, CHOWN_OWN)
    assert (r.returncode, r.stdout, r.stderr) == (0, "chowned\n", "")


def test_chown_to_one_s_own_ids_is_refused_by_strict() -> None:
    r = sh(STRICT, CHOWN_OWN)
    assert (r.returncode, r.stdout) == (1, ""), r.stderr
    assert r.stderr == "chown: changing ownership of '/tmp/f': Operation not permitted\n"


@pytest.mark.parametrize(
    ("filter", "error"),
    [
        # Uid 0 is not mapped in the container: the kernel answers EINVAL.
        (DEFAULT, "Invalid argument"),
        # strict never lets the call reach the kernel.
        (STRICT, "Operation not permitted"),
    ],
)
def test_chown_to_root_still_fails(filter: tuple[str, ...], error: str) -> None:
    r = sh(filter, "touch /tmp/f && chown 0 /tmp/f")
    assert (r.returncode, r.stdout) == (1, ""), r.stderr
    assert r.stderr == f"chown: changing ownership of '/tmp/f': {error}\n"


# -- the id calls themselves ----------------------------------------------------------------

#: Each call with the ids the process has ("own") and with one it has not ("other").
IDS = r"""
import errno, json, os
def t(f, *a):
    try:
        f(*a)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
u, g = os.getuid(), os.getgid()
ou, og = (1 if u == 0 else 0), (1 if g == 0 else 0)
open("/tmp/f", "w").close()
print(json.dumps({
    "setresuid(-1, own, -1)": t(os.setresuid, -1, u, -1),
    "setresgid(-1, own, -1)": t(os.setresgid, -1, g, -1),
    "setuid(own)": t(os.setuid, u),
    "setgid(own)": t(os.setgid, g),
    "setreuid(own, own)": t(os.setreuid, u, u),
    "setgroups(current)": t(os.setgroups, os.getgroups()),
    "setgroups([])": t(os.setgroups, []),
    "chown(own, own)": t(os.chown, "/tmp/f", u, g),
    "setuid(other)": t(os.setuid, ou),
    "setgid(other)": t(os.setgid, og),
    "setresuid(other, other, other)": t(os.setresuid, ou, ou, ou),
    "chown(other, -1)": t(os.chown, "/tmp/f", ou, -1),
    "chown(-1, other)": t(os.chown, "/tmp/f", -1, og),
}))
"""
#: What the kernel answers in the container: ids it has are granted, others are not
#: mapped (EINVAL), and setgroups is denied in the user namespace (EPERM).
KERNEL = {
    "setresuid(-1, own, -1)": "ok",
    "setresgid(-1, own, -1)": "ok",
    "setuid(own)": "ok",
    "setgid(own)": "ok",
    "setreuid(own, own)": "ok",
    "setgroups(current)": "EPERM",
    "setgroups([])": "EPERM",
    "chown(own, own)": "ok",
    "setuid(other)": "EINVAL",
    "setgid(other)": "EINVAL",
    "setresuid(other, other, other)": "EINVAL",
    "chown(other, -1)": "EINVAL",
    "chown(-1, other)": "EINVAL",
}
#: The caller's ids, and other ids than the host's inside (still one of each mapped).
AS_WHOM = [(), ("--uid", "4242", "--gid", "4343")]


def id_calls(*options: str) -> dict[str, str]:
    r = hakurei(*options, "--", "/usr/bin/python3", "-I", "-S", "-c", IDS)
    assert r.returncode == 0, r.stderr
    result: dict[str, str] = json.loads(r.stdout)
    return result


@pytest.mark.parametrize("whom", AS_WHOM)
def test_id_calls_get_the_kernel_s_answer_under_the_default_filter(whom: tuple[str, ...]) -> None:
    assert id_calls(*whom) == KERNEL
    # The same answers as with no filter at all: the default adds nothing here.
    assert id_calls(*whom, "--no-seccomp") == KERNEL


@pytest.mark.parametrize("whom", AS_WHOM)
def test_strict_refuses_every_id_call_itself(whom: tuple[str, ...]) -> None:
    assert id_calls(*whom, *STRICT) == dict.fromkeys(KERNEL, "EPERM")


@pytest.mark.parametrize("filter", [DEFAULT, STRICT])
def test_new_user_namespaces_stay_denied_by_the_filter(filter: tuple[str, ...]) -> None:
    r = hakurei(*filter, "--", "/usr/bin/unshare", "-U", "/bin/true")
    assert (r.returncode, r.stderr) == (1, "unshare: unshare failed: Operation not permitted\n")
    # The kernel alone would allow it: the EPERM is the filter's.
    r = hakurei("--no-seccomp", "--", "/usr/bin/unshare", "-U", "/bin/true")
    assert (r.returncode, r.stderr) == (0, "")


# -- xterm under Xvfb ---------------------------------------------------------------------


def _xauthority(path: Path) -> None:
    """One MIT-MAGIC-COOKIE-1 entry for any display (FamilyWild, empty number)."""

    def field(b: bytes) -> bytes:
        return struct.pack(">H", len(b)) + b

    cookie = secrets.token_bytes(16)
    entry = struct.pack(">H", 0xFFFF) + field(b"") + field(b"") + field(b"MIT-MAGIC-COOKIE-1")
    path.write_bytes(entry + field(cookie))
    path.chmod(0o644)


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """A private X server: (the options that reach it from a container, its DISPLAY).

    Xvfb runs in its own container with a private /tmp, so its display number
    and lock files cannot meet anyone else's, and /tmp/.X11-unix there is a
    bind of a fresh directory: no host X socket directory is needed or
    touched.  ``-displayfd 1`` writes the number when the server accepts
    connections, which is the readiness signal.  The server is killed on every
    way out of the test.  It runs without a filter: it is the test's
    scaffolding, not its subject (under ``strict`` it cannot even spawn
    ``xkbcomp`` for its keymap, the same failure as make's).
    """
    sockets = tmp_path / "x11"
    sockets.mkdir()
    sockets.chmod(0o1777)
    auth = tmp_path / "Xauthority"
    _xauthority(auth)
    reach = ["--ro-bind", str(auth), "/tmp/Xauthority"]
    server = subprocess.Popen(
        [
            *HAKUREI,
            *BASE,
            *("--bind", str(sockets), "/tmp/.X11-unix"),
            *reach,
            *("--remount-ro", "/"),
            "--no-seccomp",
            "--",
            *("/usr/bin/Xvfb", ":0", "-displayfd", "1", "-nolisten", "tcp"),
            *("-auth", "/tmp/Xauthority", "-noreset"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        ready, _, _ = select.select([server.stdout], [], [], 30)
        number = os.read(server.stdout.fileno(), 64).decode().strip() if ready else ""
        if not number.isdigit():
            server.kill()
            _, err = server.communicate(timeout=10)
            pytest.fail(f"Xvfb did not start: {err.decode()[-2000:]}")
        options = [*reach, "--ro-bind", str(sockets), "/tmp/.X11-unix"]
        options += ["--setenv", "XAUTHORITY", "/tmp/Xauthority"]
        yield options, f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if SIGTERM is ignored
            server.kill()
            server.wait(timeout=10)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def xterm(x: tuple[list[str], str], *filter: str) -> subprocess.CompletedProcess[str]:
    options, display = x
    return hakurei(
        *BASE,
        *options,
        *("--remount-ro", "/"),
        *filter,
        *("--setenv", "DISPLAY", display),
        *("--", "/usr/bin/xterm", "-e", "/bin/true"),
        timeout=60,
    )


def test_xterm_starts_and_exits_under_the_default_filter(xvfb: tuple[list[str], str]) -> None:
    r = xterm(xvfb)
    assert r.returncode == 0, r.stderr
    assert "unable to reset" not in r.stderr


def test_xterm_cannot_drop_ids_it_already_has_under_strict(xvfb: tuple[list[str], str]) -> None:
    r = xterm(xvfb, *STRICT)
    assert (r.returncode, r.stderr) == (1, "xterm: unable to reset uid\n")
