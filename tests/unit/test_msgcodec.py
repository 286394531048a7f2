"""hakurei.msgcodec reads what the msgpack library writes, and refuses bad bytes in one way.

A cold shim and the fork server decode with it, the parent encodes with the
msgpack library: the two must agree on every value the records can hold, and
any byte string, however hostile, is either the value msgpack reads or an
``UnpackError``, never another exception.
"""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hakurei.msgcodec import MAX_DEPTH, UnpackError, packb, unpackb

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text() | st.binary(), inner, max_size=6)
    ),
    max_leaves=40,
)
# What packb writes: no floats (the fork server's replies have none).
packable = st.recursive(
    scalars.filter(lambda v: not isinstance(v, float)),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(), inner, max_size=6),
    max_leaves=40,
)


def library_reads(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)


@given(values)
@settings(max_examples=400)
def test_it_reads_every_value_the_library_writes(value: Any) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    assert unpackb(data) == value


@given(packable)
@settings(max_examples=300)
def test_what_it_writes_is_byte_for_byte_what_the_library_writes(value: Any) -> None:
    assert packb(value) == msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize(
    "n",
    [0, 31, 32, 255, 256, 65535, 65536, 70000],
    ids=lambda n: f"len{n}",
)
def test_every_length_form_of_str_bin_array_and_map(n: int) -> None:
    for value in ("x" * n, b"y" * n, [1] * n, {str(i): i for i in range(n)}):
        data = msgpack.packb(value, use_bin_type=True)
        assert unpackb(data) == value
        assert packb(value) == data


@pytest.mark.parametrize(
    "n",
    [
        *(0, 127, 128, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32, (1 << 64) - 1),
        *(-1, -32, -33, -128, -129, -32768, -32769, -(1 << 31), -(1 << 31) - 1, -(1 << 63)),
    ],
)
def test_every_integer_form(n: int) -> None:
    data = msgpack.packb(n)
    assert unpackb(data) == n
    assert packb(n) == data


def test_floats_of_both_widths_including_nan() -> None:
    assert unpackb(b"\xca" + bytes.fromhex("3fc00000")) == 1.5  # float32
    assert math.isnan(unpackb(msgpack.packb(float("nan"))))  # type: ignore[arg-type]


def agree_or_refuse(data: bytes) -> None:
    """Either both read the same value, or ours refuses with UnpackError."""
    try:
        ours: Any = unpackb(data)
    except UnpackError:
        ours = UnpackError
    try:
        theirs = library_reads(data)
    except Exception:
        theirs = UnpackError
    if ours is UnpackError:
        return  # refusing is always allowed (ext types, deep nesting are refused on purpose)
    assert theirs is not UnpackError, f"we read {ours!r} where msgpack refuses {data!r}"
    assert msgpack.packb(ours) == msgpack.packb(theirs)  # equal, NaN included


@given(st.binary(max_size=64))
@settings(max_examples=2000)
def test_any_bytes_are_what_msgpack_reads_or_one_unpack_error(data: bytes) -> None:
    agree_or_refuse(data)


@given(values, st.data())
@settings(max_examples=500)
def test_a_valid_value_cut_or_flipped_anywhere_is_never_another_exception(
    value: Any, data: st.DataObject
) -> None:
    raw = msgpack.packb(value, use_bin_type=True)
    cut = data.draw(st.integers(0, len(raw)))
    agree_or_refuse(raw[:cut])
    if raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        agree_or_refuse(raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "truncated data"),
        (b"\xdb\xff\xff\xff\xff", "truncated data"),  # a 4 GiB str with no bytes
        (b"\xdd\xff\xff\xff\xff\x00", "truncated data"),  # 4 G array elements in one byte
        (b"\xdf\x00\x00\x00\x02\xa1a", "truncated data"),
        (b"\x01\x02", "1 bytes of extra data after the value"),
        (b"\xc1", "type byte 0xc1 is not read here (ext, or reserved)"),
        (b"\xd4\x01\x00", "type byte 0xd4 is not read here (ext, or reserved)"),
        (b"\xa2\xc3\x28", "a str is not UTF-8"),
        (b"\x81\x01\x02", "a map key is int, not str or bytes"),
        (b"\x81\x90\x02", "a map key is list, not str or bytes"),
    ],
)
def test_each_defect_is_named(data: bytes, why: str) -> None:
    with pytest.raises(UnpackError) as e:
        unpackb(data)
    assert str(e.value) == why


def test_nesting_past_the_limit_is_refused_not_a_recursion_error() -> None:
    assert unpackb(b"\x91" * (MAX_DEPTH - 1) + b"\x90") is not None
    with pytest.raises(UnpackError, match="nested deeper than 32"):
        unpackb(b"\x91" * MAX_DEPTH + b"\x90")
    with pytest.raises(UnpackError, match="nested deeper"):
        unpackb(b"\x91" * 100_000 + b"\xc0")


def test_reading_a_record_loads_no_msgpack_datetime_or_collections() -> None:
    """What it is for: a shim that decodes a record imports none of what msgpack costs."""
    code = (
        "import sys\n"
        "from hakurei.msgcodec import unpackb\n"
        "unpackb(bytes.fromhex(sys.argv[1]))\n"
        "print(sorted({'msgpack', 'datetime', 'collections'} & set(sys.modules)))\n"
    )
    frame = msgpack.packb({"a": [1, "b", b"c", None, True]}, use_bin_type=True)
    r = subprocess.run(
        [sys.executable, "-I", "-c", code, frame.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (r.returncode, r.stdout) == (0, "[]\n"), r.stderr
