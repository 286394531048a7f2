"""Instance entries as ps/show/kill read them (hostile ones too); signal names; Wayland paths."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hakurei.app import instances
from hakurei.app.config import template
from hakurei.app.enable import EnableError
from hakurei.app.instances import (
    NO_CONFIG,
    InstanceError,
    Proc,
    find,
    go_duration,
    parse,
    ps_text,
    state_json,
    state_text,
    tabulate,
)
from hakurei.app.journal import starttime
from hakurei.app.kill import parse_signal, send
from hakurei.app.wayland import check_socket, socket_path

ID = "0123456789abcdef" * 2
NOW = 10**18 + 3_723 * 10**9  # 1h2m3s after the entries below


def entry(**info: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "config": template().to_json(),
        "argv": ["xterm", "-e", "sh"],
        "enablements": ["x11"],
        "notes": ["x11: untrusted cookie"],
        "app": {"pid": 4242, "starttime": 99},
        "launcher": {"pid": 4240, "starttime": 98},
    }
    base.update(info)
    return {"version": 1, "id": ID, "pid": 4240, "created_ns": 10**18, "info": base}


def test_a_whole_entry_checks() -> None:
    i = parse(entry())
    assert i.problems == ()
    assert (i.short, i.pid, i.app, i.launcher) == (ID[:8], 4240, Proc(4242, 99), Proc(4240, 98))
    assert i.config == template()
    assert i.application() == f"{template().identity} (org.example.XTerm)"


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ({"config": {"container": 1}}, "config: "),
        ({"config": None}, "config: "),
        ({"argv": "xterm"}, "argv: not a list of strings"),
        ({"argv": [1, 2]}, "argv: not a list of strings"),
        ({"notes": ["a"] * 5000}, "notes: not a list of strings"),
        ({"app": {"pid": True, "starttime": 1}}, "app: want {pid, starttime}"),
        ({"app": {"pid": 1, "starttime": 1}}, "app: want {pid, starttime}"),
        ({"app": {"pid": 5, "starttime": -1}}, "app: want {pid, starttime}"),
        ({"app": [5, 1]}, "app: want {pid, starttime}"),
        ({"app": None}, "app: missing"),
        ({"launcher": {"pid": 1 << 40, "starttime": 0}}, "launcher: want {pid, starttime}"),
    ],
)
def test_a_hostile_field_is_a_problem_never_a_traceback(info: dict[str, Any], problem: str) -> None:
    i = parse(entry(**info))
    assert len(i.problems) == 1 and i.problems[0].startswith(problem), i.problems
    assert "malformed entry: " + problem in ps_text([i], NOW)
    assert "Error: " + problem in state_text(i, NOW)
    assert state_json(i)["error"] == list(i.problems)


def test_an_entry_without_info_is_malformed_in_every_field() -> None:
    e = entry()
    e["info"] = "nope"
    e["pid"] = "1"
    i = parse(e)
    assert i.config is None and i.app is None and i.pid is None
    assert i.problems[:2] == ("pid: not a pid", "info: not an object")
    assert i.application() == NO_CONFIG


def test_ps_is_hakureis_tabwriter_table() -> None:
    i = parse(entry())
    assert template().identity == 9
    assert ps_text([i], NOW) == (
        "    Instance    PID     Application              Uptime\n"
        "    01234567    4240    9 (org.example.XTerm)    1h2m3s\n"
    )


def test_text_from_an_entry_cannot_reach_the_terminal_raw() -> None:
    i = parse(entry(argv=["x\x1b]0;pwned\x07", ""], notes=["\r\x1b[2Jgone"], enablements=["\n"]))
    text = state_text(i, NOW) + ps_text([i], NOW)
    assert all(ch.isprintable() or ch == "\n" for ch in text), text
    assert ' Command:  "x\\x1b]0;pwned\\a" ""\n' in text
    assert ' "\\r\\x1b[2Jgone"\n' in text


def test_state_json_is_hakureis_state_with_the_config_flattened() -> None:
    s = state_json(parse(entry()))
    assert (s["instance"], s["pid"], s["shim_pid"]) == (ID, 4240, 4242)
    assert s["id"] == "org.example.XTerm" and s["container"] == template().to_json()["container"]
    assert s["time"] == "2001-09-09T01:46:40Z"
    assert "error" not in s
    json.dumps(s)


def test_go_durations_round_to_the_second() -> None:
    assert [go_duration(n * 10**9) for n in (0, 59, 60, 3599, 3600, 90061)] == [
        "0s",
        "59s",
        "1m0s",
        "59m59s",
        "1h0m0s",
        "25h1m1s",
    ]
    assert go_duration(1_499_999_999) == "1s" and go_duration(1_500_000_000) == "2s"
    assert go_duration(-5 * 10**9) == "0s"  # a clock that went back


def test_tabulate_pads_every_column_but_the_last() -> None:
    assert (
        tabulate([["a", "bbb", "c"], ["dddd", "e", "f"]]) == "a       bbb    c\ndddd    e      f\n"
    )


def test_find_takes_a_unique_prefix() -> None:
    a, b = parse(entry()), parse({**entry(), "id": "0123456789abcdff" + "0" * 16})
    assert find([a, b], ID) is a
    assert find([a, b], "0123456789abcdf") is b
    with pytest.raises(InstanceError, match='"0123" is ambiguous: 01234567, 01234567'):
        find([a, b], "0123")
    with pytest.raises(InstanceError, match='no live instance "ffff"'):
        find([a, b], "ffff")
    with pytest.raises(InstanceError, match=r'"\\x1b\[A" is not an instance id'):
        find([a, b], "\x1b[A")
    assert not instances.looks_like_id("abc") and instances.looks_like_id("abcdef01")
    assert not instances.looks_like_id("app.json") and not instances.looks_like_id("0" * 33)


@pytest.mark.parametrize(
    ("text", "number"),
    [("TERM", 15), ("SIGTERM", 15), ("term", 15), ("kill", 9), ("9", 9), ("HUP", 1), ("64", 64)],
)
def test_signals_by_name_or_number(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "65", "999", "SIG_IGN", "NOPE", "", "-9", "1e3", "SIGTERMX"])
def test_what_is_not_a_signal_is_refused(text: str) -> None:
    with pytest.raises(InstanceError, match=r"^kill: "):
        parse_signal(text)


def test_send_signals_only_the_process_with_the_recorded_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = starttime(child.pid)
        assert start is not None
        with pytest.raises(InstanceError, match="its start time differs"):
            send(Proc(child.pid, start + 1), signal.SIGKILL, "instance x")
        assert child.poll() is None
        send(Proc(child.pid, start), signal.SIGKILL, "instance x")
        assert child.wait(timeout=30) == -signal.SIGKILL
        with pytest.raises(InstanceError, match="has already exited"):
            send(Proc(child.pid, start), signal.SIGKILL, "instance x")
    finally:
        child.kill()
        child.wait()


# -- Wayland: where libwayland looks ---------------------------------------------------


@pytest.mark.parametrize(
    ("env", "path"),
    [
        ({"XDG_RUNTIME_DIR": "/run/user/7"}, "/run/user/7/wayland-0"),
        ({"XDG_RUNTIME_DIR": "/run/user/7/", "WAYLAND_DISPLAY": "w-1"}, "/run/user/7/w-1"),
        ({"XDG_RUNTIME_DIR": "/r", "WAYLAND_DISPLAY": "sub/w"}, "/r/sub/w"),
        ({"WAYLAND_DISPLAY": "/abs/wl"}, "/abs/wl"),
        ({"XDG_RUNTIME_DIR": "rel", "WAYLAND_DISPLAY": "/abs/wl"}, "/abs/wl"),
    ],
)
def test_wayland_socket_is_where_libwayland_looks(env: dict[str, str], path: str) -> None:
    assert socket_path(env) == path


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, "XDG_RUNTIME_DIR is not set"),
        ({"WAYLAND_DISPLAY": "wayland-1"}, "XDG_RUNTIME_DIR is not set"),
        ({"XDG_RUNTIME_DIR": "run\x1b", "WAYLAND_DISPLAY": "w"}, 'not absolute ("run\\x1b")'),
    ],
)
def test_wayland_relative_name_without_runtime_dir_is_one_line(
    env: dict[str, str], why: str
) -> None:
    with pytest.raises(EnableError) as e:
        socket_path(env)
    assert why in str(e.value) and "\n" not in str(e.value)


def test_wayland_socket_must_be_a_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(EnableError, match=r"is not a socket$"):
        check_socket(str(tmp_path / "file"))
    with pytest.raises(EnableError, match="does not exist"):
        check_socket(str(tmp_path / "none"))
    monkeypatch.chdir(tmp_path)  # bind by a short relative name: sun_path holds 108 bytes
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("sock")
        check_socket(str(tmp_path / "sock"))
