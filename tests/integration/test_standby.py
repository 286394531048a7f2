"""Warm starts: a standby shim, started ahead, takes its fds from the parent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import trio

import hakurei
from hakurei import launch

from conftest import PY
from test_lifecycle import container_kwargs, open_fds, wait_gone


@pytest.fixture
def warm() -> Iterator[None]:
    assert hakurei.standby() is True
    try:
        yield
    finally:
        hakurei.standby(False)


def test_warm_starts_are_possible_here() -> None:
    """Debian 12 (and CI): no Yama restriction, a dumpable parent, Linux >= 5.6."""
    assert launch.warm_possible() is True


def standby_pid() -> int:
    shim = launch._standby
    assert shim is not None
    return shim.pid


async def test_a_container_runs_in_the_standby_and_a_new_one_waits(warm: None) -> None:
    for i in range(3):
        ready = standby_pid()
        r, w = os.pipe()
        c = hakurei.Container(
            "/bin/sh",
            ["sh", "-c", f"echo via-fd-3 >&3; exit {i}"],
            extra_files=[w],
            **container_kwargs(),
        )
        await c.start()
        os.close(w)  # the shim holds its own copy until it has taken it
        assert c.pid == ready
        await c.serve()
        assert standby_pid() != ready  # the next one is spawned once the record is sent
        assert await c.wait() == i
        assert os.read(r, 100) == b"via-fd-3\n"
        os.close(r)


async def test_captured_output_and_status_are_those_of_a_cold_start(warm: None) -> None:
    script = "echo out; echo err >&2; exit 7"
    warm_result = await hakurei.run("/bin/sh", ["sh", "-c", script], capture_output=True,
                                    **container_kwargs())  # fmt: skip
    hakurei.standby(False)
    cold = await hakurei.run("/bin/sh", ["sh", "-c", script], capture_output=True,
                             **container_kwargs())  # fmt: skip
    assert (warm_result.returncode, warm_result.stdout, warm_result.stderr) == (
        7,
        b"out\n",
        b"err\n",
    )
    assert (cold.returncode, cold.stdout, cold.stderr) == (7, b"out\n", b"err\n")


def test_setup_errors_reach_the_callers_stderr(warm: None) -> None:
    kw = container_kwargs()
    kw["ops"] = kw["ops"].bind("/nonexistent", "/x")  # type: ignore[attr-defined]
    with pytest.raises(hakurei.StartError, match="/nonexistent") as info:
        hakurei.run_sync("/bin/true", capture_output=True, **kw)
    r = info.value.result
    assert r is not None and r.returncode == 125
    assert r.stderr is not None and b"/nonexistent" in r.stderr


def test_stdin_none_is_dev_null(warm: None) -> None:
    r = hakurei.run_sync(PY, [PY, "-c", "import sys; print(repr(sys.stdin.read()))"],
                         capture_output=True, **container_kwargs())  # fmt: skip
    assert r.stdout == b"''\n"


async def test_concurrent_warm_starts(warm: None) -> None:
    results: list[int] = []

    async def one(i: int) -> None:
        r = await hakurei.run("/bin/sh", ["sh", "-c", f"exit {i}"], **container_kwargs())
        results.append(r.returncode)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(one, i)
    assert sorted(results) == list(range(20))


def test_turning_standby_off_leaves_no_process_or_fd() -> None:
    before = open_fds()
    assert hakurei.standby() is True
    pid = standby_pid()
    hakurei.run_sync("/bin/true", **container_kwargs())
    hakurei.standby(False)
    assert launch._standby is None
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
    assert open_fds() == before
    assert wait_gone([pid], 1.0) == []


PARENT = """
import hakurei
from hakurei import launch
assert hakurei.standby()
print(launch._standby.pid, flush=True)
input()
"""


def test_a_standby_does_not_outlive_its_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    assert wait_gone([pid], 2.0) == []
