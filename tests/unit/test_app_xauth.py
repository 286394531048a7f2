"""The X11 enablement without an X server: DISPLAY parsing, Xauthority files, request bytes.

The host seam (``hakurei.app.host``) is replaced by fakes where a test needs a
server's answer; ``tests/integration/test_app_x11.py`` runs the real Xvfb.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from hakurei.app import host, journal, x11, xauth
from hakurei.app.enable import EnableError, Session
from hakurei.app.records import Config, ContainerConfig, Enablements
from hakurei.ops import Bind

COOKIE = bytes(range(16))


# --- DISPLAY ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number"),
    [(":0", 0), (":5", 5), (":5.0", 5), (":12.3", 12), ("unix:7", 7), ("unix/:7", 7), (":007", 7)],
)
def test_local_displays_name_their_number(value: str, number: int) -> None:
    assert x11.parse_display(value) == number


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (None, "DISPLAY is not set"),
        ("", "DISPLAY is not set"),
        ("localhost:0", "is a network display"),
        ("tcp/example.org:10.0", "is a network display"),
        ("[::1]:0", "is a network display"),
        ("unix:/tmp/.X11-unix/X0", "is not a local display"),
        ("/tmp/launch-x/org.xquartz:0", "is not a local display"),
        (":", "is not a local display"),
        (":-1", "is not a local display"),
        (":+1", "is not a local display"),
        (": 1", "is not a local display"),
        (":1\n", "is not a local display"),
        (":0\0:1", "is not a local display"),
        (":\u0663", "is not a local display"),  # an Arabic-Indic digit: str.isdigit() says yes
        (":\uff10", "is not a local display"),  # a fullwidth zero
        (":12345678901234567890", "is not a local display"),
        ("\x1b[2J:0", "is not a local display"),
        (":0" + "A" * 10000, "is not a local display"),
    ],
)
def test_other_displays_are_refused_with_one_printable_line(value: str | None, says: str) -> None:
    with pytest.raises(EnableError) as e:
        x11.parse_display(value)
    line = str(e.value)
    assert says in line
    assert line.startswith("x11: ")
    assert line.isprintable(), line
    assert len(line) < 200


# --- Xauthority files ------------------------------------------------------------------


def raw_entry(family: int, *fields: bytes) -> bytes:
    return struct.pack(">H", family) + b"".join(struct.pack(">H", len(f)) + f for f in fields)


def test_an_xauthority_file_reads_back_what_was_written() -> None:
    entries = [
        xauth.Entry(xauth.FAMILY_LOCAL, b"host", b"0", xauth.MIT_MAGIC_COOKIE, COOKIE),
        xauth.wild(5, b"\xff" * 16),
        xauth.Entry(xauth.FAMILY_INTERNET, b"\x7f\0\0\1", b"10", b"XDM-AUTHORIZATION-1", b""),
    ]
    data = xauth.dump(entries)
    assert xauth.parse(data) == entries
    # The bytes are libXau's: big-endian lengths, no padding.
    assert data.startswith(raw_entry(256, b"host", b"0", b"MIT-MAGIC-COOKIE-1", COOKIE))


def test_a_wild_entry_is_what_xauth_nlist_shows_with_family_ffff() -> None:
    assert xauth.dump([xauth.wild(1, bytes.fromhex("c8ac5e618acc721b8b10334afec40a9e"))]) == (
        bytes.fromhex("ffff 0000 0001 31 0012")
        + b"MIT-MAGIC-COOKIE-1"
        + bytes.fromhex("0010 c8ac5e618acc721b8b10334afec40a9e")
    )


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 20])
def test_a_torn_last_entry_is_ignored_like_libxau(cut: int) -> None:
    good = raw_entry(256, b"h", b"1", xauth.MIT_MAGIC_COOKIE, COOKIE)
    torn = raw_entry(65535, b"", b"2", xauth.MIT_MAGIC_COOKIE, COOKIE)[:-cut]
    assert xauth.parse(good + torn) == xauth.parse(good)
    assert len(xauth.parse(good)) == 1


def test_garbage_is_no_entries_or_a_few_but_never_an_exception() -> None:
    for data in (b"", b"\0", b"\xff" * 3, os.urandom(4096), b"\0\0\xff\xff" * 100):
        for e in xauth.parse(data):
            assert isinstance(e.data, bytes)


def test_the_cookie_a_local_client_uses_is_chosen_as_libxau_does() -> None:
    mine = xauth.Entry(xauth.FAMILY_LOCAL, b"myhost", b"3", xauth.MIT_MAGIC_COOKIE, b"A" * 16)
    other_host = xauth.Entry(xauth.FAMILY_LOCAL, b"other", b"3", xauth.MIT_MAGIC_COOKIE, b"B" * 16)
    other_display = xauth.Entry(
        xauth.FAMILY_LOCAL, b"myhost", b"4", xauth.MIT_MAGIC_COOKIE, b"C" * 16
    )
    other_kind = xauth.Entry(xauth.FAMILY_LOCAL, b"myhost", b"3", b"XDM-AUTHORIZATION-1", b"D")
    tcp = xauth.Entry(xauth.FAMILY_INTERNET, b"\x7f\0\0\1", b"3", xauth.MIT_MAGIC_COOKIE, b"E")
    wild = xauth.wild(3, b"F" * 16)
    any_display = xauth.Entry(xauth.FAMILY_LOCAL, b"myhost", b"", xauth.MIT_MAGIC_COOKIE, b"G")

    def pick(*entries: xauth.Entry) -> xauth.Entry | None:
        return xauth.best(list(entries), 3, b"myhost")

    assert pick(other_host, other_display, other_kind, tcp, mine) == mine
    assert pick(other_host, other_display, other_kind, tcp) is None
    assert pick(wild, mine) == wild  # the first match wins
    assert pick(mine, wild) == mine
    assert pick(any_display) == any_display


# --- X11 request bytes -----------------------------------------------------------------


def test_the_connection_setup_carries_the_cookie_padded() -> None:
    assert xauth.setup_request(xauth.MIT_MAGIC_COOKIE, COOKIE) == (
        b"l\0" + struct.pack("<HHHH", 11, 0, 18, 16) + b"\0\0MIT-MAGIC-COOKIE-1\0\0" + COOKIE
    )
    assert xauth.setup_request(b"", b"") == b"l\0\x0b\0\0\0\0\0\0\0\0\0"


def test_setup_replies_say_accepted_or_why_not() -> None:
    ok = struct.pack("<BxHHH", 1, 11, 0, 2)
    assert xauth.setup_reply_length(ok) == 8
    assert xauth.setup_refusal(ok, b"\0" * 8) is None
    failed = struct.pack("<BBHHH", 0, 33, 11, 0, 9)
    reason = b"Invalid MIT-MAGIC-COOKIE-1 key\x1b[2J" + b"\0" * 3
    assert xauth.setup_refusal(failed, reason) == "Invalid MIT-MAGIC-COOKIE-1 key?[2"


def test_query_extension_asks_for_security_by_name() -> None:
    assert xauth.query_extension(b"SECURITY") == bytes([98, 0, 4, 0, 8, 0, 0, 0]) + b"SECURITY"
    reply = bytes([1, 0, 1, 0, 0, 0, 0, 0, 1, 140, 0, 150]) + b"\0" * 20
    assert xauth.query_extension_reply(reply) == (True, 140, 150)


def test_generate_asks_for_an_untrusted_cookie_that_never_times_out() -> None:
    req = xauth.generate_authorization(140, xauth.UNTRUSTED, 0)
    assert len(req) == 4 * struct.unpack_from("<H", req, 2)[0] == 40
    assert req[:12] == struct.pack("<BBHHHI", 140, 1, 10, 18, 0, 0b11)
    assert req[12:32] == b"MIT-MAGIC-COOKIE-1\0\0"
    assert req[32:] == struct.pack("<II", 0, 1)  # timeout 0, then trust level untrusted


def test_the_generate_reply_gives_the_id_and_the_cookie() -> None:
    reply = struct.pack("<BxHIIH18x", 1, 3, 4, 0x400518, 16) + COOKIE
    assert xauth.packet_length(reply[:32]) == 16
    assert xauth.generate_authorization_reply(reply) == (0x400518, COOKIE)
    with pytest.raises(xauth.XauthError):
        xauth.generate_authorization_reply(reply[:40])
    with pytest.raises(xauth.XauthError):
        xauth.generate_authorization_reply(struct.pack("<BxHIIH18x", 1, 3, 4, 0, 16) + COOKIE)


def test_revoke_names_the_authorization() -> None:
    assert xauth.revoke_authorization(140, 0x400518) == struct.pack("<BBHI", 140, 2, 2, 0x400518)
    assert xauth.get_input_focus() == bytes([43, 0, 1, 0])


def test_packets_are_told_apart() -> None:
    assert xauth.packet_kind(bytes([0, 150, 7, 0]) + b"\0" * 28) == ("error", 7, 150)
    assert xauth.packet_kind(bytes([1, 0, 8, 0]) + b"\0" * 28) == ("reply", 8, 0)
    assert xauth.packet_kind(bytes([12, 0, 8, 0]) + b"\0" * 28) == ("event", 8, 0)
    assert xauth.packet_length(bytes([0, 150, 7, 0, 9, 9, 9, 9]) + b"\0" * 24) == 0


# --- revoking against a scripted server ------------------------------------------------


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A unix socket at the path of display :9 that answers a revoke with ``error`` (or not)."""
    path = str(tmp_path / "X9")
    monkeypatch.setattr(host, "x11_socket_path", lambda n: path)
    script: dict[str, Any] = {"error": None, "seen": []}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            head = conn.recv(12, socket.MSG_WAITALL)
            n, d = struct.unpack_from("<HH", head, 6)
            conn.recv((n + 3) // 4 * 4 + (d + 3) // 4 * 4, socket.MSG_WAITALL)
            conn.sendall(struct.pack("<BxHHH", 1, 11, 0, 0))
            conn.recv(16, socket.MSG_WAITALL)  # QueryExtension SECURITY
            conn.sendall(bytes([1, 0, 1, 0, 0, 0, 0, 0, 1, 140, 0, 150]) + b"\0" * 20)
            script["seen"].append(conn.recv(8, socket.MSG_WAITALL))  # the revoke
            conn.recv(4, socket.MSG_WAITALL)  # GetInputFocus
            if script["error"] is not None:
                conn.sendall(bytes([0, script["error"], 2, 0]) + b"\0" * 28)
            conn.sendall(bytes([1, 0, 3, 0]) + b"\0" * 28)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield script
    listener.close()
    thread.join(5)


@pytest.mark.parametrize("error", [None, 150])
def test_revoking_succeeds_when_the_server_did_or_no_longer_knows_the_id(
    fake_server: dict[str, Any], error: int | None
) -> None:
    fake_server["error"] = error
    host.x11_revoke(9, COOKIE, 77)
    assert fake_server["seen"] == [struct.pack("<BBHI", 140, 2, 2, 77)]


def test_revoking_fails_on_any_other_error(fake_server: dict[str, Any]) -> None:
    fake_server["error"] = 10  # BadAccess
    with pytest.raises(host.HostError, match="refused to revoke"):
        host.x11_revoke(9, COOKIE, 77)


def test_revoking_on_a_display_without_a_server_is_success(tmp_path: Path) -> None:
    host.x11_revoke(999_999, COOKIE, 77)


# --- check and prepare with a faked host ------------------------------------------------


def config(cookie: str = "untrusted", wayland: bool = False, **container: Any) -> Config:
    c = ContainerConfig(shell="/bin/sh", home="/home/app", path="/usr/bin/xterm", **container)
    return Config(
        container=c, enablements=Enablements(x11=True, wayland=wayland), x11_cookie=cookie
    )


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[str, int, journal.Journal]]:
    path = tmp_path / "inst"
    path.mkdir(mode=0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    j = journal.Journal.create(fd)
    yield str(path), fd, j
    j.close()
    os.close(fd)


def session(
    inst: tuple[str, int, journal.Journal], cfg: Config, env: dict[str, str] | None = None
) -> Session:
    path, fd, j = inst
    env = {"DISPLAY": ":3", "XAUTHORITY": f"{path}/../user.xauth"} if env is None else env
    return Session(cfg, env, "0" * 32, path, fd, "/run/user/1000", 1000, 1000, j)


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """host's X11 calls answered from this dict; the user's Xauthority holds a cookie for :3."""
    state: dict[str, Any] = {"socket": True, "security": True, "generated": [], "held": []}
    (tmp_path / "user.xauth").write_bytes(
        xauth.dump(
            [xauth.Entry(xauth.FAMILY_LOCAL, b"myhost", b"3", xauth.MIT_MAGIC_COOKIE, COOKIE)]
        )
    )
    monkeypatch.setattr(host, "hostname", lambda: b"myhost")
    monkeypatch.setattr(host, "x11_is_socket", lambda p: state["socket"])
    monkeypatch.setattr(host, "x11_has_security", lambda n, c: state["security"])

    def generate(n: int, cookie: bytes | None, trust: int, timeout: int) -> tuple[int, bytes]:
        state["generated"].append((n, cookie, trust, timeout))
        return 0x600001, b"U" * 16

    def hold(n: int, cookie: bytes) -> socket.socket:
        mine, theirs = socket.socketpair()
        state["held"].append((n, cookie, theirs))
        return mine

    monkeypatch.setattr(host, "x11_generate", generate)
    monkeypatch.setattr(host, "x11_hold", hold)
    return state


def journal_lines(path: str) -> list[dict[str, Any]]:
    with open(f"{path}/journal") as f:
        return [json.loads(line) for line in f][1:]


def test_untrusted_mints_a_cookie_journals_its_revocation_and_grants_a_wild_copy(
    instance: tuple[str, int, journal.Journal], fake_host: dict[str, Any]
) -> None:
    s = session(instance, config())
    x = x11.X11()
    x.check(s)
    grant = trio.run(x.prepare, s)
    path = instance[0]
    assert fake_host["generated"] == [(3, COOKIE, xauth.UNTRUSTED, x11.TIMEOUT)]
    # Without a nursery the enablement keeps the connection on the new cookie itself.
    assert [held[:2] for held in fake_host["held"]] == [(3, b"U" * 16)]
    assert x.held is not None
    assert journal_lines(path) == [
        {
            "kind": "x11_revoke",
            "display": 3,
            "auth_id": 0x600001,
            "xauthority": os.path.normpath(f"{path}/../user.xauth"),
        },
        {"kind": "remove", "path": "Xauthority"},
    ]
    assert Path(path, "Xauthority").read_bytes() == xauth.dump([xauth.wild(3, b"U" * 16)])
    assert os.stat(f"{path}/Xauthority").st_mode & 0o777 == 0o600
    binds = [(op.source, op.target, op.flags) for op in grant.ops if isinstance(op, Bind)]
    assert binds == [
        ("/tmp/.X11-unix/X3", "/tmp/.X11-unix/X3", 2),
        (f"{path}/Xauthority", "/run/user/1000/Xauthority", 0),
    ]
    assert grant.env == {
        "DISPLAY": ":3",
        "XAUTHORITY": "/run/user/1000/Xauthority",
        "XDG_SESSION_TYPE": "x11",
    }


def test_the_connection_on_the_new_cookie_lives_until_the_nursery_is_cancelled(
    instance: tuple[str, int, journal.Journal], fake_host: dict[str, Any]
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            s = session(instance, config())
            s.nursery = nursery
            await x11.X11().prepare(s)
            await trio.testing.wait_all_tasks_blocked()
            theirs = fake_host["held"][0][2]
            theirs.setblocking(False)
            with pytest.raises(BlockingIOError):
                theirs.recv(1)  # open: nothing to read, no EOF
            nursery.cancel_scope.cancel()
        assert theirs.recv(1) == b""  # closed with the nursery

    trio.run(main)
    assert fake_host["held"][0][:2] == (3, b"U" * 16)


def test_trusted_passes_the_users_own_cookie_and_journals_no_revocation(
    instance: tuple[str, int, journal.Journal], fake_host: dict[str, Any]
) -> None:
    s = session(instance, config("trusted", wayland=True))
    x = x11.X11()
    x.check(s)
    grant = trio.run(x.prepare, s)
    assert fake_host["generated"] == fake_host["held"] == []
    assert journal_lines(instance[0]) == [{"kind": "remove", "path": "Xauthority"}]
    assert Path(instance[0], "Xauthority").read_bytes() == xauth.dump([xauth.wild(3, COOKIE)])
    assert "XDG_SESSION_TYPE" not in grant.env  # Wayland is on too: the session type is its


@pytest.mark.parametrize(
    ("cfg", "env", "state", "says"),
    [
        (config(host_net=True), None, {}, "needs host_abstract"),
        (config(), {"XAUTHORITY": "/x"}, {}, "DISPLAY is not set"),
        (config(), {"DISPLAY": "remote:0", "XAUTHORITY": "/x"}, {}, "network display"),
        (config(), None, {"socket": False}, "/tmp/.X11-unix/X3 is not a socket"),
        (config(), None, {"security": False}, "no SECURITY extension"),
        (config("trusted"), {"DISPLAY": ":4", "XAUTHORITY": "/nonexistent"}, {}, "no MIT-MAGIC"),
        (config(), {"DISPLAY": ":3", "XAUTHORITY": "rel/x"}, {}, "not an absolute path"),
        (config(), {"DISPLAY": ":3"}, {}, "neither XAUTHORITY nor HOME"),
    ],
)
def test_what_cannot_work_is_refused_in_check_with_one_line(
    instance: tuple[str, int, journal.Journal],
    fake_host: dict[str, Any],
    cfg: Config,
    env: dict[str, str] | None,
    state: dict[str, Any],
    says: str,
) -> None:
    fake_host.update(state)
    with pytest.raises(EnableError, match=says) as e:
        x11.X11().check(session(instance, cfg, env))
    assert "\n" not in str(e.value)
    assert journal_lines(instance[0]) == []


def test_a_trusted_cookie_without_security_is_fine(
    instance: tuple[str, int, journal.Journal], fake_host: dict[str, Any]
) -> None:
    fake_host["security"] = False
    x11.X11().check(session(instance, config("trusted")))


# --- the undo record -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"display": -1, "auth_id": 5, "xauthority": "/x"},
        {"display": 10**7, "auth_id": 5, "xauthority": "/x"},
        {"display": 1, "auth_id": 0, "xauthority": "/x"},
        {"display": 1, "auth_id": 1 << 32, "xauthority": "/x"},
        {"display": 1, "auth_id": 5, "xauthority": "relative"},
        {"display": 1, "auth_id": 5, "xauthority": "/a/../etc/shadow"},
        {"display": 1, "auth_id": 5, "xauthority": "/a\0b"},
        {"display": "1", "auth_id": 5, "xauthority": "/x"},
        {"display": 1, "auth_id": 5},
        {"display": 1, "auth_id": 5, "xauthority": "/x", "more": 1},
    ],
)
def test_hostile_revoke_records_are_refused_before_anything_is_sent(
    fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(host, "x11_revoke", lambda *a: sent.append(a))
    errors = journal.replay([{"kind": "x11_revoke", **fields}], journal.Context("0" * 32, -1, []))
    assert len(errors) == 1 and "refused" in errors[0]
    assert sent == []


def test_a_revoke_record_revokes_with_the_users_cookie(
    tmp_path: Path, fake_host: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(host, "x11_revoke", lambda *a: sent.append(a))
    rec = {"kind": "x11_revoke", "display": 3, "auth_id": 5, "xauthority": f"{tmp_path}/user.xauth"}
    assert journal.replay([rec], journal.Context("0" * 32, -1, [])) == []
    assert sent == [(3, COOKIE, 5)]
