"""``Container`` as a trio user holds it: a context manager, ``nursery.start``, many waiters.

Each test runs through whichever spawner is the default (the suite runs the
integration tests once through the fork server and once cold).
"""

from __future__ import annotations

import gc
import os
import warnings
from typing import Any

import pytest
import trio
import trio.testing

import hakurei
from hakurei.errors import ParamsError
from hakurei.ops import Ops
from hakurei.profile import default_env, default_ops, default_profile

from conftest import PY, nothing_left_running


def kwargs() -> dict[str, Any]:
    return {"ops": default_ops(), "env": default_env(), "uid": os.getuid(), "gid": os.getgid()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_leaving_async_with_cancels_and_reaps_a_running_container() -> None:
    r, w = os.pipe()
    code = "import os, signal; os.write(3, b'r'); signal.pause()"
    async with hakurei.Container(PY, [PY, "-c", code], extra_files=[w], **kwargs()) as c:
        os.close(w)
        await c.serve()
        assert os.read(r, 1) == b"r"
        pid = c.pid
        assert pid is not None and c.returncode is None
    os.close(r)
    assert c.returncode == 0  # init exits 0 on the cancel signal (Go: context.Canceled)
    assert not alive(pid)
    nothing_left_running()


async def test_an_error_inside_async_with_still_leaves_nothing_running() -> None:
    with pytest.raises(ZeroDivisionError):
        async with hakurei.Container("/bin/sleep", ["sleep", "1000"], **kwargs()) as c:
            await c.serve()
            1 / 0  # noqa: B018
    assert c.returncode is not None
    nothing_left_running()


async def test_nursery_start_returns_the_container_once_its_program_runs() -> None:
    r, w = os.pipe()
    code = "import os, sys; os.write(3, b'r'); sys.stdin.read(); sys.exit(4)"
    stdin_r, stdin_w = os.pipe()
    async with trio.open_nursery() as nursery:
        c = await nursery.start(
            lambda task_status: hakurei.run(
                PY,
                [PY, "-c", code],
                stdin=stdin_r,
                extra_files=[w],
                task_status=task_status,
                **kwargs(),
            )
        )
        os.close(w)
        os.close(stdin_r)
        assert isinstance(c, hakurei.Container)
        assert c.pid is not None and c.returncode is None
        assert os.read(r, 1) == b"r"  # it runs
        os.close(stdin_w)
    os.close(r)
    assert c.returncode == 4


async def test_a_setup_failure_raises_from_nursery_start() -> None:
    ops = default_ops().bind("/nonexistent-source", "/x")
    async with trio.open_nursery() as nursery:
        with pytest.raises(hakurei.StartError, match="nonexistent-source"):
            await nursery.start(
                lambda task_status: hakurei.run(
                    "/bin/true",
                    ops=ops,
                    env=default_env(),
                    uid=os.getuid(),
                    gid=os.getgid(),
                    task_status=task_status,
                )
            )


async def test_any_number_of_tasks_may_wait_for_one_container() -> None:
    stdin_r, stdin_w = os.pipe()
    c = hakurei.Container("/bin/sh", ["sh", "-c", "read x; exit 6"], stdin=stdin_r, **kwargs())
    await c.start()
    os.close(stdin_r)
    await c.serve()
    statuses: list[int] = []

    async def waiter() -> None:
        statuses.append(await c.wait())

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        os.close(stdin_w)
    assert statuses == [6] * 5


def test_a_dropped_running_container_is_killed_with_a_resource_warning() -> None:
    async def start() -> int:
        c = hakurei.Container("/bin/sleep", ["sleep", "1000"], **kwargs())
        await c.start()
        await c.serve()
        assert c.pid is not None
        return c.pid

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = trio.run(start)
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught), caught
    assert not alive(pid)
    nothing_left_running()


@pytest.mark.parametrize("size", [10, 200_000])
async def test_a_record_small_or_large_reaches_init_through_run_and_run_sync(size: int) -> None:
    """run/run_sync write a small record before the container exists (one round trip
    less); one larger than the socket could hold before anyone reads is streamed after."""
    profile = default_profile().extend(Ops().place("/tmp/big", b"x" * size))
    ops = profile.finish()
    kw = {"env": profile.env, "uid": os.getuid(), "gid": os.getgid(), "capture_output": True}
    probe = ["sh", "-c", "wc -c < /tmp/big"]
    for fork_server in (True, False):
        r = await hakurei.run("/bin/sh", probe, ops=ops, fork_server=fork_server, **kw)
        assert (r.returncode, int(r.stdout)) == (0, size), r.stderr
        s = hakurei.run_sync("/bin/sh", probe, ops=ops, fork_server=fork_server, **kw)
        assert (s.returncode, int(s.stdout)) == (0, size), s.stderr


async def test_ops_and_env_amended_after_start_reach_the_program() -> None:
    """The launcher decides some binds only after its host work; the program sees them."""
    r, w = os.pipe()
    code = (
        "import os; os.write(3, (os.environ.get('AMENDED', '-') + ' '"
        " + str(os.path.isdir('/tmp/amended'))).encode())"
    )
    async with hakurei.Container(PY, [PY, "-c", code], extra_files=[w], **kwargs()) as c:
        os.close(w)
        c.amend(ops=list(Ops().tmpfs("/tmp/amended", 0, 0o755)), env={"AMENDED": "yes"})
        await c.serve()
        assert await c.wait() == 0
        with pytest.raises(hakurei.StartError):
            c.amend(env={"LATE": "1"})
    assert os.read(r, 100) == b"yes True"
    os.close(r)


async def test_a_bad_amendment_is_refused_and_the_container_still_serves() -> None:
    async with hakurei.Container("/bin/true", **kwargs()) as c:
        with pytest.raises(ParamsError):
            c.amend(env={"BAD=NAME": "x"})
        await c.serve()
        assert await c.wait() == 0
