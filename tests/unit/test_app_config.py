"""The launcher's app config (hakurei/app/config.py): every field, every refusal, the format.

A config is checked completely before anything touches the host, so each
refusal here is a one-line ``ConfigError`` naming the key path; the fuzz
tests hold that no JSON value or text can raise anything else.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakurei.app import config as cf
from hakurei.app.config import (
    BindFS,
    BusConfig,
    ConfigError,
    EphemeralFS,
    LinkFS,
    OverlayFS,
    dumps,
    from_json,
    load_file,
    loads,
)
from hakurei.app.show import entry_text, render
from hakurei.errors import EXIT_SETUP, HakureiError, q

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def minimal() -> dict[str, Any]:
    return {"container": {"shell": "/bin/sh", "home": "/home/app", "path": "/usr/bin/xterm"}}


def full() -> dict[str, Any]:
    """Every field set to something other than its default."""
    return {
        "version": 1,
        "id": "org.example.App",
        "identity": 42,
        "enablements": {"wayland": True, "x11": True, "dbus": True, "pulse": True},
        "session_bus": {
            "see": ["org.example.See"],
            "talk": ["org.freedesktop.Notifications"],
            "own": ["org.example.App.*"],
            "call": {"org.freedesktop.portal.*": "org.freedesktop.portal.Settings.Read@/x/*"},
            "broadcast": {"org.freedesktop.portal.*": "@/org/freedesktop/portal/*"},
            "log": True,
            "filter": True,
        },
        "system_bus": {"talk": ["org.freedesktop.UPower"], "filter": True},
        "direct_wayland": True,
        "x11_cookie": "trusted",
        "pulse_socket": "shared",
        "groups": [],
        "extra_perms": [],
        "container": {
            "hostname": "box",
            "wait_delay": 2_000_000_000,
            "env": {"LANG": "C.UTF-8", "EMPTY": ""},
            "filesystem": [
                {"type": "bind", "src": "/", "write": True, "special": True},
                {"type": "bind", "src": "/etc", "special": True},
                {"type": "bind", "src": "/dev/dri", "dev": True, "optional": True},
                {
                    "type": "bind",
                    "src": "/srv/h",
                    "dst": "/home/app",
                    "write": True,
                    "ensure": True,
                },
                {"type": "ephemeral", "dst": "/var/tmp", "write": True, "size": 4096, "perm": 1023},
                {"type": "ephemeral", "dst": "/empty"},
                {"type": "link", "dst": "/bin", "linkname": "usr/bin"},
                {"type": "link", "dst": "/sw", "linkname": "/run/sw", "dereference": True},
                {"type": "overlay", "dst": "/o1", "lower": ["/a", "/b"]},
                {"type": "overlay", "dst": "/o2", "lower": ["/a"], "upper": "/u", "work": "/w"},
            ],
            "username": "app",
            "shell": "/bin/bash",
            "home": "/home/app",
            "path": "/usr/bin/xterm",
            "args": ["xterm", "-e", "sh"],
            "map_real_uid": True,
            "seccomp_compat": False,
            "devel": True,
            "userns": True,
            "host_net": True,
            "host_abstract": True,
            "tty": True,
            "multiarch": True,
            "device": True,
            "share_runtime": True,
            "share_tmpdir": True,
        },
    }


def error(value: Any) -> str:
    with pytest.raises(ConfigError) as e:
        from_json(value)
    return str(e.value)


def test_a_minimal_config_gets_hakureis_defaults() -> None:
    c = from_json(minimal())
    assert (c.version, c.id, c.identity, c.direct_wayland) == (1, "", None, False)
    assert c.enablements == cf.Enablements(False, False, False, False)
    assert (c.session_bus, c.system_bus) == (None, None)
    assert (c.x11_cookie, c.pulse_socket) == ("untrusted", "instance")
    k = c.container
    assert (k.hostname, k.wait_delay, k.env, k.filesystem) == ("", 0, {}, ())
    assert (k.username, k.args, k.argv) == ("chronos", (), ("/usr/bin/xterm",))
    assert not any(getattr(k, flag) for flag in cf._CONTAINER_FLAGS)


def test_every_field_is_read() -> None:
    c = from_json(full())
    assert (c.id, c.identity, c.direct_wayland) == ("org.example.App", 42, True)
    assert c.enablements == cf.Enablements(True, True, True, True)
    assert c.session_bus == BusConfig(
        see=("org.example.See",),
        talk=("org.freedesktop.Notifications",),
        own=("org.example.App.*",),
        call={"org.freedesktop.portal.*": "org.freedesktop.portal.Settings.Read@/x/*"},
        broadcast={"org.freedesktop.portal.*": "@/org/freedesktop/portal/*"},
        log=True,
        filter=True,
    )
    assert c.system_bus == BusConfig(talk=("org.freedesktop.UPower",), filter=True)
    assert (c.x11_cookie, c.pulse_socket) == ("trusted", "shared")
    k = c.container
    assert (k.hostname, k.wait_delay, k.username) == ("box", 2_000_000_000, "app")
    assert k.env == {"LANG": "C.UTF-8", "EMPTY": ""}
    assert (k.shell, k.home, k.path) == ("/bin/bash", "/home/app", "/usr/bin/xterm")
    assert k.args == k.argv == ("xterm", "-e", "sh")
    assert all(getattr(k, flag) for flag in cf._CONTAINER_FLAGS)
    assert k.filesystem == (
        BindFS(src="/", write=True, special=True),
        BindFS(src="/etc", special=True),
        BindFS(src="/dev/dri", dev=True, optional=True),
        BindFS(src="/srv/h", dst="/home/app", write=True, ensure=True),
        EphemeralFS(dst="/var/tmp", write=True, size=4096, perm=0o1777),
        EphemeralFS(dst="/empty"),
        LinkFS(dst="/bin", linkname="usr/bin"),
        LinkFS(dst="/sw", linkname="/run/sw", dereference=True),
        OverlayFS(dst="/o1", lower=("/a", "/b")),
        OverlayFS(dst="/o2", lower=("/a",), upper="/u", work="/w"),
    )
    assert BindFS(src="/srv/h", dst="/home/app").target == "/home/app"
    assert BindFS(src="/dev/dri").target == "/dev/dri"


def test_nulls_read_as_defaults() -> None:
    value = minimal()
    value.update(id=None, identity=None, enablements=None, session_bus=None, x11_cookie=None)
    value["container"].update(env=None, filesystem=None, args=None, hostname=None, devel=None)
    assert from_json(value) == from_json(minimal())


@pytest.mark.parametrize(
    ("delay", "grace"),
    [
        (0, 5_000_000_000),
        (-1, 0),
        (1, 1),
        (29_000_000_000, 29_000_000_000),
        (31 * 10**9, 30 * 10**9),
    ],
)
def test_wait_delay_follows_hakureis_rule(delay: int, grace: int) -> None:
    value = minimal()
    value["container"]["wait_delay"] = delay
    assert from_json(value).container.grace_ns == grace


def test_default_session_rules_are_hakureis() -> None:
    bus = cf.default_session_bus("org.example.App")
    assert bus.filter and bus.talk == ("org.freedesktop.DBus", "org.freedesktop.Notifications")
    assert bus.own == ("org.example.App.*", "org.mpris.MediaPlayer2.org.example.App.*")
    assert bus.call == {"org.freedesktop.portal.*": "*"}
    assert bus.broadcast == {"org.freedesktop.portal.*": "@/org/freedesktop/portal/*"}
    assert cf.default_session_bus("").own == ()


def test_a_hakurei_config_without_a_version_loads_as_version_1() -> None:
    value = full()
    del value["version"]
    value["container"]["map_real_uid"] = True
    assert from_json(value).version == 1 == cf.VERSION


def test_the_template_is_valid_and_round_trips() -> None:
    t = cf.template()
    assert loads(dumps(t)) == t
    assert json.loads(dumps(t))["version"] == 1


def test_a_full_config_round_trips() -> None:
    c = from_json(full())
    text = dumps(c)
    assert loads(text) == c
    compact = dumps(c, compact=True)
    assert compact.count("\n") == 1 and loads(compact) == c
    assert dumps(loads(text)) == text
    assert "groups" not in json.loads(text)  # refused features are not part of the format


def set_at(value: dict[str, Any], path: str | tuple[Any, ...], new: Any) -> dict[str, Any]:
    """``value`` with ``new`` at ``path``: dotted (``container.env``) or a tuple of keys."""
    value = copy.deepcopy(value)
    *parents, last = path.split(".") if isinstance(path, str) else path
    node: Any = value
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = new
    else:
        node[last] = new
    return value


REFUSED = [
    # top level
    ("", [], "config: want an object, not a list"),
    ("container", None, "container: required"),
    ("container", [], "container: want an object, not a list"),
    ("color", "red", "color: unknown key"),
    ("version", 2, "version: 2 is not supported (this hakurei reads 1)"),
    ("version", "1", "version: want an integer, not a string"),
    ("version", True, "version: want an integer, not a boolean"),
    ("id", "app", 'id: "app" is not a reverse-DNS app id (like org.example.App)'),
    (
        "id",
        "org.example.*",
        'id: "org.example.*" is not a reverse-DNS app id (like org.example.App)',
    ),
    ("id", "org.1x", 'id: "org.1x" is not a reverse-DNS app id (like org.example.App)'),
    (
        "id",
        "a." + "b" * 240,
        f'id: "a.{"b" * 240}" is not a reverse-DNS app id (like org.example.App)',
    ),
    ("id", 7, "id: want a string, not an integer"),
    ("identity", 10000, "identity: 10000 is out of range (0..9999)"),
    ("identity", -1, "identity: -1 is out of range (0..9999)"),
    ("identity", 1.5, "identity: want an integer, not a number"),
    ("enablements", {"wayland": 1}, "enablements.wayland: want true or false, not an integer"),
    ("enablements", {"pipewire": True}, "enablements.pipewire: unknown key"),
    ("enablements", True, "enablements: want an object, not a boolean"),
    ("direct_wayland", "yes", "direct_wayland: want true or false, not a string"),
    ("x11_cookie", "none", 'x11_cookie: "none" is not "untrusted" or "trusted"'),
    ("pulse_socket", "per-app", 'pulse_socket: "per-app" is not "instance" or "shared"'),
    # one user, no setuid helper
    (
        "groups",
        ["video"],
        "groups: supplementary groups need a setuid helper; the app keeps your own groups (use [])",
    ),
    ("groups", "video", "groups: want a list, not a string"),
    (
        "extra_perms",
        [{"path": "/x", "r": True}],
        "extra_perms: ACL grants are for another uid; "
        "the app runs as your own uid and needs none (use [])",
    ),
    (
        "container.map_real_uid",
        False,
        "container.map_real_uid: false would switch the app's uid; it runs as your own uid "
        "(D-Bus clients refuse any other), so only true is accepted",
    ),
    ("container.map_real_uid", 0, "container.map_real_uid: want true or false, not an integer"),
    (
        "container.seccomp_compat",
        True,
        "container.seccomp_compat: the Flatpak-identical filter is not offered; the everyday "
        "default and the devel, userns, tty and multiarch flags choose the filter",
    ),
    # buses
    ("session_bus", [], "session_bus: want an object, not a list"),
    (
        "session_bus",
        {"talk": ["org"]},
        'session_bus.talk[0]: "org" has no dot: xdg-dbus-proxy refuses dotless bus names',
    ),
    (
        "session_bus",
        {"see": ["org.*"]},
        'session_bus.see[0]: "org.*" has no dot: xdg-dbus-proxy refuses dotless bus names',
    ),
    (
        "system_bus",
        {"own": [":1.42"]},
        'system_bus.own[0]: ":1.42" is a unique connection name; rules take well-known names',
    ),
    ("session_bus", {"talk": [""]}, 'session_bus.talk[0]: "" is not a bus name (it is empty)'),
    (
        "session_bus",
        {"talk": ["a." + "b" * 254]},
        f'session_bus.talk[0]: "a.{"b" * 254}" is longer than 255 characters',
    ),
    *[
        (
            "session_bus",
            {"talk": [bad]},
            f"session_bus.talk[0]: {q(bad)} is not a "
            "well-formed bus name (dot-separated elements of letters, digits, _ and -, none empty "
            "or starting with a digit)",
        )
        for bad in ["org..x", "org.x.", ".org.x", "org.1x", "org.x y", "org.ü", "org.x.**"]
    ],
    ("session_bus", {"talk": "org.x.Y"}, "session_bus.talk: want a list, not a string"),
    ("session_bus", {"talk": [1]}, "session_bus.talk[0]: want a string, not an integer"),
    ("session_bus", {"call": []}, "session_bus.call: want an object, not a list"),
    (
        "session_bus",
        {"call": {"org": "*"}},
        'session_bus.call["org"]: "org" has no dot: xdg-dbus-proxy refuses dotless bus names',
    ),
    (
        "session_bus",
        {"call": {"org.x.Y": 1}},
        'session_bus.call["org.x.Y"]: want a string, not an integer',
    ),
    (
        "session_bus",
        {"call": {"org.x.Y": ""}},
        'session_bus.call["org.x.Y"]: rule "" is empty (use "*" for every method)',
    ),
    *[
        (
            "session_bus",
            {"broadcast": {"org.x.Y": rule}},
            f'session_bus.broadcast["org.x.Y"]: rule {q(rule)} {problem}',
        )
        for rule, problem in [
            ("Method", "does not start with *, INTERFACE.* or INTERFACE.METHOD"),
            ("org.Method", "does not start with *, INTERFACE.* or INTERFACE.METHOD"),
            ("org.x-y.M", "does not start with *, INTERFACE.* or INTERFACE.METHOD"),
            ("org.x.1M", "has a malformed method name"),
            ("*@", "has a malformed object path after @"),
            ("@x", "has a malformed object path after @"),
            ("@/a//b", "has a malformed object path after @"),
            ("@/a/", "has a malformed object path after @"),
            ("@/a/b-c", "has a malformed object path after @"),
        ]
    ],
    ("session_bus", {"log": "yes"}, "session_bus.log: want true or false, not a string"),
    ("session_bus", {"Filter": True}, "session_bus.Filter: unknown key"),
    # container
    ("container.shell", None, "container.shell: required"),
    ("container.home", "home", 'container.home: "home" is not an absolute path'),
    ("container.path", 5, "container.path: want an absolute path, not an integer"),
    ("container.path", "/bin/\0x", 'container.path: "/bin/\\x00x" contains a NUL byte'),
    ("container.path", "/\ud800", 'container.path: "/\\ud800" is not valid Unicode text'),
    ("container.path", "/" + "x" * 4095, "container.path: longer than 4095 bytes"),
    ("container.hostname", "h" * 65, "container.hostname: longer than 64 bytes"),
    ("container.hostname", "a b", 'container.hostname: "a b" has spaces or control characters'),
    (
        "container.hostname",
        "a\x1b",
        'container.hostname: "a\\x1b" has spaces or control characters',
    ),
    ("container.wait_delay", 1.5, "container.wait_delay: want an integer, not a number"),
    (
        "container.wait_delay",
        1 << 63,
        f"container.wait_delay: {1 << 63} is out of range ({-(1 << 63)}..{(1 << 63) - 1})",
    ),
    (
        "container.username",
        "1app",
        'container.username: "1app" is not a user name (a letter, then letters, digits, _ or -)',
    ),
    (
        "container.username",
        "a" * 256,
        f'container.username: "{"a" * 256}" is not a user name '
        "(a letter, then letters, digits, _ or -)",
    ),
    ("container.env", ["A=1"], "container.env: want an object, not a list"),
    (
        "container.env",
        {"A=B": "1"},
        'container.env["A=B"]: "A=B" is not a variable name (empty, or holds \'=\')',
    ),
    (
        "container.env",
        {"": "1"},
        'container.env[""]: "" is not a variable name (empty, or holds \'=\')',
    ),
    ("container.env", {"A\0": "1"}, 'container.env["A\\x00"]: "A\\x00" contains a NUL byte'),
    ("container.env", {"A": "\0"}, 'container.env["A"]: "\\x00" contains a NUL byte'),
    ("container.env", {"A": 1}, 'container.env["A"]: want a string, not an integer'),
    ("container.args", ["a", None], "container.args[1]: want a string, not null"),
    ("container.args", "xterm", "container.args: want a list, not a string"),
    ("container.filesystem", {}, "container.filesystem: want a list, not an object"),
    ("container.userns", "true", "container.userns: want true or false, not a string"),
    ("container.uid", 1000, "container.uid: unknown key"),
    # filesystem entries
    ("container.filesystem", [1], "container.filesystem[0]: want an object, not an integer"),
    ("container.filesystem", [{}], "container.filesystem[0].type: required"),
    (
        "container.filesystem",
        [{"type": "tmpfs"}],
        'container.filesystem[0].type: "tmpfs" is not bind, ephemeral, link or overlay',
    ),
    (
        "container.filesystem",
        [{"type": 1}],
        "container.filesystem[0].type: an integer is not bind, ephemeral, link or overlay",
    ),
    ("container.filesystem", [{"type": "bind"}], "container.filesystem[0].src: required"),
    (
        "container.filesystem",
        [{"type": "bind", "src": "usr"}],
        'container.filesystem[0].src: "usr" is not an absolute path',
    ),
    (
        "container.filesystem",
        [{"type": "bind", "src": "/a", "dst": "b"}],
        'container.filesystem[0].dst: "b" is not an absolute path',
    ),
    (
        "container.filesystem",
        [{"type": "bind", "src": "/a", "ensure": True, "optional": True}],
        "container.filesystem[0].optional: cannot go with ensure (create it, or skip it?)",
    ),
    (
        "container.filesystem",
        [{"type": "bind", "src": "/usr", "special": True}],
        "container.filesystem[0].src: special binds go at / (autoroot) or /etc (autoetc) only",
    ),
    (
        "container.filesystem",
        [{"type": "bind", "src": "/", "dst": "/x", "special": True}],
        "container.filesystem[0].dst: special binds go at / (autoroot) or /etc (autoetc) only",
    ),
    (
        "container.filesystem",
        [{"type": "bind", "src": "/a", "dsst": "/b"}],
        "container.filesystem[0].dsst: unknown key",
    ),
    ("container.filesystem", [{"type": "ephemeral"}], "container.filesystem[0].dst: required"),
    (
        "container.filesystem",
        [{"type": "ephemeral", "dst": "/t", "perm": 0o10000}],
        "container.filesystem[0].perm: 4096 is out of range (0..4095)",
    ),
    (
        "container.filesystem",
        [{"type": "ephemeral", "dst": "/t", "size": -1}],
        f"container.filesystem[0].size: -1 is out of range (0..{(1 << 63) - 1})",
    ),
    (
        "container.filesystem",
        [{"type": "ephemeral", "dst": "/t", "size": False}],
        "container.filesystem[0].size: want an integer, not a boolean",
    ),
    (
        "container.filesystem",
        [{"type": "ephemeral", "dst": "/t", "src": "/x"}],
        "container.filesystem[0].src: unknown key",
    ),
    (
        "container.filesystem",
        [{"type": "link", "dst": "/l"}],
        "container.filesystem[0].linkname: required",
    ),
    (
        "container.filesystem",
        [{"type": "link", "dst": "/l", "linkname": "x", "dereference": True}],
        "container.filesystem[0].linkname: must be absolute with dereference",
    ),
    (
        "container.filesystem",
        [{"type": "link", "dst": "/l", "linkname": "x\0"}],
        'container.filesystem[0].linkname: "x\\x00" contains a NUL byte',
    ),
    (
        "container.filesystem",
        [{"type": "overlay", "dst": "/o", "lower": ["/a"]}],
        "container.filesystem[0].lower: a read-only overlay needs 2 or more lower directories",
    ),
    (
        "container.filesystem",
        [{"type": "overlay", "dst": "/o", "upper": "/u", "work": "/w"}],
        "container.filesystem[0].lower: a writable overlay needs 1 or more lower directories",
    ),
    (
        "container.filesystem",
        [{"type": "overlay", "dst": "/o", "lower": ["/a"], "upper": "/u"}],
        "container.filesystem[0].work: required with the other",
    ),
    (
        "container.filesystem",
        [{"type": "overlay", "dst": "/o", "lower": ["/a"], "work": "/w"}],
        "container.filesystem[0].upper: required with the other",
    ),
    (
        "container.filesystem",
        [{"type": "overlay", "dst": "/o", "lower": ["/a", "b"]}],
        'container.filesystem[0].lower[1]: "b" is not an absolute path',
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), REFUSED)
def test_refused_with_a_one_line_message_naming_the_key(
    path: str, value: Any, message: str
) -> None:
    config = value if path == "" else set_at(minimal(), path, value)
    got = error(config)
    assert got == message
    assert "\n" not in got and got.isprintable()


def test_unknown_key_is_named_by_its_full_path() -> None:
    value = full()
    value["container"]["filesystem"][2]["dsst"] = "/x"
    assert error(value) == "container.filesystem[2].dsst: unknown key"


def test_x11_with_host_net_needs_host_abstract() -> None:
    value = set_at(minimal(), "enablements", {"x11": True})
    value["container"]["host_net"] = True
    assert error(value) == (
        "enablements.x11: needs container.host_abstract when container.host_net is true "
        "(Landlock makes libxcb's abstract X socket fail with EPERM and libxcb 1.15 does not "
        "fall back to the path; host_abstract exposes every abstract socket of the host network)"
    )
    value["container"]["host_abstract"] = True
    assert from_json(value).enablements.x11
    value["container"]["host_net"] = False  # a private netns: libxcb falls back by itself
    assert from_json(value).enablements.x11


@pytest.mark.parametrize(
    "name",
    ["org.x", "org.x.*", "org.x-y._z", "-a.b", "org.freedesktop.portal.*", "a" + ".b" * 127],
)
def test_bus_names_the_proxy_takes_are_accepted(name: str) -> None:
    assert cf.bus_name_problem(name) is None


@pytest.mark.parametrize(
    "rule",
    ["*", "org.x.Y.*", "org.x.Y.Method", "@/", "@/*", "@/org/x/*", "*@/a_1/B", "org.x.Y.M@/p"],
)
def test_call_rules_the_proxy_understands_are_accepted(rule: str) -> None:
    assert cf.rule_problem(rule) is None


def test_special_binds_take_etc_with_or_without_its_trailing_slash() -> None:
    for dst in ("/etc", "/etc/", "/"):
        entry = {"type": "bind", "src": "/etc/", "dst": dst, "special": True}
        from_json(set_at(minimal(), "container.filesystem", [entry]))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "id": "org.x.Y",\n}', "line 3 column 1"),
        ('{\n  "container": {\n    "shell" "/bin/sh"\n  }\n}', "line 3 column 13"),
        ("", "line 1 column 1"),
        ('{"a": 1} x', "line 1 column 10"),
        ('{"a": [1, 2', "line 1 column 12"),
    ],
)
def test_json_syntax_errors_report_line_and_column(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        loads(text)
    assert e.value.where == where
    assert str(e.value).startswith(where + ": ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a.b", "id": "c.d"}', 'config: duplicate key "id"'),
        ('{"x": NaN}', "config: NaN is not JSON"),
        ('{"x": -Infinity}', "config: -Infinity is not JSON"),
        (b'{"id": "\xff"}', "config: not UTF-8 text (byte 8)"),
        ("[" * 100_000, "config: JSON nested too deeply"),
    ],
)
def test_json_that_is_ambiguous_or_not_json_is_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        loads(text)
    assert str(e.value) == message


def test_a_config_error_is_a_hakurei_error_with_exit_125() -> None:
    with pytest.raises(HakureiError) as e:
        loads("[]")
    assert e.value.status == EXIT_SETUP == 125


def test_load_file_names_the_file_in_each_error(tmp_path: Path) -> None:
    good = tmp_path / "app.json"
    good.write_text(dumps(cf.template()))
    assert load_file(str(good)) == cf.template()
    bad = tmp_path / "bad.json"
    bad.write_text('{"container": {}}')
    cases = {
        str(bad): f"{bad}: container.shell: required",
        str(tmp_path / "none"): f"{tmp_path / 'none'}: cannot open: no such file or directory",
        str(tmp_path): f"{tmp_path}: not a regular file",
        "/dev/zero": "/dev/zero: not a regular file",
    }
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (cf.CONFIG_MAX + 1))
    cases[str(big)] = f"{big}: larger than {cf.CONFIG_MAX} bytes"
    for path, message in cases.items():
        with pytest.raises(ConfigError) as e:
            load_file(path)
        assert str(e.value) == message


def test_load_file_reads_stdin_for_dash(tmp_path: Path) -> None:
    r, w = os.pipe()
    saved = os.dup(0)
    try:
        os.write(w, dumps(cf.template()).encode())
        os.close(w)
        os.dup2(r, 0)
        assert load_file("-") == cf.template()
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(r)


# -- show's notation ---------------------------------------------------------------------


def test_show_prints_filesystem_entries_in_hakureis_notation() -> None:
    entries = from_json(full()).container.filesystem
    assert [entry_text(e) for e in entries] == [
        "autoroot:w:/",
        "autoetc:/etc",
        "d+/dev/dri",
        "w-/srv/h:/home/app",
        "ephemeral:w:/var/tmp mode=1777 size=4096",
        "ephemeral:/empty",
        "link:/bin -> usr/bin",
        "link*:/sw -> /run/sw",
        "overlay:/o1 lower=/a:/b",
        "overlay:/o2 lower=/a upper=/u work=/w",
    ]


def test_show_escapes_what_the_config_supplies() -> None:
    value = set_at(minimal(), "container.path", "/bin/\x1b[31mred")
    value["container"]["args"] = ["a\nb", ""]
    text = render(from_json(value))
    assert "\x1b" not in text
    assert ' Path:        "/bin/\\x1b[31mred"' in text.splitlines()
    assert ' Arguments:   "a\\nb" ""' in text.splitlines()


def test_show_sections() -> None:
    text = render(from_json(full()))
    assert text.splitlines()[:4] == [
        "App",
        " Identity:    42 (org.example.App)",
        " Enablements: wayland (direct), x11 (trusted cookie), dbus, pulse (shared socket)",
        " Flags:       multiarch, devel, userns, net, abstract, tty, device, runtime, tmpdir",
    ]
    assert "Filesystem" in text and "Session bus" in text and "System bus" in text
    assert "Filesystem" not in render(from_json(full()), short=True)
    assert "Session bus" not in render(from_json(minimal()))


# -- fuzz ----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["/", "/usr", "org.x.Y", "bind", "link", "overlay", "ephemeral", "\0"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from([*full(), *full()["container"], "type", "src", "dst", "lower", "x"])
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``value`` as a tuple of keys (list indices too), for :func:`set_at`."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        path = (*prefix, key)
        out.append(path)
        if isinstance(child, (dict, list)) and child:
            out += paths_in(child, path)
    return out


FULL_PATHS = paths_in(full())


@FAST
@given(JSON_VALUES)
def test_any_json_value_is_a_config_or_a_config_error(value: Any) -> None:
    try:
        from_json(value)
    except ConfigError as e:
        assert "\n" not in str(e)


@FAST
@given(st.sampled_from(FULL_PATHS), JSON_VALUES)
def test_any_value_anywhere_in_a_full_config_is_a_config_or_a_config_error(
    path: tuple[Any, ...], value: Any
) -> None:
    try:
        c = from_json(set_at(full(), path, value))
    except ConfigError as e:
        assert "\n" not in str(e)
    else:
        assert loads(dumps(c)) == c  # whatever is accepted round-trips


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_is_a_config_or_a_config_error(text: str | bytes) -> None:
    try:
        loads(text)
    except ConfigError as e:
        assert "\n" not in str(e)
