"""The shim's pieces that run before any namespace exists (reference §4.2, §4.3).

``receive`` turns the inherited setup fd into a ``Setup`` or one exact
message; ``keep_only`` closes whatever the parent leaked (run in a child
interpreter, since it closes fds of the process it runs in); ``write_maps``
issues the single-line id maps on the fake kernel; ``status_of`` is the exit
status convention shim ← init.
"""

from __future__ import annotations

import ast
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hakurei.errors import SetupError
from hakurei.init.shim import receive, status_of, write_maps
from hakurei.ops import Ops
from hakurei.wire import Setup, encode

import records
from fakekernel import Call, FakeKernel, call


def make_setup(**fields: object) -> Setup:
    ops = Ops().proc("/proc").tmpfs("/tmp")
    return records.make_setup(ops, **{"env": ["PATH=/usr/bin"], **fields})


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as e:
        return e.errno == errno.EBADF
    return False


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        if not closed(fd):
            os.close(fd)


# -- receive -----------------------------------------------------------------------


def test_receive_reads_one_record_and_closes_the_fd(pipe: tuple[int, int]) -> None:
    r, w = pipe
    sent = make_setup(hostname="h", files=2)
    os.write(w, encode(sent))
    os.close(w)
    got = receive({"HAKUREI_SETUP": str(r)})
    assert got.ops == sent.ops
    assert (got.hostname, got.files, got.uid, got.host_uid) == ("h", 2, 65536, 1000)
    assert closed(r)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "HAKUREI_SETUP not set"),
        ({"PATH": "/bin"}, "HAKUREI_SETUP not set"),
        (
            {"HAKUREI_SETUP": "abc"},
            "cannot decode init setup payload: invalid setup descriptor 'abc'",
        ),
        ({"HAKUREI_SETUP": ""}, "cannot decode init setup payload: invalid setup descriptor ''"),
        ({"HAKUREI_SETUP": "-1"}, "invalid setup descriptor"),
    ],
)
def test_receive_bad_environment(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SetupError) as e:
        receive(environ)
    assert str(e.value) == message


def test_receive_from_a_closed_fd(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.close(r)
    os.close(w)
    with pytest.raises(SetupError) as e:
        receive({"HAKUREI_SETUP": str(r)})
    assert str(e.value) == "invalid setup descriptor"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "cannot decode init setup payload: truncated setup stream: header has 0 of 10 bytes"),
        (
            b"GARBAGE-GARBAGE",
            "cannot decode init setup payload: bad magic: not a hakurei setup stream",
        ),
    ],
)
def test_receive_bad_stream_closes_the_fd(pipe: tuple[int, int], data: bytes, message: str) -> None:
    r, w = pipe
    os.write(w, data)
    os.close(w)
    with pytest.raises(SetupError) as e:
        receive({"HAKUREI_SETUP": str(r)})
    assert str(e.value) == message
    assert closed(r)


def test_receive_refuses_a_second_record(pipe: tuple[int, int]) -> None:
    r, w = pipe
    frame = encode(make_setup())
    os.write(w, frame + frame)
    os.close(w)
    with pytest.raises(SetupError) as e:
        receive({"HAKUREI_SETUP": str(r)})
    assert str(e.value) == "cannot decode init setup payload: trailing data after the setup record"


# -- keep_only ------------------------------------------------------------------------


def open_after_keep_only(keep: list[int]) -> list[int]:
    code = (
        "import os, sys\n"
        "from hakurei.init.shim import keep_only\n"
        "for _ in range(6):\n"
        "    os.pipe()\n"
        "for n in (40, 200, 1000):\n"
        "    os.dup2(3, n, inheritable=False)\n"
        f"keep_only({keep!r})\n"
        "alive = []\n"
        "for n in range(1100):\n"
        "    try:\n"
        "        os.fstat(n)\n"
        "    except OSError:\n"
        "        continue\n"
        "    alive.append(n)\n"
        "print(alive)\n"
    )
    r = subprocess.run(
        [sys.executable, "-I", "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    result: list[int] = ast.literal_eval(r.stdout)
    return result


@pytest.mark.parametrize(
    "keep",
    [[], [3], [3, 4], [40, 11], [1000], [5, 5, 14], [200, 3, 40, 1000]],
    ids=str,
)
def test_keep_only(keep: list[int]) -> None:
    assert open_after_keep_only(keep) == [0, 1, 2, *sorted(set(keep))]


# -- write_maps -----------------------------------------------------------------------

MAPS = [
    call("write_file", "/proc/self/uid_map", b"65536 1000 1\n"),
    call("write_file", "/proc/self/setgroups", b"deny\n"),
    call("write_file", "/proc/self/gid_map", b"32768 100 1\n"),
]


def run_maps(calls: list[Call], **fields: object) -> None:
    k = FakeKernel(calls)
    write_maps(k, make_setup(**fields))
    k.done()


def test_write_maps() -> None:
    run_maps(MAPS)


def test_write_maps_root_in_container() -> None:
    run_maps(
        [
            call("write_file", "/proc/self/uid_map", b"0 1001 1\n"),
            call("write_file", "/proc/self/setgroups", b"deny\n"),
            call("write_file", "/proc/self/gid_map", b"0 1001 1\n"),
        ],
        uid=0,
        gid=0,
        host_uid=1001,
        host_gid=1001,
    )


def test_write_maps_without_setgroups() -> None:
    """Kernels before 3.19 have no /proc/self/setgroups; the gid map still follows."""
    calls = list(MAPS)
    calls[1] = call(
        "write_file",
        "/proc/self/setgroups",
        b"deny\n",
        err=FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/self/setgroups"),
    )
    run_maps(calls)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_write_maps_failure_stops(i: int) -> None:
    err = PermissionError(errno.EPERM, "Operation not permitted", MAPS[i].args[0])
    calls = [*MAPS[:i], call("write_file", *MAPS[i].args, err=err)]
    with pytest.raises(PermissionError) as e:
        run_maps(calls)
    assert e.value is err


# -- status_of --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (0, 0),
        (1 << 8, 1),
        (42 << 8, 42),
        (255 << 8, 255),
        (125 << 8, 125),
        (signal.SIGKILL, 137),
        (signal.SIGTERM, 143),
        (signal.SIGINT, 130),
        (signal.SIGSEGV | 0x80, 139),  # core dumped
        (0x4E, 0xCE),
        (0x137F, 255),  # stopped
        (0xFFFF, 255),  # continued
    ],
)
def test_status_of(status: int, code: int) -> None:
    assert status_of(status) == code


def test_status_of_real_children() -> None:
    """The same mapping for statuses the kernel produced, not ones built by hand."""
    cases = [("exit 3", 3), ("kill -TERM $$", 143), ("kill -SEGV $$", 139)]
    for script, code in cases:
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", script], {})
        _, status = os.waitpid(pid, 0)
        assert status_of(status) == code, script
