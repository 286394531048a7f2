"""The setup-stream decoder: any input is either a valid Setup or one SetupError.

The in-process properties run many examples; the entry-point properties run
the real internal entry (``python -m hakurei init``) and check the contract a
user sees: exit status 125 and exactly one line on stderr, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakurei.errors import SetupError
from hakurei.ops import REGISTRY, Ops
from hakurei.wire import (
    FIELDS,
    HEADER_LEN,
    MAGIC,
    MAX_BODY,
    VERSION,
    Setup,
    decode,
    encode,
    read_setup,
)

import records


def valid_setup() -> Setup:
    ops = Ops().bind("/usr", "/usr").proc("/proc").place("/etc/x", b"data").tmpfs("/tmp")
    return records.make_setup(
        ops,
        env=["PATH=/usr/bin"],
        uid=1000,
        gid=100,
        host_uid=1001,
        host_gid=1001,
        hostname="h",
        bpf=b"\0" * 16,
        nrules=2,
    )


FRAME = encode(valid_setup())


def frame_of(body: object) -> bytes:
    raw = msgpack.packb(body, use_bin_type=True)
    return MAGIC + VERSION.to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw


def accepted_or_one_error(data: bytes) -> None:
    """``data`` decodes to one SetupError, or to a record that re-encodes to the same record.

    Accepting something and then sending (or acting on) something else is the
    failure this rules out: every field and op of an accepted record must
    survive a re-encode, and the re-encoding must decode to an equal record.
    """
    try:
        s = decode(data)
    except SetupError:
        return
    again = encode(s)
    assert msgpack.unpackb(again[HEADER_LEN:]) == msgpack.unpackb(data[HEADER_LEN:])
    t = decode(again)
    assert t.ops == s.ops
    for name, _ in FIELDS:
        assert getattr(t, name) == getattr(s, name), name


def test_valid_frame_round_trips() -> None:
    s = decode(FRAME)
    assert s.ops == valid_setup().ops
    assert (s.path, s.uid, s.gid, s.bpf) == ("/bin/true", 1000, 100, b"\0" * 16)


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_rejected_cleanly(data: bytes) -> None:
    with pytest.raises(SetupError):
        decode(data)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bodies_behind_a_valid_header_are_rejected_cleanly(body: bytes) -> None:
    frame = MAGIC + VERSION.to_bytes(2, "big") + len(body).to_bytes(4, "big") + body
    with pytest.raises(SetupError):
        decode(frame)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(msgpack.unpackb(FRAME[HEADER_LEN:]))), json_like)
def test_any_field_replaced_by_junk_is_valid_or_one_setup_error(field: str, junk: object) -> None:
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body[field] = junk
    accepted_or_one_error(frame_of(body))


@settings(max_examples=300)
@given(st.integers(0, len(FRAME) - 1), st.integers(0, 255))
def test_single_byte_corruption_is_valid_or_one_setup_error(pos: int, value: int) -> None:
    data = bytearray(FRAME)
    data[pos] = value
    accepted_or_one_error(bytes(data))


KNOWN_TAGS = sorted(REGISTRY)


@settings(max_examples=300)
@given(
    st.text(max_size=12).filter(lambda tag: tag not in REGISTRY),
    json_like,
    st.integers(0, 4),
)
def test_every_unknown_op_tag_is_rejected_by_name(tag: str, fields: object, at: int) -> None:
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body["ops"].insert(at, [tag, fields])
    with pytest.raises(SetupError) as e:
        decode(frame_of(body))
    assert str(e.value) == f"unknown op type {tag!r} at index {at}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KNOWN_TAGS), json_like)
def test_a_known_op_tag_with_junk_fields_is_valid_or_one_setup_error(
    tag: str, fields: object
) -> None:
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body["ops"].append([tag, fields])
    accepted_or_one_error(frame_of(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": VERSION}, "missing field"),
        ([1, 2], "not a map"),
    ],
)
def test_structural_errors_name_the_problem(body: object, message: str) -> None:
    with pytest.raises(SetupError, match=message):
        decode(frame_of(body))


def test_unknown_op_tag_is_named() -> None:
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body["ops"].append(["chmod", {"path": "/x"}])
    with pytest.raises(SetupError, match="unknown op type 'chmod' at index 4"):
        decode(frame_of(body))


def test_relative_path_in_an_op_is_named() -> None:
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body["ops"][0][1]["source"] = "usr"
    with pytest.raises(SetupError, match='invalid op at index 0: bind: path "usr" is not absolute'):
        decode(frame_of(body))


def test_wrong_version_and_oversized_length() -> None:
    with pytest.raises(SetupError, match="unsupported protocol version 9"):
        decode(MAGIC + (9).to_bytes(2, "big") + FRAME[6:])
    huge = MAGIC + VERSION.to_bytes(2, "big") + (MAX_BODY + 1).to_bytes(4, "big")
    r, w = os.pipe()
    os.write(w, huge)
    os.close(w)
    with pytest.raises(SetupError, match="exceeds"):
        read_setup(r)  # rejected from the header alone: nothing is allocated
    os.close(r)


def test_a_version_3_frame_from_an_older_parent_is_refused() -> None:
    """Protocol 3 carried ``fetch`` (warm starts); a parent still speaking it gets one line."""
    body = msgpack.unpackb(FRAME[HEADER_LEN:])
    body.update(version=3, fetch=[])
    raw = msgpack.packb(body, use_bin_type=True)
    frame = MAGIC + (3).to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw
    with pytest.raises(SetupError, match=r"^unsupported protocol version 3 \(want 5\)$"):
        decode(frame)


@pytest.mark.parametrize("cut", [0, 3, HEADER_LEN, HEADER_LEN + 1, len(FRAME) - 1])
def test_truncated_stream(cut: int) -> None:
    r, w = os.pipe()
    os.write(w, FRAME[:cut])
    os.close(w)
    with pytest.raises(SetupError, match="truncated"):
        read_setup(r)
    os.close(r)


def test_trailing_data_is_rejected() -> None:
    r, w = os.pipe()
    os.write(w, FRAME + b"x")
    os.close(w)
    with pytest.raises(SetupError, match="trailing data"):
        read_setup(r)
    os.close(r)


def entry(data: bytes, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The documented internal entry, fed ``data`` on fd 0."""
    return subprocess.run(
        [sys.executable, "-m", "hakurei", "init"],
        input=data,
        env={"HAKUREI_SETUP": "0"} if env is None else env,
        capture_output=True,
        timeout=30,
        check=False,
    )


def assert_one_line_125(r: subprocess.CompletedProcess[bytes], contains: str) -> None:
    assert r.returncode == 125, r
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("hakurei: ") and contains in lines[0], lines
    assert r.stdout == b""


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=300))
def test_entry_with_garbage_exits_125_with_one_line(data: bytes) -> None:
    assert_one_line_125(entry(data), "cannot decode init setup payload")


def test_entry_with_a_truncated_record() -> None:
    assert_one_line_125(entry(FRAME[: len(FRAME) // 2]), "truncated setup stream")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "HAKUREI_SETUP not set"),
        ({"HAKUREI_SETUP": "abc"}, "invalid setup descriptor"),
        ({"HAKUREI_SETUP": "-1"}, "invalid setup descriptor"),
        ({"HAKUREI_SETUP": "57"}, "invalid setup descriptor"),
    ],
)
def test_entry_with_a_bad_descriptor(env: dict[str, str], message: str) -> None:
    assert_one_line_125(entry(b"", env), message)
