"""The proxy's loop against a stub compositor: filtering, refusal, fds, bounds, fuzzing.

The proxy runs in a thread of the test process (so its fds are this
process's: an fd it forgets to close shows up in ``/proc/self/fd``); the stub
compositor and the raw clients are in :mod:`wlstub`.  Each misbehaving
client is checked for two things: it is dropped, and a second, well-behaved
client connected all along still gets its round trips answered.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hakurei.app.wlproxy import loop, wire

from wlstub import (
    EVENT_OBJ,
    HOOK_ERROR,
    HOOK_FD_BACK,
    HOOK_FLOOD,
    HOOK_REMOVE,
    SHOWN,
    Client,
    ProxyThread,
    Stub,
    open_fds,
    proxied,
    settle_fds,
)


@pytest.fixture
def tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hk-wlp.", dir="/tmp") as d:  # short socket paths
        yield Path(d)


@pytest.fixture
def setup(tmp: Path) -> Iterator[tuple[Stub, ProxyThread, Path]]:
    with proxied(tmp) as s:
        yield s


def test_a_client_sees_only_allowed_globals_and_binds_them(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    stub, _, path = setup
    c = Client(path)
    reg, globals_ = c.registry()
    assert globals_ == SHOWN
    c.send(wire.encode_bind(reg, 1, b"wl_compositor", 4, c.new_id()))
    c.roundtrip()
    assert stub.binds == [(1, b"wl_compositor")]


def test_global_remove_of_hidden_globals_never_arrives(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    _, _, path = setup
    c = Client(path)
    reg, _ = c.registry()
    c.send(wire.message(HOOK_REMOVE, 0, b""))
    removed = [
        struct.unpack_from("=I", m, 8)[0] for o, op, m in c.roundtrip() if (o, op) == (reg, 1)
    ]
    assert removed == [n for n, _, _ in SHOWN]


@pytest.mark.parametrize(
    ("name", "iface"),
    [(2, b"zwlr_screencopy_manager_v1"), (77, b"wl_shm")],
    ids=["hidden", "unknown"],
)
def test_binding_a_hidden_global_gets_a_protocol_error_and_a_hang_up(
    setup: tuple[Stub, ProxyThread, Path], name: int, iface: bytes
) -> None:
    stub, _, path = setup
    other = Client(path)
    other.registry()
    c = Client(path)
    reg, _ = c.registry()
    c.send(wire.encode_bind(reg, name, iface, 1, c.new_id()))
    msgs = c.until_eof()
    assert [m[:2] for m in msgs] == [(1, wire.DISPLAY_ERROR)]
    assert struct.unpack_from("=II", msgs[0][2], 8) == (reg, wire.ERROR_INVALID_OBJECT)
    assert stub.binds == []
    other.roundtrip()


def test_fds_travel_both_ways_with_their_messages(setup: tuple[Stub, ProxyThread, Path]) -> None:
    stub, _, path = setup
    c = Client(path)
    r, w = os.pipe()
    c.send(wire.message(0x77, 0, b""), [w])  # the stub writes "s" into every pipe it gets
    os.close(w)
    c.roundtrip()
    assert os.read(r, 10) == b"s"
    os.close(r)
    c.send(wire.message(HOOK_FD_BACK, 0, b""))
    msgs = c.until(EVENT_OBJ, 1)
    assert msgs[-1][:2] == (EVENT_OBJ, 1) and len(c.fds) == 1
    os.write(c.fds[0], b"c")
    assert os.read(stub.read_ends[-1], 10) == b"c"
    c.close()


def test_requests_arriving_one_byte_at_a_time_are_filtered_and_forwarded_whole(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    """A message split across reads waits, whole, for its rest (the partial-message path).

    Each byte is sent only once the proxy holds every byte before it of the
    message being completed, so every read really ends inside a message.
    """
    stub, proxy, path = setup
    c = Client(path)
    reg, _ = c.registry()
    (pair,) = proxy.proxy.pairs
    cb = c.new_id()
    msgs = [wire.encode_bind(reg, 1, b"wl_compositor", 4, c.new_id()), wire.encode_sync(cb)]
    for msg in msgs:
        for i in range(len(msg)):
            c.send(msg[i : i + 1])
            if i + 1 == len(msg):
                break
            deadline = time.monotonic() + 10
            while len(pair.client.inbuf) != i + 1:
                assert time.monotonic() < deadline, f"proxy holds {len(pair.client.inbuf)}/{i + 1}"
                time.sleep(0.001)  # polling a real condition, with a deadline
    assert c.until(cb, 0)[-1][:2] == (cb, 0)
    assert stub.binds == [(1, b"wl_compositor")]
    c.close()


def test_more_than_28_fds_in_one_message_drops_that_client(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    _, _, path = setup
    other = Client(path)
    other.roundtrip()  # its pair is up: its fds are part of the baseline
    baseline = open_fds()
    c = Client(path)
    pipes = [os.pipe() for _ in range(15)]
    fds = [fd for p in pipes for fd in p]
    c.send(wire.message(0x77, 0, b""), fds[:29])
    for fd in fds:
        os.close(fd)
    assert c.until_eof() == []
    c.close()
    assert settle_fds(baseline) == set()
    other.roundtrip()


def test_a_flood_of_queued_fds_drops_that_client_and_leaks_none(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    _, _, path = setup
    other = Client(path)
    other.roundtrip()  # its pair is up: its fds are part of the baseline
    baseline = open_fds()
    c = Client(path)
    r, w = os.pipe()
    # a message that never completes, so its fds can only queue
    c.send(struct.pack("=II", 0x77, 4096 << 16))
    try:
        for _ in range(loop.MAX_FDS_QUEUED // 28 + 2):
            c.send(b"\0" * 4, [w] * 28)
    except (BrokenPipeError, ConnectionResetError):
        pass  # already dropped
    os.close(r)
    os.close(w)
    assert c.until_eof() == []
    c.close()
    assert settle_fds(baseline) == set()
    other.roundtrip()


MALFORMED = {
    "size-below-8": struct.pack("=II", 3, 4 << 16),
    "size-above-4096": struct.pack("=II", 3, 4100 << 16) + b"\0" * 4092,
    "size-not-aligned": struct.pack("=II", 3, 10 << 16) + b"\0\0",
    "bind-string-overrun": struct.pack("=IIIII", 2, 20 << 16, 1, 400, 0),
    "bind-no-nul": wire.message(2, 0, struct.pack("=II", 1, 4) + b"abcd" + b"\0" * 8),
    "get-registry-long": wire.message(1, 1, b"\0" * 8),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_drops_only_that_client(
    setup: tuple[Stub, ProxyThread, Path], data: bytes
) -> None:
    stub, _, path = setup
    other = Client(path)
    other.registry()
    c = Client(path)
    c.send(wire.encode_get_registry(2))
    c.send(data)
    msgs = c.until_eof()
    assert all(o == 2 for o, _, _ in msgs)  # at most its globals, no answer to the garbage
    assert other.roundtrip()
    assert stub.binds == []


def test_a_compositor_error_reaches_the_client_before_the_hang_up(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    _, _, path = setup
    c = Client(path)
    c.send(wire.message(HOOK_ERROR, 0, b""))
    msgs = c.until_eof()
    assert [m[:2] for m in msgs] == [(1, wire.DISPLAY_ERROR)]
    assert b"stub says no" in msgs[0][2]


def test_a_client_that_does_not_read_gets_bounded_buffering_and_then_everything(
    setup: tuple[Stub, ProxyThread, Path],
) -> None:
    stub, proxy, path = setup
    other = Client(path)
    c = Client(path)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    kib = 16 * 1024  # 16 MiB of events, far more than every buffer on the way
    c.send(wire.message(HOOK_FLOOD, 0, struct.pack("=I", kib)))
    assert stub.blocked.wait(30), "the stub could always send: nothing pushed back"
    bound = loop.HIGH_WATER + loop.RECV_SIZE + wire.MAX_SIZE
    # The stub keeps writing; every round trip of the other client is more
    # poll rounds in which a proxy without backpressure would read it all in.
    for _ in range(200):
        other.roundtrip()  # the proxy still serves others meanwhile
        if proxy.max_held > bound:
            break
    assert proxy.max_held <= bound
    got = 0
    while got < kib:
        got += sum(1 for o, op, _ in c.messages() if (o, op) == (EVENT_OBJ, 2))
        if got < kib:
            assert c.read()
    c.roundtrip()


def test_without_a_compositor_the_client_is_hung_up_on(tmp: Path) -> None:
    # no compositor at the upstream path: the client is hung up on, nothing else happens
    proxy = ProxyThread(tmp / "proxy", tmp / "nothing-here")
    try:
        c = Client(tmp / "proxy")
        assert c.until_eof() == []
    finally:
        proxy.close()


# --- fuzzing -----------------------------------------------------------------------

VALID = st.one_of(
    st.builds(wire.encode_sync, st.integers(2, 40)),
    st.builds(wire.encode_get_registry, st.integers(2, 40)),
    st.builds(
        wire.encode_bind,
        st.integers(2, 40),
        st.integers(0, 8),
        st.sampled_from([b"wl_shm", b"wl_compositor", b"zwlr_screencopy_manager_v1", b"x"]),
        st.integers(0, 5),
        st.integers(2, 60),
    ),
    st.builds(
        lambda o, op, n: wire.message(o, op, b"\0" * (4 * n)),
        st.integers(0, 2**32 - 1),
        st.integers(0, 0xFFFF),
        st.integers(0, 20),
    ),
)


def mutate(msg: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["keep", "flip", "cut", "size", "junk"]))
    b = bytearray(msg)
    if kind == "flip":
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        del b[data.draw(st.integers(0, len(b) - 1)) :]
    elif kind == "size":
        struct.pack_into("=H", b, 6, data.draw(st.integers(0, 0xFFFF)))
    elif kind == "junk":
        b += data.draw(st.binary(max_size=64))
    return bytes(b)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Stub, ProxyThread, Path]]:
    with tempfile.TemporaryDirectory(prefix="hk-wlf.", dir="/tmp") as d, proxied(Path(d)) as s:
        yield s


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # shrinking re-runs socket waits for minutes
)
@given(data=st.data())
def test_fuzzed_streams_from_one_client_disturb_no_other(
    shared: tuple[Stub, ProxyThread, Path], data: st.DataObject
) -> None:
    _, proxy, path = shared
    good = Client(path)
    reg, globals_ = good.registry()
    baseline = open_fds()
    bad = Client(path)
    stream = b"".join(mutate(m, data) for m in data.draw(st.lists(VALID, max_size=12)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    # Every draw before any send: a send that fails (the proxy dropped the client, which
    # timing decides) must not change what hypothesis drew, or it reports a flaky strategy.
    counts = [data.draw(st.integers(0, 3)) for _ in range(len(cuts) + 1)]
    try:
        for a, b, n in zip([0, *cuts], [*cuts, len(stream)], counts, strict=True):
            fd = os.open("/dev/null", os.O_RDONLY)
            try:
                if a < b:
                    bad.send(stream[a:b], [fd] * n)
            finally:
                os.close(fd)
        bad.sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # dropped already: fine
    bad.until_eof()
    bad.close()
    assert settle_fds(baseline) == set()
    assert proxy.error is None and proxy.thread.is_alive()
    # the good client is untouched: same globals, and its binds still work
    assert globals_ == SHOWN
    good.send(wire.encode_bind(reg, 3, b"wl_shm", 1, good.new_id()))
    good.roundtrip()
    good.close()


# Both parities of the fd limit: with one fd to spare, accept() succeeds
# where the upstream socket() then fails, which once dropped a queued client.
@pytest.mark.parametrize("limit", [24, 25])
def test_out_of_fds_the_proxy_pauses_accepting_and_drops_no_waiting_client(
    tmp: Path, limit: int
) -> None:
    stub = Stub(tmp / "up")
    argv = [sys.executable, "-m", "hakurei.app.wlproxy", "--listen", str(tmp / "proxy")]
    proc = subprocess.Popen(
        ["prlimit", f"--nofile={limit}:{limit}", *argv, "--upstream", str(tmp / "up")],
        stderr=subprocess.PIPE,
        text=True,
    )
    clients: list[Client] = []
    try:
        wait = time.monotonic() + 30
        while not (tmp / "proxy").exists():
            assert proc.poll() is None and time.monotonic() < wait
            time.sleep(0.01)
        assert proc.stderr is not None
        while True:  # 2 fds per client: the limit is reached within a few
            clients.append(Client(tmp / "proxy"))
            if len(clients) < 5:
                clients[-1].roundtrip()
            if len(clients) >= 12:
                break
        line = proc.stderr.readline()
        assert line.startswith("wlproxy: accept: Too many open files: paused"), line
        cpu = cpu_seconds(proc.pid)
        time.sleep(0.5)  # a measuring window: a spinning loop burns it all
        assert cpu_seconds(proc.pid) - cpu < 0.2
        for c in clients[:4]:
            c.close()
        # every client still connected is served: those queued in the backlog
        # once fds are free, and none was taken from it only to be dropped
        for i, c in enumerate(clients[4:], 5):
            assert c.roundtrip(), f"client {i} of {len(clients)} was dropped"
    finally:
        for c in clients:
            c.close()
        proc.kill()
        proc.wait()
        stub.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen-fd", "0", "--upstream", "/x"], "wlproxy: fd 0 is not a socket"),
        (["--listen-fd", "999", "--upstream", "/x"], "wlproxy: fd 999: Bad file descriptor"),
        (["--listen", "/nonexistent/p", "--upstream", "/x"], "wlproxy: --listen /nonexistent/p:"),
        (["--listen", "/tmp/p", "--upstream", "rel"], "wlproxy: --upstream 'rel': not an absolute"),
        (["--listen", "/tmp/p", "--upstream", "/x", "--allow", "a b"], "wlproxy: --allow 'a b':"),
        (["--upstream", "/x"], "wlproxy: one of the arguments --listen-fd --listen is required"),
    ],
)
def test_a_bad_command_line_is_one_line_and_status_125(args: list[str], message: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hakurei.app.wlproxy", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (r.returncode, r.stderr.count("\n")) == (125, 1), r.stderr
    assert r.stderr.startswith(message), r.stderr
