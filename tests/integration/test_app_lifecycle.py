"""``hakurei app``: a real launcher, a real container, and what a user observes of both.

Each test gives the launcher its own HOME and TMPDIR (so its own state store,
``$TMPDIR/hakurei.<uid>``: there is no XDG_RUNTIME_DIR) and a config whose
filesystem is the host's programs read-only.  No desktop service is needed:
these are the process model's promises (silence, exit status, signals,
crash recovery), not an enablement's.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import select
import signal
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hakurei.app import enablements, journal
from hakurei.app.config import loads
from hakurei.app.enable import EnableError
from hakurei.app.monitor import Launch, launch
from hakurei.app.store import Store
from hakurei.cli.run import _filesystem
from hakurei.profile import account

from conftest import COUNT_SIGINTS, descendants

DEADLINE = 20.0


class Box:
    """One test's launcher environment: HOME, TMPDIR and the store under it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.home.mkdir(mode=0o700)
        self.tmp.mkdir(mode=0o700)
        self.store = self.tmp / f"hakurei.{os.getuid()}"
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "TERM": "xterm-test",
            "LANG": "C.UTF-8",
        }

    def config(self, argv: list[str], **container: Any) -> str:
        """Write a config running ``argv`` and return its path."""
        c: dict[str, Any] = {
            "shell": "/bin/sh",
            "home": "/home/app",
            "path": argv[0] if argv[0].startswith("/") else f"/usr/bin/{argv[0]}",
            "args": argv,
            "env": {"PATH": "/usr/bin:/bin", "APP_VAR": "from config"},
            "filesystem": _filesystem("/home/app"),
            "username": "app",
        }
        c.update(container)
        path = self.root / f"app-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps({"id": "org.example.Test", "container": c}))
        return str(path)

    def app(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        """``hakurei app ARGS`` as a user starts it."""
        env = dict(self.env, **kw.pop("env", {}))
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            [sys.executable, "-m", "hakurei", "app", *args], env=env, text=True, **kw
        )

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        p = self.app(*args, **kw)
        out, err = p.communicate(timeout=60)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def instances(self) -> list[str]:
        """Instance directories in the store (live or not)."""
        if not self.store.exists():
            return []
        return sorted(n for n in os.listdir(self.store) if len(n) == 32)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    yield Box(tmp_path)


def _alive(pid: int, start: int | None) -> bool:
    got = journal.starttime(pid)
    if got is None or (start is not None and got != start):
        return False
    status = Path(f"/proc/{pid}/status").read_text() if os.path.exists(f"/proc/{pid}") else ""
    return "\nState:\tZ" not in status


def _with_marker(marker: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes() and _alive(
                    int(d), None
                ):
                    out.append(int(d))
            except OSError:
                continue
    return out


def _until(cond: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < end, what
        time.sleep(0.02)


# -- exit status and silence ------------------------------------------------------------


def test_success_is_silent_and_leaves_no_instance(box: Box) -> None:
    done = box.run(box.config(["true"]))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert box.instances() == []


@pytest.mark.parametrize(
    ("script", "status"),
    [("exit 3", 3), ("kill -TERM $$", 128 + signal.SIGTERM), ("kill -KILL $$", 137)],
)
def test_exit_status_is_the_apps_with_128_plus_n_for_a_signal(
    box: Box, script: str, status: int
) -> None:
    done = box.run(box.config(["/bin/sh", "-c", script]))
    assert (done.returncode, done.stderr) == (status, "")
    assert box.instances() == []


def test_verbose_names_each_step(box: Box) -> None:
    done = box.run("-v", box.config(["true"]))
    assert done.returncode == 0
    for step in ("checking enablements", "serving the setup", "reverting"):
        assert f"hakurei: {step}" in done.stderr


def test_a_config_that_does_not_load_is_one_line_and_125(box: Box) -> None:
    bad = box.root / "bad.json"
    bad.write_text('{"container": {"shell": "/bin/sh"}}')
    done = box.run(str(bad))
    assert done.returncode == 125
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("hakurei: ")
    assert box.instances() == []


def test_a_setup_failure_reverts_and_exits_125(box: Box) -> None:
    missing = [{"type": "bind", "src": str(box.root / "no-such-dir"), "dst": "/mnt"}]
    config = box.config(["true"], filesystem=_filesystem("/home/app") + missing)
    done = box.run(config)
    assert done.returncode == 125, done.stderr
    assert "no-such-dir" in done.stderr and done.stderr.count("\n") == 1
    assert box.instances() == []


def test_config_from_stdin_or_an_inherited_fd_with_args_appended(box: Box) -> None:
    text = Path(box.config(["/bin/sh", "-c", 'echo "$@"', "sh", "a"])).read_text()
    p = box.app("-", "b", "c", stdin=subprocess.PIPE)
    out, err = p.communicate(text, timeout=60)
    assert (p.returncode, out, err) == (0, "a b c\n", "")
    r, w = os.pipe()
    os.write(w, text.encode())
    os.close(w)
    done = box.run(str(r), "d", pass_fds=(r,))
    os.close(r)
    assert (done.returncode, done.stdout, done.stderr) == (0, "a d\n", "")


# -- what the app sees -------------------------------------------------------------------


def test_passwd_id_home_and_environment_inside_are_as_documented(box: Box) -> None:
    uid, gid = os.getuid(), os.getgid()
    script = (
        "cat /etc/passwd; echo --; id -u; id -g; echo --; stat -c %a /run/user/$(id -u);"
        " echo written > $HOME/mark; pwd; echo --; /usr/bin/env -0"
    )
    done = box.run(box.config(["/bin/sh", "-c", script]))
    assert done.returncode == 0, done.stderr
    passwd, ids, misc, env_text = done.stdout.split("--\n")
    assert f"app:x:{uid}:{gid}:Hakurei:/home/app:/bin/sh\n" in passwd
    assert ids.split() == [str(uid), str(gid)]
    assert misc.split() == ["700", "/home/app"]
    # HOME is a persistent private dir on the host, under XDG_DATA_HOME's default.
    mark = box.home / ".local/share/hakurei/org.example.Test/mark"
    assert mark.read_text() == "written\n"
    env = dict(e.split("=", 1) for e in env_text.strip("\n\0").split("\0"))
    env.pop("PWD", None)  # the shell's own
    env.pop("SHLVL", None)
    assert env == {
        "APP_VAR": "from config",
        "HOME": "/home/app",
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin:/bin",
        "SHELL": "/bin/sh",
        "TERM": "xterm-test",
        "USER": "app",
        "XDG_RUNTIME_DIR": f"/run/user/{uid}",
        "XDG_SESSION_CLASS": "user",
        "XDG_SESSION_TYPE": "tty",
    }


def test_the_state_store_is_hidden_where_a_bind_would_show_it(box: Box) -> None:
    """The store (instance dirs hold cookies) sits under a bound dir: the app sees it empty."""
    fs = [*_filesystem("/home/app"), {"type": "bind", "src": str(box.root), "dst": "/mnt/box"}]
    seen = f"/mnt/box/{box.store.relative_to(box.root)}"
    script = f"ls -A {seen} | wc -l; ls /mnt/box"
    done = box.run(box.config(["/bin/sh", "-c", script], filesystem=fs))
    assert done.returncode == 0, done.stderr
    count, *listing = done.stdout.split()
    assert count == "0"
    assert "home" in listing  # the rest of the bind is there


# -- signals -----------------------------------------------------------------------------


def _armed(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line == "armed\n", (line, p.stderr.read() if p.stderr else "")


def _started(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")


@pytest.mark.parametrize("group", [False, True], ids=["launcher", "terminal-group"])
def test_ctrl_c_reaches_the_app_and_the_launcher_reverts(box: Box, group: bool) -> None:
    """SIGINT to the launcher alone, or to its whole process group as a terminal sends it.

    Either way the app gets it once: an app may take a second Ctrl-C as
    "quit now", so one press must not arrive twice (the launcher's own
    forward and its shim's relay of the group's signal).
    """
    p = box.app(box.config(["python3", "-c", COUNT_SIGINTS]), start_new_session=group)
    _armed(p)
    assert len(box.instances()) == 1
    if group:
        os.killpg(p.pid, signal.SIGINT)
    else:
        p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out, err) == (7, "got-int-1-times\n", "")
    assert box.instances() == []


def test_an_app_sharing_the_terminal_gets_its_ctrl_c_once_and_decides_itself(box: Box) -> None:
    """``tty: true``: the app is in the terminal's foreground group, as the launcher is.
    A Ctrl-C reaches it from the terminal once; the launcher neither sends another nor
    stops it (the app below goes on after it, and its own status is the launcher's)."""
    master, slave = os.openpty()
    try:
        p = box.app(
            box.config(["python3", "-c", COUNT_SIGINTS], tty=True),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        seen = b""
        deadline = time.monotonic() + 30
        while b"armed" not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 1.0)[0]:
                seen += os.read(master, 4096)
        os.write(master, b"\x03")
        while p.poll() is None or select.select([master], [], [], 0)[0]:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        assert b"got-int-1-times" in seen, seen
        assert p.returncode == 7
        assert box.instances() == []
    finally:
        os.close(master)
        os.close(slave)


def test_an_app_that_ignores_sigint_is_killed_after_wait_delay(box: Box) -> None:
    script = 'trap "" INT; echo ready; while :; do sleep 0.05; done'
    p = box.app(box.config(["/bin/sh", "-c", script], wait_delay=1_000_000_000))
    _started(p)
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - start >= 1.0
    assert (p.returncode, err) == (128 + signal.SIGKILL, "")
    assert box.instances() == []


def test_a_negative_wait_delay_kills_at_once(box: Box) -> None:
    script = 'trap "" INT; echo ready; while :; do sleep 0.05; done'
    p = box.app(box.config(["/bin/sh", "-c", script], wait_delay=-1))
    _started(p)
    start = time.monotonic()
    p.send_signal(signal.SIGHUP)
    p.communicate(timeout=30)
    assert time.monotonic() - start < 4.0  # not the 5 s default
    assert p.returncode == 128 + signal.SIGKILL
    assert box.instances() == []


# -- instances -----------------------------------------------------------------------------


def test_two_instances_run_at_once_each_with_its_own_entry(box: Box) -> None:
    config = box.config(["/bin/sh", "-c", "echo ready; read line; echo $line"])
    apps = [box.app(config, stdin=subprocess.PIPE) for _ in range(2)]
    for p in apps:
        _started(p)
    ids = box.instances()
    assert len(ids) == 2
    with Store(str(box.store)) as st:
        entries = st.live()
    assert sorted(e["id"] for e in entries) == ids
    launchers = sorted(e["info"]["launcher"]["pid"] for e in entries)
    assert launchers == sorted(p.pid for p in apps)
    for e in entries:
        info = e["info"]
        assert info["enablements"] == [] and info["notes"] == []
        assert info["argv"] == ["/bin/sh", "-c", "echo ready; read line; echo $line"]
        assert info["config"]["id"] == "org.example.Test"
        assert _alive(info["app"]["pid"], info["app"]["starttime"])
    for i, p in enumerate(apps):
        out, _ = p.communicate(f"bye{i}\n", timeout=30)
        assert (p.returncode, out) == (0, f"bye{i}\n")
    assert box.instances() == []


def test_identifier_fd_gets_the_instance_id_once_the_app_runs(box: Box) -> None:
    r, w = os.pipe()
    p = box.app(
        "--identifier-fd",
        str(w),
        box.config(["/bin/sh", "-c", "read x"]),
        stdin=subprocess.PIPE,
        pass_fds=(w,),
    )
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()  # EOF: the launcher closed it after the id
        assert got.endswith("\n") and len(got) == 33
        assert box.instances() == [got.strip()]
    p.communicate("\n", timeout=30)
    assert p.returncode == 0
    assert box.instances() == []


def test_a_bad_identifier_fd_is_refused(box: Box) -> None:
    done = box.run("--identifier-fd", "32767", box.config(["true"]))
    assert done.returncode == 125
    assert done.stderr == "hakurei: cannot write identifier: bad file descriptor\n"
    assert box.instances() == []


def test_an_enablement_not_built_fails_with_one_line_and_no_instance(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(enablements.ENABLEMENTS, "x11", ("not_built_x11", "X11"))
    config = loads(
        Path(box.config(["true"])).read_text().replace('"id"', '"enablements": {"x11": true}, "id"')
    )
    with pytest.raises(EnableError, match=r"^x11: not available in this build$"):
        launch(Launch(config, host_env=box.env, store_path=str(box.store)))
    assert box.instances() == []


# -- crash recovery ----------------------------------------------------------------------------


def _steps(box: Box, config: str) -> int:
    done = box.run("-v", config, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return sum(
        1
        for line in done.stderr.splitlines()
        if line.startswith("hakurei: ") and not line.startswith("hakurei: gc:")
    )


@pytest.mark.timeout(300)
def test_sigkill_of_the_launcher_at_any_moment_leaves_nothing_after_gc(box: Box) -> None:
    """Every step (HAKUREI_MONITOR_KILL_AT), then random moments; gc or the next app cleans."""
    script = "echo ready; read x; exit 0"
    nonce = "hk-nonce-"
    steps = _steps(box, box.config(["/bin/sh", "-c", script, nonce + "count"]))
    assert steps >= 8
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    points: list[tuple[str, float]] = [("step", n) for n in range(1, steps + 1)]
    points += [("time", rng.uniform(0.0, 1.5)) for _ in range(50 - len(points))]
    for i, (how, when) in enumerate(points):
        where = f"run {i}: killed at {how} {when} (seed {seed})"
        marker = f"{nonce}{uuid.uuid4().hex}"
        config = box.config(["/bin/sh", "-c", script, marker])
        env = {"HAKUREI_MONITOR_KILL_AT": str(int(when))} if how == "step" else {}
        p = box.app(config, stdin=subprocess.PIPE, env=env)
        seen: list[tuple[int, int | None]] = []
        if how == "time":
            end = time.monotonic() + when
            while time.monotonic() < end and p.poll() is None:
                seen += [(k, journal.starttime(k)) for k in descendants(p.pid)]
                time.sleep(0.01)
            seen += [(k, journal.starttime(k)) for k in descendants(p.pid)]
            p.kill()
        p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL, where
        entries = []
        for id in box.instances():
            try:
                entries.append(json.loads((box.store / id / "entry.json").read_text()))
            except FileNotFoundError:
                pass
        if i % 5 == 4:  # the next launch collects it too
            done = box.run(box.config(["true"]))
            assert (done.returncode, done.stderr) == (0, ""), where
        else:
            with Store(str(box.store)) as st:
                assert st.live() == [], where
                assert st.gc() == [], where
        assert box.instances() == [], where
        for e in entries:
            app = e["info"]["app"]
            seen.append((app["pid"], app["starttime"]))
        _until(lambda m=marker: not _with_marker(m), f"{where}: the app still runs")
        _until(lambda s=seen: not [k for k, t in s if _alive(k, t)], f"{where}: {seen} still run")


# -- hakurei run ---------------------------------------------------------------------------


def _run(box: Box, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = dict(box.env, SHELL="/bin/sh", **kw.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "hakurei", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kw,
    )


def test_run_gives_each_id_a_private_persistent_home_and_shared_tmp(box: Box) -> None:
    write = "echo kept > $HOME/file; echo shared > /tmp/t; echo $HOME; ls -A /home | wc -l"
    done = _run(box, "--id", "org.example.Run", "--", "/bin/sh", "-c", write)
    assert (done.returncode, done.stderr) == (0, "")
    home, entries = done.stdout.split()
    assert home == account(os.getuid())[1]  # the user's own home path, inside
    assert entries == "1"  # only the app's own home: nothing else of the user's files
    host = box.home / ".local/share/hakurei/org.example.Run"
    assert (host / "file").read_text() == "kept\n"
    assert oct(host.stat().st_mode & 0o777) == "0o700"

    read = "cat $HOME/file /tmp/t"
    again = _run(box, "--id", "org.example.Run", "sh", "-c", read)  # CMD looked up in PATH
    assert (again.returncode, again.stdout, again.stderr) == (0, "kept\nshared\n", "")
    private = _run(box, "--id", "org.example.Run", "--private-tmpdir", "sh", "-c", read)
    assert private.returncode == 1 and private.stdout == "kept\n"
    other = _run(box, "--id", "org.example.Other", "sh", "-c", "ls -A $HOME | wc -l")
    assert other.stdout == "0\n"
    assert box.instances() == []


def test_run_without_a_command_runs_the_users_shell(box: Box) -> None:
    done = _run(box, input="echo from-$0\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "from-/bin/sh\n", "")


@pytest.mark.parametrize(
    "args",
    [("--dbus-config", "/nonexistent.json"), ("--", "no-such-command-here"), ("--bogus",)],
)
def test_run_refuses_bad_input_with_one_line(box: Box, args: tuple[str, ...]) -> None:
    done = _run(box, *args)
    assert done.returncode == 125
    assert done.stderr.startswith("hakurei: ") and done.stderr.count("\n") == 1
    assert box.instances() == []
