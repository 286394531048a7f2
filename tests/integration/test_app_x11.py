"""The X11 enablement against a real Xvfb, with real X clients in real containers.

The test starts its own ``Xvfb -noreset -displayfd`` as the test user (the
server picks a free display, and writes its number once it accepts
connections: the readiness signal), with a generated cookie that ``xauth``
(the real tool, not our writer) puts in the server's and the user's files.
Each container is built like the launcher's: the default profile (host
``/usr``, auto ``/etc`` with ``/etc/passwd`` placed, tmpfs ``/tmp`` and home), a
private 0700 ``/run/user/<uid>`` tmpfs, the everyday seccomp filter, a
hostname that is not the host's, then the enablement's ``Grant``.  The
instance (directory, journal) is a real state-store instance, and revert is
its journal replay, by the instance's own ``revert()`` or by ``gc``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from desktop import Display, xvfb

from hakurei import run_sync
from hakurei.app.enable import EnableError, Grant, Session
from hakurei.app.records import Config, ContainerConfig, Enablements
from hakurei.app.store import Instance, Store
from hakurei.app.x11 import TIMEOUT as X11_TIMEOUT
from hakurei.app.x11 import X11
from hakurei.errors import StartError
from hakurei.ops import BIND_WRITABLE, Ops
from hakurei.profile import default_env, default_profile
from hakurei.results import Completed
from hakurei.std import EVERYDAY

DEADLINE = 30.0
UID, GID = os.getuid(), os.getgid()
RUNTIME = f"/run/user/{UID}"


@pytest.fixture(scope="module")
def display() -> Iterator[Display]:
    with xvfb() as d:
        yield d


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "store"
    with Store(str(path)) as st:
        yield st


def session(d: Display, inst: Instance, cookie: str = "untrusted", **env: str) -> Session:
    container = ContainerConfig(shell="/bin/sh", home="/home/app", path="/usr/bin/xdpyinfo")
    config = Config(container=container, enablements=Enablements(x11=True), x11_cookie=cookie)
    host_env = {"DISPLAY": f":{d.number}", "XAUTHORITY": d.authority, **env}
    return Session(
        config, host_env, inst.id, inst.path, inst.dir_fd, RUNTIME, UID, GID, inst.journal
    )


#: The enablements of the running test: without a nursery each holds its connection on the
#: new cookie itself, so each must live as long as the test's app (a monitor's would).
HELD: list[X11] = []


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    for x in HELD:
        if x.held is not None:
            x.held.close()
    HELD.clear()


def grant(d: Display, inst: Instance, cookie: str = "untrusted") -> Grant:
    s = session(d, inst, cookie)
    x = X11()
    x.check(s)
    HELD.append(x)
    return trio.run(x.prepare, s)


def run(argv: list[str], g: Grant, extra: Ops | None = None) -> Completed:
    """``argv`` in a launcher-like container that gets ``g``."""
    profile = default_profile(UID, GID)
    profile.extend(Ops().tmpfs(RUNTIME, 0, 0o700))
    profile.extend(g.ops)
    if extra is not None:
        profile.extend(extra)
    try:
        return run_sync(
            argv[0],
            argv,
            ops=profile.finish(),
            env={**default_env({}, UID), **g.env},
            uid=UID,
            gid=GID,
            hostname="sandbox",
            seccomp_presets=EVERYDAY,
            capture_output=True,
            text=True,
            timeout=DEADLINE * 2,
        )
    except StartError as e:
        if e.result is None:
            raise
        return e.result


def extensions(result: Completed) -> int:
    assert result.returncode == 0, result.stderr
    assert isinstance(result.stdout, str)
    m = re.search(r"^number of extensions:\s+(\d+)$", result.stdout, re.M)
    assert m is not None, result.stdout[:2000]
    return int(m.group(1))


def colours(d: Display) -> int:
    """How many different colours the screen shows now."""
    return d.colours()


def wait_for(what: str, predicate: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {DEADLINE} s")
        time.sleep(0.05)


# --- what a client inside sees ----------------------------------------------------------


def test_an_untrusted_client_sees_the_display_and_only_a_few_extensions(
    display: Display, store: Store
) -> None:
    untrusted = store.create()
    trusted = store.create()
    try:
        few = run(["xdpyinfo"], grant(display, untrusted, "untrusted"))
        many = run(["xdpyinfo"], grant(display, trusted, "trusted"))
    finally:
        assert untrusted.revert() == []
        assert trusted.revert() == []
    assert f"name of display:    :{display.number}" in str(few.stdout)
    # Measured on Debian 12's Xvfb: 2 against 23.
    assert extensions(few) <= 4 < 10 <= extensions(many)


def test_the_app_sees_its_environment_and_one_read_only_cookie(
    display: Display, store: Store
) -> None:
    inst = store.create()
    try:
        out = run(
            [
                "/bin/sh",
                "-c",
                'echo "$DISPLAY $XAUTHORITY $XDG_SESSION_TYPE"; ls -A /tmp/.X11-unix; '
                'echo x >> "$XAUTHORITY" || echo read-only',
            ],
            grant(display, inst),
        )
    finally:
        assert inst.revert() == []
    assert out.returncode == 0, out.stderr
    assert str(out.stdout).split("\n")[:3] == [
        f":{display.number} {RUNTIME}/Xauthority x11",
        f"X{display.number}",
        "read-only",
    ]


def test_no_other_displays_socket_is_visible_inside(display: Display, store: Store) -> None:
    others = set(os.listdir("/tmp/.X11-unix")) - {f"X{display.number}"}
    decoy = None
    if not others:  # make one: another display's socket beside ours
        for n in range(display.number + 100, display.number + 200):
            if not os.path.exists(f"/tmp/.X11-unix/X{n}"):
                decoy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                decoy.bind(f"/tmp/.X11-unix/X{n}")
                others = {f"X{n}"}
                break
    assert others
    inst = store.create()
    try:
        out = run(["/bin/ls", "-A", "/tmp/.X11-unix"], grant(display, inst))
    finally:
        assert inst.revert() == []
        if decoy is not None:
            os.unlink(decoy.getsockname())
            decoy.close()
    assert out.returncode == 0, out.stderr
    assert str(out.stdout).split() == [f"X{display.number}"]


# --- a real client draws, and revert cuts it off ----------------------------------------


def test_an_untrusted_xterm_draws_and_revert_disconnects_it(
    display: Display, store: Store, tmp_path: Path
) -> None:
    assert colours(display) == 1  # -br: a black root, nothing drawn yet
    inst = store.create()
    g = grant(display, inst)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    # xterm holds its window until /ctl/stop appears (never, unless the test fails).
    script = "while ! test -e /ctl/stop; do sleep 0.1; done"
    results: list[Completed] = []
    thread = threading.Thread(
        target=lambda: results.append(
            run(
                ["xterm", "-geometry", "40x10+0+0", "-e", "sh", "-c", script],
                g,
                Ops().bind(str(ctl), "/ctl", BIND_WRITABLE),
            )
        )
    )
    thread.start()
    try:
        wait_for("window drawn on the screen", lambda: colours(display) > 1)
        assert inst.revert() == []  # the journal replay revokes the cookie...
        thread.join(DEADLINE)  # ...and the server disconnects xterm: it exits by itself
        assert not thread.is_alive(), "xterm still runs after its cookie was revoked"
    finally:
        (ctl / "stop").touch()
        thread.join(DEADLINE)
    assert results and results[0].returncode != 0
    # xterm: fatal IO error 11 (Resource temporarily unavailable) or KillClient on X server ":N"
    assert "fatal IO error" in str(results[0].stderr), results[0].stderr
    wait_for("black screen after xterm is gone", lambda: colours(display) == 1)


def test_after_gc_reverts_a_dead_instance_its_cookie_is_refused(
    display: Display, store: Store, tmp_path: Path
) -> None:
    inst = store.create()
    g = grant(display, inst)
    cookie = Path(inst.path, "Xauthority").read_bytes()
    assert extensions(run(["xdpyinfo"], g)) <= 4
    inst.close()  # the monitor dies without reverting
    assert store.gc() == []
    assert not Path(inst.path).exists()
    # The same cookie, bound where the grant put it: the server no longer knows it.
    kept = tmp_path / "kept"
    kept.write_bytes(cookie)
    socket_path = f"/tmp/.X11-unix/X{display.number}"
    again = Grant(
        ops=list(
            Ops()
            .bind(socket_path, socket_path, BIND_WRITABLE)
            .bind(str(kept), f"{RUNTIME}/Xauthority")
        ),
        env=g.env,
    )
    refused = run(["xdpyinfo"], again)
    assert refused.returncode != 0
    assert "Invalid MIT-MAGIC-COOKIE-1 key" in str(refused.stderr), refused.stderr


# --- what cannot work is one line ------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DISPLAY": ":{unused}"}, "is not a socket (no X server on :{unused}?)"),
        ({"DISPLAY": "localhost:{n}"}, "is a network display"),
        ({"DISPLAY": "unix:/tmp/.X11-unix/X{n}"}, "is not a local display"),
        ({"XAUTHORITY": "{tmp}/nonexistent"}, "refused us: "),
    ],
)
def test_a_display_that_cannot_be_used_is_refused_with_one_line(
    display: Display, store: Store, env: dict[str, str], says: str
) -> None:
    unused = next(n for n in range(1000, 2000) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    fill = {"n": display.number, "unused": unused, "tmp": display.tmp}
    inst = store.create()
    try:
        s = session(display, inst, **{k: v.format(**fill) for k, v in env.items()})
        with pytest.raises(EnableError) as e:
            X11().check(s)
    finally:
        assert inst.revert() == []
    line = str(e.value)
    assert says.format(**fill) in line
    assert line.startswith("x11: ") and "\n" not in line


def test_an_app_that_reconnects_after_the_timeout_still_gets_in(
    display: Display, store: Store
) -> None:
    inst = store.create()
    try:
        g = grant(display, inst)
        assert extensions(run(["xdpyinfo"], g)) <= 4
        # No client of the app is connected now; the enablement's own connection keeps the
        # authorization from expiring (the server's timer runs only while nobody uses it).
        time.sleep(X11_TIMEOUT + 2)
        assert extensions(run(["xdpyinfo"], g)) <= 4
    finally:
        assert inst.revert() == []


# --- a monitor killed at the worst moment ------------------------------------------------

MONITOR = r"""
import os, sys, trio
from hakurei.app.enable import Session
from hakurei.app.records import Config, ContainerConfig, Enablements
from hakurei.app.store import Store
from hakurei.app.x11 import TIMEOUT as X11_TIMEOUT
from hakurei.app.x11 import X11

store, display, authority = sys.argv[1:4]
inst = Store(store).create()
config = Config(
    container=ContainerConfig(shell="/bin/sh", home="/home/app", path="/usr/bin/xdpyinfo"),
    enablements=Enablements(x11=True),
)
env = {"DISPLAY": display, "XAUTHORITY": authority}
uid, gid = os.getuid(), os.getgid()
s = Session(config, env, inst.id, inst.path, inst.dir_fd, "/run/user/0", uid, gid, inst.journal)
x = X11()
x.check(s)
trio.run(x.prepare, s)
print(inst.path, flush=True)
sys.stdin.read()  # until the test SIGKILLs us
"""


def test_a_killed_monitors_cookie_dies_by_itself_and_gc_is_still_success(
    display: Display, store: Store, tmp_path: Path
) -> None:
    monitor = subprocess.Popen(
        [sys.executable, "-c", MONITOR, store.path, f":{display.number}", display.authority],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert monitor.stdout is not None
        instance = monitor.stdout.readline().decode().strip()
        assert instance, "the monitor did not get to prepare"
        cookie = Path(instance, "Xauthority")
        env = {**os.environ, "DISPLAY": f":{display.number}", "XAUTHORITY": str(cookie)}
        assert subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode == 0
    finally:
        monitor.kill()  # with its connection on the cookie: the server's timer starts
        monitor.wait()

    def accepted() -> bool:
        return subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode == 0

    assert accepted()  # the kill revoked nothing: an app still running would keep working
    # Each use restarts the server's timer, so look no more often than it runs: what is
    # awaited here is the server's clock itself.
    for _ in range(3):
        time.sleep(X11_TIMEOUT + 2)
        if not accepted():
            break
    else:
        pytest.fail(f"the dead monitor's cookie is still accepted {X11_TIMEOUT} s after")
    assert store.gc() == []  # the authorization is gone already: revoking it is success
    assert not Path(instance).exists()
