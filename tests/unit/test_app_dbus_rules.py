"""The D-Bus enablement's pure parts: bus addresses (hostile ones too) and proxy arguments."""

from __future__ import annotations

import os
import stat
import tempfile

import pytest

from hakurei.app import dbus
from hakurei.app.dbus import Address, bus_args, encode_args, parse_address
from hakurei.app.enable import EnableError, Session
from hakurei.app.records import BusConfig, Config, ContainerConfig, default_session_bus


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("unix:path=/run/user/1000/bus", Address(path="/run/user/1000/bus")),
        ("unix:path=/tmp/a%20b,guid=0123abcd", Address(path="/tmp/a b")),
        ("unix:path=/tmp/%c3%a9", Address(path="/tmp/\u00e9")),
        ("unix:abstract=/tmp/dbus-XYZ,guid=42", Address(abstract="/tmp/dbus-XYZ")),
        # libdbus tries a list in order: the first usable entry wins
        ("tcp:host=h,port=1;unix:path=/b;unix:path=/c", Address(path="/b")),
        (";;unix:path=/b;", Address(path="/b")),
    ],
)
def test_local_addresses_are_understood(text: str, want: Address) -> None:
    assert parse_address(text, "X") == want


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        (";", "empty"),
        ("/run/user/1000/bus", "no transport"),
        ("tcp:host=localhost,port=1", 'transport "tcp" is not supported'),
        ("unixexec:path=/bin/sh", "not supported"),
        ("autolaunch:", "not supported"),
        ("unix:tmpdir=/tmp", "unix:tmpdir= is not an address a client can connect to"),
        ("unix:runtime=yes", "not an address a client"),
        ("unix:path=/a,abstract=b", "exactly one"),
        ("unix:guid=1", "exactly one"),
        ("unix:path=/a,path=/b", "given twice"),
        ("unix:path", "not key=value"),
        ("unix:PATH=/a", "not key=value"),
        ("unix:path=relative/bus", "not an absolute path"),
        ("unix:path=", "not an absolute path"),
        ("unix:path=/tmp/%00x", "NUL"),
        ("unix:path=/tmp/%zz", "bad %-escape"),
        ("unix:path=/tmp/%4", "bad %-escape"),
        ("unix:path=/tmp/a b", 'character " " in the bus address must be %-escaped'),
        ("unix:path=/tmp/\x1b[31mred", 'character "\\x1b"'),
        ("unix:path=/tmp/\u00e9", "must be %-escaped"),
        ("unix:abstract=", "empty or too long"),
        ("unix:abstract=" + "a" * 108, "empty or too long"),
        ("unix:path=/" + "a" * 5000, "longer than 4096"),
        ("tcp:host=a;nonsense", 'transport "tcp"'),  # the first entry's reason
    ],
)
def test_other_addresses_are_one_printable_line(text: str, words: str) -> None:
    with pytest.raises(EnableError) as caught:
        parse_address(text, "DBUS_SESSION_BUS_ADDRESS")
    message = str(caught.value)
    assert message.startswith("DBUS_SESSION_BUS_ADDRESS: "), message
    assert words in message, message
    assert message.isprintable(), message


def test_addresses_round_trip_through_their_escaped_form() -> None:
    for addr in (
        Address(path="/tmp/sp ace,comma=eq;semi%pct\u00e9"),
        Address(abstract="name with\x01control"),
    ):
        text = str(addr)
        assert text.isascii() and text.isprintable()
        assert ";" not in text.partition(":")[2] and "," not in text.partition(":")[2]
        assert parse_address(text, "X") == addr


def test_default_rules_become_hakurei_arguments_in_order() -> None:
    args = bus_args("unix:path=/up", "/out/bus", default_session_bus("org.example.App"))
    assert args == [
        "unix:path=/up",
        "/out/bus",
        "--filter",
        "--talk=org.freedesktop.DBus",
        "--talk=org.freedesktop.Notifications",
        "--own=org.example.App.*",
        "--own=org.mpris.MediaPlayer2.org.example.App.*",
        "--call=org.freedesktop.portal.*=*",
        "--broadcast=org.freedesktop.portal.*=@/org/freedesktop/portal/*",
    ]


def test_every_rule_kind_and_log_become_arguments() -> None:
    rules = BusConfig(
        see=("a.b",),
        talk=("c.d.*",),
        own=("e.f",),
        call={"g.h": "i.j.K@/k"},
        broadcast={"l.m": "*"},
        log=True,
        filter=False,
    )
    assert bus_args("U", "S", rules) == [
        "U",
        "S",
        "--see=a.b",
        "--talk=c.d.*",
        "--own=e.f",
        "--call=g.h=i.j.K@/k",
        "--broadcast=l.m=*",
        "--log",
    ]


def test_args_payload_is_nul_terminated_and_refuses_nul() -> None:
    assert encode_args(["a", "--talk=b.c"]) == b"a\0--talk=b.c\0"
    with pytest.raises(EnableError, match="NUL"):
        encode_args(["a\0--talk=evil.name"])


def _session(env: dict[str, str], bus: BusConfig | None = None) -> Session:
    cfg = Config(ContainerConfig("/bin/sh", "/tmp", "/bin/sh"), id="org.example.App")
    if bus is not None:
        cfg = Config(cfg.container, id=cfg.id, session_bus=bus)
    return Session(cfg, env, "0" * 32, "/nonexistent", -1, "/run/user/1", 1, 1, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bus", "words"),
    [
        (BusConfig(talk=("org",)), 'session_bus.talk: "org" has no dot'),
        (BusConfig(own=("org.*",)), "no dot"),
        (BusConfig(see=(":1.42",)), "unique connection name"),
        (BusConfig(call={"org.x": "bad rule"}), "session_bus.call"),
        (BusConfig(broadcast={"x": "*"}), "session_bus.broadcast"),
    ],
)
def test_rules_built_in_code_are_checked_as_the_proxy_would(bus: BusConfig, words: str) -> None:
    with pytest.raises(EnableError) as caught:
        dbus.plan(_session({"PATH": os.environ["PATH"]}, bus))
    assert words in str(caught.value)


def test_session_bus_falls_back_to_the_runtime_dir() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            s.bind(os.path.join(tmp, "bus"))
            assert stat.S_ISSOCK(os.stat(os.path.join(tmp, "bus")).st_mode)
            p = dbus.plan(_session({"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": tmp}))
    assert p.session == Address(path=os.path.join(tmp, "bus"))
    assert p.session_rules == default_session_bus("org.example.App")
    assert p.system is None and not p.log


def test_relative_runtime_dir_is_no_session_bus() -> None:
    with pytest.raises(EnableError, match="no session bus"):
        dbus.session_address({"XDG_RUNTIME_DIR": "run/user/1"})
