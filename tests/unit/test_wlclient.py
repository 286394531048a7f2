"""The launcher's Wayland client never trusts what the compositor sends."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei.app.wlclient import Connection, Reader, WaylandError, message, string, uint


def test_a_string_round_trips_with_its_nul_and_padding() -> None:
    data = string("wl_shm")
    assert len(data) % 4 == 0 and data[:4] == struct.pack("=I", 7)
    assert Reader(data + uint(9)).string() == "wl_shm"


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no length
        struct.pack("=I", 0),  # a zero length (a null string) where one is required
        struct.pack("=I", 8) + b"abc\0",  # longer than the message
        struct.pack("=I", 4) + b"abcd",  # no NUL at the end
        struct.pack("=I", 4) + b"a\0b\0",  # a NUL inside
    ],
)
def test_a_bad_string_is_a_wayland_error(payload: bytes) -> None:
    with pytest.raises(WaylandError):
        Reader(payload).string()


def test_a_message_over_the_protocol_limit_is_refused() -> None:
    with pytest.raises(WaylandError, match="over the protocol"):
        message(2, 0, b"\0" * 4096)


@pytest.fixture
def compositor(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A socket whose peer answers every connection with the bytes the test queues."""
    path = str(tmp_path / "c")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    replies: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        for reply in replies:
            conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(4096)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, replies
    server.close()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (struct.pack("=II", 2, 4 << 16), "bad size 4"),
        (struct.pack("=II", 2, 10 << 16) + b"xx", "bad size 10"),
        (struct.pack("=II", 2, 8000 << 16), "bad size 8000"),
        (struct.pack("=II", 2, 16 << 16) + b"\0" * 4, "closed the connection"),
        (message(2, 0, uint(1) + struct.pack("=I", 99)), "bad string"),
        (message(1, 0, uint(1) + uint(3) + string("go away")), "compositor error 3: go away"),
    ],
)
def test_nonsense_from_the_compositor_is_one_wayland_error(
    compositor: tuple[str, list[bytes]], reply: bytes, error: str
) -> None:
    path, replies = compositor
    replies.append(reply)
    with Connection(path, timeout=5) as conn, pytest.raises(WaylandError, match=error):
        conn.globals()
