"""The setup record survives the pipe intact, and init refuses anything else.

A defect in the frame must be one SetupError before init touches the system,
never a stray msgpack or KeyError exception.
"""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest

from hakurei.errors import SetupError
from hakurei.ops import Bind, Mkdir, Tmpfs
from hakurei.wire import HEADER_LEN, MAGIC, VERSION, Setup, decode, encode, read_setup

import records

#: A record with every field away from its default, so a round trip proves each travels.
WIRE_FIELDS: dict[str, Any] = {
    "path": "/bin/echo",
    "args": ["echo", "hello"],
    "env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
    "uid": 1000,
    "gid": 100,
    "host_uid": 1001,
    "host_gid": 1001,
    "hostname": "box",
    "forward_cancel": True,
    "adopt_wait_delay": 0.5,
    "bpf": b"\x06\x00\x00\x00\x00\x00\xff\x7f",
    "nrules": 1,
    "parent_pid": 4242,
    "verbose": True,
}


def make_setup(**overrides: Any) -> Setup:
    ops = [Bind("/usr", "/usr"), Tmpfs("/tmp", 1 << 20, 0o1777), Mkdir("/run/user", 0o700)]
    return records.make_setup(ops, **{**WIRE_FIELDS, **overrides})


def frame(body: dict[str, Any]) -> bytes:
    raw: bytes = msgpack.packb(body, use_bin_type=True)
    return MAGIC + VERSION.to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw


def wire_body(setup: Setup) -> dict[str, Any]:
    body: dict[str, Any] = msgpack.unpackb(encode(setup)[HEADER_LEN:], raw=False)
    return body


def test_round_trip_keeps_every_field_and_op() -> None:
    setup = make_setup()
    got = decode(encode(setup))
    for name in Setup.__slots__:
        assert getattr(got, name) == getattr(setup, name), name
    assert [type(op) for op in got.ops] == [Bind, Tmpfs, Mkdir]


def test_round_trip_without_seccomp_program() -> None:
    got = decode(encode(make_setup(bpf=None, nrules=0)))
    assert got.bpf is None


def test_read_setup_reads_one_record_from_a_pipe() -> None:
    r, w = os.pipe()
    try:
        os.write(w, encode(make_setup()))
        os.close(w)
        w = -1
        assert read_setup(r).hostname == "box"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_bad_magic_is_rejected() -> None:
    data = bytearray(encode(make_setup()))
    data[:4] = b"JUNK"
    with pytest.raises(SetupError, match="bad magic"):
        decode(bytes(data))


def test_unsupported_version_is_rejected() -> None:
    data = bytearray(encode(make_setup()))
    data[4:6] = (VERSION + 1).to_bytes(2, "big")
    with pytest.raises(SetupError, match="unsupported protocol version"):
        decode(bytes(data))


@pytest.mark.parametrize("keep", [0, 3, HEADER_LEN - 1])
def test_truncated_header_is_rejected(keep: int) -> None:
    with pytest.raises(SetupError, match="truncated header"):
        decode(encode(make_setup())[:keep])


def test_truncated_body_is_rejected() -> None:
    data = encode(make_setup())
    with pytest.raises(SetupError, match="header says"):
        decode(data[:-1])


def test_truncated_stream_is_rejected_by_read_setup() -> None:
    r, w = os.pipe()
    try:
        os.write(w, encode(make_setup())[:-5])
        os.close(w)
        w = -1
        with pytest.raises(SetupError, match="truncated setup stream"):
            read_setup(r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_unknown_op_tag_is_rejected() -> None:
    body = wire_body(make_setup())
    body["ops"].append(["chroot", {"path": "/"}])
    with pytest.raises(SetupError, match="unknown op type 'chroot' at index 3"):
        decode(frame(body))


def test_op_with_a_relative_path_is_rejected() -> None:
    body = wire_body(make_setup())
    body["ops"][0][1]["target"] = "usr"
    with pytest.raises(SetupError, match="invalid op at index 0"):
        decode(frame(body))


def test_garbage_body_is_one_setup_error() -> None:
    raw = b"\xc1\xc1\xc1"
    with pytest.raises(SetupError, match="malformed msgpack"):
        decode(MAGIC + VERSION.to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw)
