"""The PulseAudio enablement's host half: server discovery, the undo record, and the host calls.

The host seam (``hakurei.app.host``) is replaced by a recording fake, so what
``prepare`` asks of the server, in which order relative to the journal, and
what revert does with a hostile record are plain assertions.  The real server
is the integration test's job (``tests/integration/test_app_pulse.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from hakurei.app import host, journal, pulse
from hakurei.app.config import loads
from hakurei.app.enable import EnableError, Session
from hakurei.ops import Bind

ID = "0123456789abcdef0123456789abcdef"
SERVER = "/run/user/1000/pulse/native"


# --- server discovery ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "path"),
    [
        ({"PULSE_SERVER": "unix:/srv/pulse/native"}, "/srv/pulse/native"),
        ({"PULSE_SERVER": "/srv/pulse/native", "XDG_RUNTIME_DIR": "/r"}, "/srv/pulse/native"),
        ({"PULSE_SERVER": " unix:/srv//pulse/./native "}, "/srv/pulse/native"),
        ({"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/pulse/native"),
        ({"PULSE_SERVER": "", "XDG_RUNTIME_DIR": "/run/user/7"}, "/run/user/7/pulse/native"),
    ],
)
def test_server_is_found_where_libpulse_looks(env: dict[str, str], path: str) -> None:
    assert pulse.server_path(env) == path


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PULSE_SERVER": "tcp:localhost:4713"}, "is not a local unix: socket path"),
        ({"PULSE_SERVER": "localhost"}, "is not a local unix: socket path"),
        ({"PULSE_SERVER": "unix:pulse/native"}, "is not a local unix: socket path"),
        ({"PULSE_SERVER": "{abc}unix:/x/native"}, "is not a local unix: socket path"),
        ({"PULSE_SERVER": "unix:/a/native unix:/b/native"}, "lists several servers"),
        ({}, "XDG_RUNTIME_DIR is not set and PULSE_SERVER names no socket"),
        ({"XDG_RUNTIME_DIR": "run/user/1"}, "XDG_RUNTIME_DIR is not set"),
        ({"XDG_RUNTIME_DIR": '/r"un'}, "has whitespace, quotes or control characters"),
        ({"XDG_RUNTIME_DIR": "/run/user/1\x1b[2J"}, "has whitespace, quotes or control"),
        ({"XDG_RUNTIME_DIR": "/" + "r" * 100}, "is longer than 107 bytes"),
    ],
)
def test_server_that_an_app_cannot_be_given_is_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(EnableError, match="^pulse: .*" + message.replace("(", r"\(")) as e:
        pulse.server_path(env)
    assert "\n" not in str(e.value)


def test_cookie_is_found_in_libpulse_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config/pulse").mkdir(parents=True)
    (home / ".pulse-cookie").write_bytes(b"old")
    env = {"HOME": str(home)}
    assert pulse.cookie_path(env) == f"{home}/.pulse-cookie"
    (home / ".config/pulse/cookie").write_bytes(b"c" * 256)
    assert pulse.cookie_path(env) == f"{home}/.config/pulse/cookie"
    xdg = tmp_path / "xdg"
    (xdg / "pulse").mkdir(parents=True)
    (xdg / "pulse/cookie").write_bytes(b"x")
    assert pulse.cookie_path({**env, "XDG_CONFIG_HOME": str(xdg)}) == f"{xdg}/pulse/cookie"
    given = tmp_path / "given"
    given.write_bytes(b"g")
    assert pulse.cookie_path({**env, "PULSE_COOKIE": str(given)}) == str(given)
    # PULSE_COOKIE is used alone when set, as libpulse does: missing means no cookie.
    assert pulse.cookie_path({**env, "PULSE_COOKIE": str(tmp_path / "none")}) is None
    assert pulse.cookie_path({**env, "PULSE_COOKIE": str(tmp_path)}) is None  # a directory
    assert pulse.cookie_path({}) is None


# --- finding our module in a listing ---------------------------------------------------

OURS = f"/run/user/1000/hakurei/{ID}/pulse/native"


def test_module_argument_reads_back_as_its_socket() -> None:
    assert pulse.parse_modargs(pulse.module_argument(OURS)) == {"socket": OURS}


@pytest.mark.parametrize(
    ("argument", "parsed"),
    [
        ("", {}),
        ("socket=/a auth-anonymous=0", {"socket": "/a", "auth-anonymous": "0"}),
        ('socket=\'/a b\' x="c\\"d"', {"socket": "/a b", "x": 'c"d'}),
        ("  junk socket=/a\\ b", {"socket": "/a b"}),
        ("=x socket=", {"socket": ""}),
    ],
)
def test_module_arguments_parse_as_pulseaudio_reads_them(
    argument: str, parsed: dict[str, str]
) -> None:
    assert pulse.parse_modargs(argument) == parsed


def test_only_our_exact_socket_counts_as_our_module() -> None:
    listing = (
        "0\tmodule-native-protocol-unix\t\t\n"
        "1\tmodule-null-sink\t\t\n"
        f'6\tmodule-native-protocol-unix\tsocket="{OURS}"\t\n'
        f"7\tmodule-native-protocol-unix\tsocket={OURS} auth-anonymous=0\t\n"
        f'8\tmodule-native-protocol-unix\tsocket="{OURS}2"\t\n'
        f'9\tmodule-null-sink\tsocket="{OURS}"\t\n'
        f'x\tmodule-native-protocol-unix\tsocket="{OURS}"\t\n'
        "garbage\n"
    ).encode()
    assert pulse.modules_with_socket(listing, OURS) == [6, 7]


# --- the fake host ---------------------------------------------------------------------


class FakeHost:
    """Records every host call; answers from a tiny model of one server's module table."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.alive = True
        self.modules: dict[int, str] = {0: ""}
        self.next = 6
        self.load_fails = False
        self.unload_fails = False
        #: called before each pactl (a test looks at the journal on disk then)
        self.before: Callable[[], None] = lambda: None

    def probe(self, path: str) -> bool:
        self.calls.append(("probe", path))
        return self.alive

    def pactl(
        self, server: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        self.before()
        self.calls.append(("pactl", server, *args))
        if args[0] == "load-module":
            if self.load_fails:
                return 1, b"", b"Failure: Module initialization failed\n"
            self.modules[self.next] = args[2]
            self.next += 1
            return 0, f"{self.next - 1}\n".encode(), b""
        if args[:3] == ["list", "short", "modules"]:
            out = "".join(f"{i}\t{pulse.MODULE}\t{a}\t\n" for i, a in self.modules.items())
            return 0, out.encode(), b""
        if args[0] == "unload-module":
            if self.unload_fails:
                return 1, b"", b"Failure: No such entity\n"
            self.modules.pop(int(args[1]), None)
            return 0, b"", b""
        raise AssertionError(args)

    def make_dir(self, dir_fd: int, name: str) -> None:
        self.calls.append(("mkdir", name))
        os.mkdir(name, 0o700, dir_fd=dir_fd)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    f = FakeHost()
    monkeypatch.setattr(host, "pulse_probe", f.probe)
    monkeypatch.setattr(host, "pactl", f.pactl)
    monkeypatch.setattr(host, "pulse_make_dir", f.make_dir)
    return f


@pytest.fixture
def instance() -> Iterator[tuple[str, int]]:
    """An instance directory with a path short enough for a socket inside (pytest's are not)."""
    top = tempfile.mkdtemp(prefix="hk-pulse-", dir="/tmp")
    path = f"{top}/{ID}"
    os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield path, fd
    os.close(fd)
    shutil.rmtree(top)


def _replay(records: list[dict[str, Any]], dir_fd: int) -> list[str]:
    return journal.replay(records, journal.Context(ID, dir_fd, ["/nonexistent"]))


def _record(**fields: Any) -> dict[str, Any]:
    return {"kind": pulse.KIND, "server": SERVER, "socket": OURS, **fields}


# --- revert ----------------------------------------------------------------------------


def test_revert_unloads_the_module_found_by_its_socket(
    fake: FakeHost, instance: tuple[str, int]
) -> None:
    fake.modules = {0: "", 5: f'socket="{OURS}2"', 6: pulse.module_argument(OURS)}
    assert _replay([_record()], instance[1]) == []
    assert fake.modules == {0: "", 5: f'socket="{OURS}2"'}
    assert ("pactl", SERVER, "unload-module", "6") in fake.calls


def test_revert_with_the_module_or_the_server_gone_is_success(
    fake: FakeHost, instance: tuple[str, int]
) -> None:
    assert _replay([_record()], instance[1]) == []
    assert not any(c[2] == "unload-module" for c in fake.calls if c[0] == "pactl")
    fake.alive = False
    fake.calls.clear()
    assert _replay([_record()], instance[1]) == []
    assert fake.calls == [("probe", SERVER)]


def test_revert_reports_a_module_that_will_not_unload(
    fake: FakeHost, instance: tuple[str, int]
) -> None:
    fake.modules[6] = pulse.module_argument(OURS)
    fake.unload_fails = True
    (error,) = _replay([_record()], instance[1])
    assert error == f"pulse: cannot unload module 6 on {SERVER}: Failure: No such entity"


@pytest.mark.parametrize(
    "fields",
    [
        {"socket": f"/run/user/1000/hakurei/{'f' * 32}/pulse/native"},  # another instance
        {"socket": f"/run/user/1000/hakurei/{ID}/pulse/native/.."},
        {"socket": f"/run/user/1000/hakurei/{ID}/x/../pulse/native"},
        {"socket": f"run/user/1000/hakurei/{ID}/pulse/native"},
        {"socket": f'/run/user/1000/h" x=1 "/{ID}/pulse/native'},
        {"socket": f"/{'a' * 100}/{ID}/pulse/native"},
        {"server": "/run/user/1000/pulse/native unix:/evil"},
        {"server": "tcp:evil.example:4713"},
        {"server": "/run//user/1000/pulse/native"},
        {"server": "/run/user/1000/pulse/native\n"},
        {"server": 7},
        {"socket": None},
        {"extra": "field"},
    ],
)
def test_hostile_record_is_refused_before_the_server_is_asked(
    fake: FakeHost, instance: tuple[str, int], fields: dict[str, Any]
) -> None:
    fake.modules[6] = pulse.module_argument(OURS)
    (error,) = _replay([_record(**fields)], instance[1])
    assert error.startswith("refused: "), error
    assert fake.calls == []
    assert 6 in fake.modules


def test_record_from_the_journal_file_unloads_after_the_socket_dir_record(
    fake: FakeHost, instance: tuple[str, int]
) -> None:
    """The on-disk order: remove pulse, then pulse_unload; replay unloads, then removes."""
    path, fd = instance
    j = journal.Journal.create(fd)
    j.record("remove", path=pulse.DIR)
    os.mkdir(f"{path}/pulse")
    j.record(pulse.KIND, server=SERVER, socket=OURS)
    j.close()
    fake.modules[6] = pulse.module_argument(OURS)
    records, problems = journal.read(fd)
    assert problems == []
    assert _replay(records, fd) == []
    assert 6 not in fake.modules and not os.path.exists(f"{path}/pulse")
    lines = [json.loads(x) for x in Path(path, "journal").read_text().splitlines()[1:]]
    assert [x["kind"] for x in lines] == ["remove", pulse.KIND]


# --- check and prepare -----------------------------------------------------------------


def _session(instance: tuple[str, int], env: dict[str, str], mode: str) -> Session:
    config = loads(
        json.dumps(
            {
                "enablements": {"pulse": True},
                "pulse_socket": mode,
                "container": {"shell": "/bin/sh", "home": "/home/app", "path": "/bin/true"},
            }
        )
    )
    return Session(
        config=config,
        host_env=env,
        instance_id=ID,
        instance_dir=instance[0],
        instance_dir_fd=instance[1],
        runtime="/run/user/1000",
        uid=1000,
        gid=1000,
        journal=journal.Journal.create(instance[1]),
    )


def _journal_kinds(path: str) -> list[str]:
    lines = Path(path, "journal").read_text().splitlines()[1:]
    return [json.loads(x)["kind"] for x in lines]


def test_check_says_in_one_line_why_the_server_cannot_be_used(instance: tuple[str, int]) -> None:
    runtime = Path(os.path.dirname(instance[0]), "rt")  # short enough for sun_path
    (runtime / "pulse").mkdir(parents=True)
    s = _session(instance, {"XDG_RUNTIME_DIR": str(runtime)}, "instance")
    native = runtime / "pulse/native"
    with pytest.raises(EnableError, match=f"^pulse: no PulseAudio server at {native} "):
        pulse.Pulse().check(s)
    native.write_text("")
    with pytest.raises(EnableError, match=f"^pulse: {native} is not a socket$"):
        pulse.Pulse().check(s)
    native.unlink()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(native))
    stale.close()  # a server that died: its socket file stays, nobody accepts
    with pytest.raises(EnableError, match=r"^pulse: no PulseAudio server at "):
        pulse.Pulse().check(s)
    native.unlink()
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(native))
    live.listen()
    pulse.Pulse().check(s)
    live.close()


def test_prepare_journals_before_it_loads_and_binds_the_instance_socket(
    tmp_path: Path, instance: tuple[str, int], fake: FakeHost
) -> None:
    cookie = tmp_path / "cookie"
    cookie.write_bytes(b"c" * 256)
    env = {"PULSE_SERVER": f"unix:{SERVER}", "PULSE_COOKIE": str(cookie)}
    s = _session(instance, env, "instance")
    seen: list[list[str]] = []
    fake.before = lambda: seen.append(_journal_kinds(instance[0]))  # on disk when pactl runs
    p = pulse.Pulse()
    p.check(s)
    grant = trio.run(p.prepare, s)
    own = f"{instance[0]}/pulse/native"
    assert seen == [["remove", pulse.KIND]]
    assert fake.calls[-1] == ("pactl", SERVER, "load-module", pulse.MODULE, f'socket="{own}"')
    assert [(type(o), o.source, o.target, o.flags) for o in grant.ops] == [
        (Bind, own, "/run/user/1000/pulse/native", 0),
        (Bind, str(cookie), "/run/user/1000/pulse/cookie", 0),
    ]
    assert grant.env == {
        "PULSE_SERVER": "unix:/run/user/1000/pulse/native",
        "PULSE_COOKIE": "/run/user/1000/pulse/cookie",
    }
    assert os.stat(f"{instance[0]}/pulse").st_mode & 0o777 == 0o700


def test_module_that_cannot_be_loaded_falls_back_to_the_main_socket_with_a_warning(
    tmp_path: Path,
    instance: tuple[str, int],
    fake: FakeHost,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.load_fails = True
    s = _session(instance, {"PULSE_SERVER": SERVER, "HOME": "/nonexistent"}, "instance")
    grant = trio.run(pulse.Pulse().prepare, s)
    assert [(o.source, o.target) for o in grant.ops] == [  # type: ignore[attr-defined]
        (SERVER, "/run/user/1000/pulse/native")
    ]
    err = capsys.readouterr().err
    assert err == (
        "hakurei: warning: pulse: cannot load a socket of the app's own "
        "(pactl load-module: Failure: Module initialization failed): it gets the main one\n"
    )
    assert "no revocation" in grant.notes[0]
    assert _journal_kinds(instance[0]) == ["remove", pulse.KIND]  # replay is still harmless


def test_shared_mode_binds_the_main_socket_and_touches_nothing(
    tmp_path: Path,
    instance: tuple[str, int],
    fake: FakeHost,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = _session(instance, {"PULSE_SERVER": SERVER}, "shared")
    grant = trio.run(pulse.Pulse().prepare, s)
    assert [(o.source, o.target) for o in grant.ops] == [  # type: ignore[attr-defined]
        (SERVER, "/run/user/1000/pulse/native")
    ]
    assert [c[0] for c in fake.calls] == ["probe"]
    assert _journal_kinds(instance[0]) == []
    assert capsys.readouterr().err == ""
