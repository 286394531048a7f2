"""The proxy's wire codec and registry filter, without sockets.

Every malformed-input class the proxy must refuse is here once, as the
:class:`WireError` that makes the proxy drop the sender; the filter's
decisions are checked message by message.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hakurei.app.wlproxy import DEFAULT_ALLOW, Filter, Refusal, WireError, wire

U32 = st.integers(0, 2**32 - 1)
IFACE = st.binary(min_size=1, max_size=200).filter(lambda b: b"\0" not in b)


def raw(obj: int, opcode: int, size: int, body: bytes = b"") -> bytes:
    return struct.pack("=II", obj, size << 16 | opcode) + body


@given(U32, U32, IFACE, U32)
def test_global_round_trips(registry: int, name: int, iface: bytes, version: int) -> None:
    msg = wire.encode_global(registry, name, iface, version)
    assert wire.header(msg) == (registry, wire.REGISTRY_GLOBAL, len(msg))
    assert len(msg) % 4 == 0
    assert wire.global_(msg) == (name, iface, version)


@given(U32, U32, IFACE, U32, U32)
def test_bind_round_trips(registry: int, name: int, iface: bytes, version: int, new: int) -> None:
    msg = wire.encode_bind(registry, name, iface, version, new)
    assert wire.bind(msg) == (name, iface, version, new)


def test_display_error_carries_object_code_and_text() -> None:
    msg = wire.display_error(7, wire.ERROR_INVALID_OBJECT, b"no")
    obj, opcode, size = wire.header(msg)
    assert (obj, opcode, size) == (1, wire.DISPLAY_ERROR, len(msg))
    r = wire.Reader(msg)
    assert (r.u32(), r.u32(), r.string()) == (7, 0, b"no")
    r.done()


@pytest.mark.parametrize("size", [0, 4, 7, 9, 4097, 4100, 65535])
def test_a_header_with_an_impossible_size_is_refused(size: int) -> None:
    with pytest.raises(WireError):
        wire.header(raw(3, 0, size))


@pytest.mark.parametrize("size", [8, 12, 4096])
def test_every_size_libwayland_sends_is_accepted(size: int) -> None:
    assert wire.header(raw(3, 5, size)) == (3, 5, size)


GOOD = wire.encode_bind(2, 5, b"wl_shm", 1, 9)


@pytest.mark.parametrize(
    "msg",
    [
        raw(2, 0, 8),  # no arguments at all
        raw(2, 0, 12, struct.pack("=I", 5)),  # name only: the string's length is missing
        raw(2, 0, 16, struct.pack("=II", 5, 0)),  # null string
        raw(2, 0, 16, struct.pack("=II", 5, 200)),  # string runs past the end
        raw(2, 0, 28, struct.pack("=II", 5, 7) + b"wl_shm!" + b"\0" * 1 + b"\0" * 8),  # no NUL
        raw(2, 0, 28, struct.pack("=II", 5, 7) + b"wl\0shm\0" + b"\0" * 9),  # NUL inside
        GOOD[:-4],  # truncated: new_id missing
        GOOD + b"\0" * 4,  # trailing bytes
    ],
    ids=["empty", "no-length", "null", "overrun", "no-nul", "inner-nul", "short", "long"],
)
def test_a_malformed_bind_is_refused(msg: bytes) -> None:
    msg = struct.pack("=II", 2, len(msg) << 16) + msg[8:]
    with pytest.raises(WireError):
        wire.bind(msg)


def test_string_padding_content_is_not_checked_because_libwayland_leaves_garbage() -> None:
    msg = bytearray(GOOD)
    msg[8 + 4 + 4 + 7] = 0xAA  # the pad byte after "wl_shm\0"
    assert wire.bind(bytes(msg)) == (5, b"wl_shm", 1, 9)


GLOBALS = [(1, b"wl_compositor"), (2, b"zwlr_screencopy_manager_v1"), (3, b"wl_shm")]


def announced(f: Filter, registry: int = 2) -> list[int]:
    f.from_client(1, wire.DISPLAY_GET_REGISTRY, wire.encode_get_registry(registry))
    return [
        name
        for name, iface in GLOBALS
        if f.from_server(registry, 0, wire.encode_global(registry, name, iface, 1))
    ]


def test_only_allowed_globals_are_forwarded() -> None:
    assert announced(Filter(DEFAULT_ALLOW)) == [1, 3]


def test_global_remove_of_a_hidden_global_is_dropped_and_of_a_shown_one_kept() -> None:
    f = Filter(DEFAULT_ALLOW)
    announced(f)
    remove = struct.pack("=III", 2, 12 << 16 | 1, 2)
    assert not f.from_server(2, wire.REGISTRY_GLOBAL_REMOVE, remove)
    keep = struct.pack("=III", 2, 12 << 16 | 1, 3)
    assert f.from_server(2, wire.REGISTRY_GLOBAL_REMOVE, keep)


def test_events_of_other_objects_pass_untouched() -> None:
    f = Filter(DEFAULT_ALLOW)
    announced(f)
    # object 5 is no registry: an opcode-0 event there is not a global, whatever its bytes
    assert f.from_server(5, 0, wire.encode_global(5, 2, b"zwlr_screencopy_manager_v1", 1))


@pytest.mark.parametrize(
    ("name", "iface"),
    [(2, b"zwlr_screencopy_manager_v1"), (99, b"wl_shm"), (3, b"wl_compositor")],
    ids=["hidden", "never-announced", "other-interface"],
)
def test_a_bind_to_anything_not_shown_is_refused(name: int, iface: bytes) -> None:
    f = Filter(DEFAULT_ALLOW)
    announced(f)
    with pytest.raises(Refusal) as e:
        f.from_client(2, wire.REGISTRY_BIND, wire.encode_bind(2, name, iface, 1, 10))
    err = e.value.error_message()
    assert wire.header(err)[:2] == (1, wire.DISPLAY_ERROR)
    assert struct.unpack_from("=II", err, 8) == (2, wire.ERROR_INVALID_OBJECT)


def test_a_bind_to_a_shown_global_passes_even_after_its_removal() -> None:
    f = Filter(DEFAULT_ALLOW)
    announced(f)
    f.from_server(2, 1, struct.pack("=III", 2, 12 << 16 | 1, 3))
    f.from_client(2, wire.REGISTRY_BIND, wire.encode_bind(2, 3, b"wl_shm", 1, 10))


def test_a_bind_on_a_second_registry_sees_names_shown_on_the_first() -> None:
    f = Filter(DEFAULT_ALLOW)
    announced(f, 2)
    f.from_client(1, wire.DISPLAY_GET_REGISTRY, wire.encode_get_registry(8))
    f.from_client(8, wire.REGISTRY_BIND, wire.encode_bind(8, 1, b"wl_compositor", 4, 10))


def test_registries_are_capped() -> None:
    f = Filter(DEFAULT_ALLOW)
    for i in range(2, 2 + 1024):
        f.from_client(1, wire.DISPLAY_GET_REGISTRY, wire.encode_get_registry(i))
    with pytest.raises(WireError):
        f.from_client(1, wire.DISPLAY_GET_REGISTRY, wire.encode_get_registry(5000))


def test_a_malformed_get_registry_is_refused() -> None:
    with pytest.raises(WireError):
        Filter(DEFAULT_ALLOW).from_client(1, wire.DISPLAY_GET_REGISTRY, raw(1, 1, 16, b"\0" * 8))


@pytest.mark.parametrize(
    "iface",
    [
        b"zwlr_screencopy_manager_v1",
        b"zwlr_data_control_manager_v1",
        b"zwp_virtual_keyboard_manager_v1",
        b"zwlr_virtual_pointer_manager_v1",
        b"zwlr_layer_shell_v1",
        b"ext_session_lock_manager_v1",
        b"zwlr_foreign_toplevel_manager_v1",
        b"zwp_input_method_manager_v2",
        b"zwlr_export_dmabuf_manager_v1",
        b"zwlr_gamma_control_manager_v1",
        b"zwlr_output_manager_v1",
        b"wp_security_context_manager_v1",
    ],
)
def test_the_default_allowlist_hides_every_privileged_global(iface: bytes) -> None:
    assert iface not in DEFAULT_ALLOW
