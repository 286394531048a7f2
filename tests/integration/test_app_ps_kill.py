"""``hakurei ps``, ``show ID``, ``kill`` and ``gc`` against real instances with real containers.

The launcher's monitor is not needed to make a live instance: a holder
process (below) does what the monitor does to the store (``Store().create()``,
``write_entry`` with the app's pid and start time) for a real container it
started (``sleep`` under the default profile), then waits for the container
and reports its status on stdout.  SIGKILLing the holder makes the instance
dead exactly as a SIGKILLed monitor would (the lock goes with it, and the
container with its parent).

Every test has its own store: ``XDG_RUNTIME_DIR`` points at a fresh 0700
directory, for the holders and for the CLI alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei.app.config import template

from conftest import hakurei

HOLDER = r"""
import json, os, sys, trio, hakurei
from hakurei.app.journal import starttime
from hakurei.app.store import Store
from hakurei.profile import default_env, default_ops

config, skew, argv0 = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
bad_undo = sys.argv[4:]  # a host path to journal, outside what gc may touch

async def main():
    uid, gid = os.getuid(), os.getgid()
    c = hakurei.Container("/bin/sleep", [argv0, "1000"], ops=default_ops(uid, gid),
                          env=default_env(), uid=uid, gid=gid, stderr=2)
    await c.start()
    await c.serve()
    inst = Store().create()
    for path in bad_undo:
        inst.journal.record("remove_host", path=path.replace("ID", inst.id))
    inst.write_entry({
        "config": config, "argv": [argv0, "1000"], "enablements": [],
        "notes": ["note: \x1b[31mred\x07"],
        "app": {"pid": c.pid, "starttime": starttime(c.pid) + skew},
        "launcher": {"pid": os.getpid(), "starttime": starttime(os.getpid())},
    })
    print(inst.id, c.pid, flush=True)
    status = await c.wait()
    inst.revert()
    print(status, flush=True)

trio.run(main)
"""


class Holder:
    """A fake monitor holding one live instance whose app is a real container."""

    def __init__(
        self, env: dict[str, str], config: dict[str, object], skew: int = 0, *bad_undo: str
    ) -> None:
        argv0 = "sleep"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(config), str(skew), argv0, *bad_undo],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the entry is written: a real signal, no sleep
        assert line, "the holder died before writing its entry"
        self.id, pid = line.split()
        self.app_pid = int(pid)

    def status(self) -> int:
        """The container's status, once the holder saw it end (bounded by a timeout)."""
        assert self.proc.stdout is not None
        out, _ = self.proc.communicate(timeout=30)
        return int(out.split()[0])

    def crash(self) -> None:
        """SIGKILL, as a monitor dies: no revert runs, the lock goes."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.crash()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    return {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}


@pytest.fixture
def holders(env: dict[str, str]) -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:
        h.stop()


def config(app_id: str = "org.example.Sleeper") -> dict[str, object]:
    c = template().to_json()
    c["id"] = app_id
    return c


def test_ps_lists_a_live_instance_in_hakureis_table(
    env: dict[str, str], holders: list[Holder]
) -> None:
    h = Holder(env, config())
    holders.append(h)
    r = hakurei("ps", env=env)
    assert (r.returncode, r.stderr) == (0, "")
    header, row, *rest = r.stdout.splitlines()
    assert rest == []
    assert header.split() == ["Instance", "PID", "Application", "Uptime"]
    assert header.startswith("    Instance    ")
    short, pid, identity, app, uptime = row.split()
    assert (short, pid) == (h.id[:8], str(h.proc.pid))
    assert (identity, app) == (str(template().identity or "-"), "(org.example.Sleeper)")
    assert uptime.endswith("s")
    assert hakurei("ps", "--short", env=env).stdout == h.id[:8] + "\n"
    assert json.loads(hakurei("ps", "--short", "--json", env=env).stdout) == [h.id]
    states = json.loads(hakurei("ps", "--json", env=env).stdout)
    assert list(states) == [h.id]
    state = states[h.id]
    assert (state["instance"], state["pid"], state["shim_pid"]) == (h.id, h.proc.pid, h.app_pid)
    assert state["id"] == "org.example.Sleeper"


def test_show_id_prints_state_and_config_with_control_bytes_escaped(
    env: dict[str, str], holders: list[Holder]
) -> None:
    h = Holder(env, config())
    holders.append(h)
    r = hakurei("show", h.id[:8], env=env)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.startswith("State\n")
    assert f" Instance: {h.id} ({h.proc.pid} -> {h.app_pid})\n" in r.stdout
    assert "org.example.Sleeper" in r.stdout
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert '"note: \\x1b[31mred\\a"' in r.stdout
    state = json.loads(hakurei("show", h.id, "--json", env=env).stdout)
    assert state["instance"] == h.id and state["notes"] == ["note: \x1b[31mred\x07"]
    r = hakurei("show", "0123abcd", env=env)
    assert (r.returncode, r.stdout) == (125, "")
    assert r.stderr == 'hakurei: no live instance "0123abcd" (see hakurei ps)\n'


def test_kill_ends_the_app_with_the_signal_it_names(
    env: dict[str, str], holders: list[Holder]
) -> None:
    term = Holder(env, config())
    holders.append(term)
    r = hakurei("kill", term.id[:8], env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert term.status() == 128 + signal.SIGTERM  # init forwarded TERM to sleep
    hup = Holder(env, config())
    holders.append(hup)
    r = hakurei("kill", "--signal", "HUP", hup.id, env=env)
    assert (r.returncode, r.stderr) == (0, "")
    assert hup.status() == 128 + signal.SIGHUP
    # the holders reverted: nothing is live any more
    assert hakurei("ps", "--short", env=env).stdout == ""


def test_kill_refuses_an_app_whose_start_time_differs(
    env: dict[str, str], holders: list[Holder]
) -> None:
    h = Holder(env, config(), skew=1)
    holders.append(h)
    r = hakurei("kill", "--signal", "KILL", h.id, env=env)
    assert (r.returncode, r.stdout) == (125, "")
    assert r.stderr == (
        f"hakurei: instance {h.id[:8]}: refusing to signal pid {h.app_pid}: "
        "it is not the instance's app any more (its start time differs)\n"
    )
    assert h.proc.poll() is None and os.path.exists(f"/proc/{h.app_pid}")


def test_kill_of_unknown_ids_and_signals_is_one_line(
    env: dict[str, str], holders: list[Holder]
) -> None:
    h = Holder(env, config())
    holders.append(h)
    for args, line in [
        (["ffffffff"], 'no live instance "ffffffff" (see hakurei ps)'),
        (["not-an-id"], '"not-an-id" is not an instance id (hex digits, as ps shows)'),
        (["--signal", "NOPE", h.id], 'kill: unknown signal "NOPE" (a name like TERM, or a number)'),
        (["--signal", "0", h.id], 'kill: "0" is not a signal number'),
        ([], "kill: want one instance ID (see hakurei ps)"),
    ]:
        r = hakurei("kill", *args, env=env)
        assert (r.returncode, r.stdout, r.stderr) == (125, "", f"hakurei: {line}\n"), args
    assert h.proc.poll() is None


def test_a_dead_instance_is_never_listed_and_gc_removes_it(
    env: dict[str, str], holders: list[Holder]
) -> None:
    live, dead = Holder(env, config("org.example.Live")), Holder(env, config("org.example.Dead"))
    holders += [live, dead]
    dead.crash()
    store = Path(env["XDG_RUNTIME_DIR"]) / "hakurei"
    assert (store / dead.id / "entry.json").exists()  # the entry is still there...
    assert hakurei("ps", "--short", env=env).stdout == live.id[:8] + "\n"  # ...but not listed
    r = hakurei("kill", dead.id, env=env)
    assert (r.returncode, r.stderr) == (
        125,
        f'hakurei: no live instance "{dead.id}" (see hakurei ps)\n',
    )
    r = hakurei("gc", env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert not (store / dead.id).exists()
    assert (store / live.id / "entry.json").exists()  # a live instance is never touched
    assert hakurei("ps", "--short", env=env).stdout == live.id[:8] + "\n"


def test_gc_prints_one_line_per_failed_undo_step_and_still_removes_the_instance(
    env: dict[str, str], holders: list[Holder]
) -> None:
    h = Holder(env, config(), 0, "/etc/x-ID")
    holders.append(h)
    h.crash()
    r = hakurei("gc", env=env)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        f"hakurei: gc: {h.id}: refused: host path '/etc/x-{h.id}' is outside the allowed roots\n"
    )
    assert not (Path(env["XDG_RUNTIME_DIR"]) / "hakurei" / h.id).exists()
    assert hakurei("gc", env=env).returncode == 0  # nothing left to revert
