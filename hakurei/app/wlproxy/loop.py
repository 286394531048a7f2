"""The proxy's event loop: one thread, one selector, two sockets per client.

Each accepted client gets its own new connection to the configured upstream
socket (the only place the proxy ever connects to) and a :class:`Pair` of
:class:`End` s.  Bytes read from one end are framed into whole messages,
shown to the pair's :class:`~.filter.Filter`, and appended to the other end's
output buffer; a partial message waits in the input buffer for the rest.

File descriptors travel with bytes.  libwayland queues the fds it receives
and hands them to messages in order as it decodes them, so an fd may arrive
early but never after the message that uses it.  The proxy therefore queues
received fds on the other end (FIFO) and attaches them to the very next bytes
it sends there, at most 28 per ``sendmsg`` (libwayland's MAX_FDS_OUT: its
receive buffer holds no more, the rest would be truncated).  While more than
28 are queued it sends 4 bytes at a time, so no message (>= 8 bytes, and
libwayland allows at most 20 args) can complete before its fds are across.

Bounds, so one client cannot hurt another or exhaust the proxy:

- a message is 8..4096 bytes (libwayland's own limit); anything else, a
  malformed registry message, more than 28 fds in one read, a truncated fd
  list, or more than ``MAX_FDS_QUEUED`` fds waiting: that client (and its
  upstream connection) is dropped, nobody else;
- output waiting for a slow peer is capped at ``HIGH_WATER`` bytes, above
  which the proxy stops reading the *other* side (backpressure: the kernel
  buffers, and in the end the sender's own writes block or the compositor
  drops its slow client, exactly as without a proxy);
- at most ``MAX_CLIENTS`` connections; more are closed on accept;
- out of fds (queued fds count), accepting pauses until a client leaves
  rather than spinning on a listener that stays readable; a client is
  taken from the backlog only once its upstream socket exists, so none is
  accepted just to be dropped.

Hanging up: when one side closes, what was already read from it is still
delivered to the other side (a compositor's ``wl_display.error`` arrives
before the hang-up), for at most ``DRAIN_SECONDS``, then both are closed.
"""

from __future__ import annotations

import array
import os
import select
import socket
import sys
import time

from . import wire
from .filter import Filter, Refusal

#: Per sendmsg and per recvmsg: libwayland's MAX_FDS_OUT.
MAX_FDS_PER_MSG = 28
#: Received but not yet forwarded, per direction of one client.
MAX_FDS_QUEUED = 256
#: Output waiting for one end before the other end is no longer read.
HIGH_WATER = 256 * 1024
#: One read; a few messages at a time keeps latency low and copies small.
RECV_SIZE = 64 * 1024
#: Room for SCM_MAX_FD (253) fds, so an over-long list is seen, not truncated.
_CMSG_SPACE = socket.CMSG_SPACE(253 * 4)
MAX_CLIENTS = 256
DRAIN_SECONDS = 5.0
#: Accepting paused for want of fds resumes when a client leaves, or after this.
PAUSE_SECONDS = 1.0

# Plain ints: the enum versions in socket/select cost a call per use on the hot path.
_IN, _OUT = int(select.EPOLLIN), int(select.EPOLLOUT)
_ERR = int(select.EPOLLERR | select.EPOLLHUP)
_CTRUNC = int(socket.MSG_CTRUNC)
_CLOEXEC = int(socket.MSG_CMSG_CLOEXEC)
_SOL_SOCKET, _SCM_RIGHTS = int(socket.SOL_SOCKET), int(socket.SCM_RIGHTS)
_STREAM_CLOEXEC = socket.SOCK_STREAM | socket.SOCK_CLOEXEC
_HEADER_UNPACK = wire.HEADER.unpack_from
_MIN, _MAX, _DISPLAY = wire.MIN_SIZE, wire.MAX_SIZE, wire.DISPLAY_ID


class Dropped(Exception):
    """This client's pair must go (the reason is the message)."""


class End:
    """One socket of a pair, with what is waiting to be sent to it."""

    __slots__ = ("closed", "fd", "fds", "inbuf", "mask", "out", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.out = bytearray()
        self.fds: list[int] = []
        self.mask = 0
        self.closed = False


class Pair:
    """A client and its own upstream connection."""

    __slots__ = ("client", "deadline", "draining", "filter", "number", "upstream")

    def __init__(self, number: int, client: End, upstream: End, allow: frozenset[bytes]) -> None:
        self.number = number
        self.client = client
        self.upstream = upstream
        self.filter = Filter(allow)
        self.draining: End | None = None
        self.deadline = 0.0


class Proxy:
    """Accepts on ``listener`` and proxies each client to ``upstream``, filtered."""

    def __init__(
        self,
        listener: socket.socket,
        upstream: str,
        allow: frozenset[bytes],
        log: bool = True,
    ) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.upstream = upstream
        self.allow = allow
        self.log = log
        # epoll itself, not selectors: its per-event key objects and enum
        # masks were a measurable share of the proxy's per-message cost.
        self.ep = select.epoll()
        self.ep.register(listener.fileno(), _IN)
        self.listen_fd = listener.fileno()
        self.ends: dict[int, tuple[Pair, End]] = {}
        self.pairs: set[Pair] = set()
        self.draining: set[Pair] = set()
        self.accepting = True
        self.resume_at = 0.0
        self.accepted = 0
        #: The next client's upstream socket, made before that client is accepted.
        self.spare: socket.socket | None = None
        #: Every read lands here first (see :meth:`_read`).
        self._rbuf = bytearray(RECV_SIZE)
        self._rview = memoryview(self._rbuf)
        self._rbufs = [self._rview]

    # --- the loop ---------------------------------------------------------------

    def serve_forever(self) -> None:
        while True:
            self.poll(None)

    def poll(self, timeout: float | None) -> None:
        """Handle events for up to ``timeout`` s (``None``: until one, or a drain deadline)."""
        retry = not self.accepting and not self.pairs
        if self.draining or retry:
            deadlines = [p.deadline for p in self.draining]
            if retry:
                deadlines.append(self.resume_at)
            wait = max(0.0, min(deadlines) - time.monotonic())
            timeout = wait if timeout is None else min(timeout, wait)
        for fd, mask in self.ep.poll(-1 if timeout is None else timeout):
            if fd == self.listen_fd:
                self._accept()
                continue
            # None or a closed end: closed by an earlier event of this batch
            # (a reused fd number at worst gets a spurious, harmless attempt)
            got = self.ends.get(fd)
            if got is None or got[1].closed:
                continue
            pair, end = got
            try:
                if mask & (_OUT | _ERR):
                    self._flush(end)
                if mask & (_IN | _ERR) and not end.closed:
                    self._read(pair, end)
            except Dropped as e:
                self._say(pair, str(e))
                self._close_pair(pair)
                continue
            self._settle(pair)
        if not self.accepting and not self.pairs and time.monotonic() >= self.resume_at:
            self._resume()
        if not self.draining:
            return
        now = time.monotonic()
        for pair in [p for p in self.draining if p.deadline <= now]:
            self._say(pair, f"peer did not take its last data within {DRAIN_SECONDS} s")
            self._close_pair(pair)

    def close(self) -> None:
        for pair in list(self.pairs):
            self._close_pair(pair)
        if self.spare is not None:
            self.spare.close()
        self.ep.close()

    # --- accepting --------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            # The upstream socket first: a client taken from the backlog
            # with no fd left for its upstream would have to be dropped,
            # where waiting in the backlog it is served once fds are free.
            if self.spare is None:
                try:
                    self.spare = socket.socket(socket.AF_UNIX, _STREAM_CLOEXEC)
                except OSError as e:
                    self._pause(e)
                    return
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._pause(e)
                return
            self.accepted += 1
            if len(self.pairs) >= MAX_CLIENTS:
                print(f"wlproxy: more than {MAX_CLIENTS} clients: refused one", file=sys.stderr)
                sock.close()
                continue
            up, self.spare = self.spare, None
            up.setblocking(False)
            try:
                up.connect(self.upstream)
            except OSError as e:  # includes EAGAIN: a full backlog is not waited for
                print(f"wlproxy: connect to {self.upstream}: {e.strerror}", file=sys.stderr)
                up.close()
                sock.close()
                continue
            sock.setblocking(False)
            pair = Pair(self.accepted, End(sock), End(up), self.allow)
            self.pairs.add(pair)
            self._settle(pair)

    def _pause(self, e: OSError) -> None:
        """Out of fds (EMFILE and friends): stop accepting until a client leaves.

        The listener stays readable, so polling it again would spin.  With
        no client to leave (an error not about fds), retry after a second.
        """
        print(f"wlproxy: accept: {e.strerror}: paused", file=sys.stderr)
        self.ep.modify(self.listen_fd, 0)
        self.accepting = False
        self.resume_at = time.monotonic() + PAUSE_SECONDS

    def _resume(self) -> None:
        self.ep.modify(self.listen_fd, _IN)
        self.accepting = True

    # --- reading ----------------------------------------------------------------

    def _read(self, pair: Pair, src: End) -> None:
        from_client = src is pair.client
        dst = pair.upstream if from_client else pair.client
        try:
            # into the one preallocated buffer: no 64 KiB object per read
            n, anc, flags, _ = src.sock.recvmsg_into(self._rbufs, _CMSG_SPACE, _CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:  # closed with unread data: an ordinary hang-up
            self._hang_up(pair, src, dst)
            return
        except OSError as e:
            raise Dropped(f"read from {_side(from_client)}: {e.strerror}") from None
        if anc or flags & _CTRUNC:
            fds = _take_fds(anc)
            if flags & _CTRUNC:
                _close_all(fds)
                raise Dropped(f"{_side(from_client)} sent more fds than fit in one message")
            if len(fds) > MAX_FDS_PER_MSG:
                _close_all(fds)
                raise Dropped(f"{_side(from_client)} sent {len(fds)} fds in one message")
            dst.fds.extend(fds)
            if len(dst.fds) > MAX_FDS_QUEUED:
                raise Dropped(f"{_side(from_client)} queued more than {MAX_FDS_QUEUED} fds")
        if not n:
            self._hang_up(pair, src, dst)
            return
        # The common case (nothing left over from the last read) frames the
        # receive buffer itself; only a partial message is copied to inbuf.
        inbuf = src.inbuf
        data = self._rview[:n]
        buf: bytearray | memoryview
        if inbuf:
            inbuf += data
            buf = inbuf
        else:
            buf = data
        try:
            pos = self._frame(pair, buf, dst, from_client)
        except wire.WireError as e:
            raise Dropped(f"{_side(from_client)}: {e}") from None
        except Refusal as e:
            self._refuse(pair, e)
            return
        finally:
            data.release()  # the buffer is reused by the next read
        if buf is inbuf:
            del inbuf[:pos]
        elif pos < n:
            inbuf += self._rbuf[pos:n]
        if dst.out:
            self._flush(dst)

    def _frame(self, pair: Pair, buf: bytearray | memoryview, dst: End, from_client: bool) -> int:
        """Move every whole message of ``buf`` to ``dst.out``, through the filter.

        Returns how many bytes were consumed (whole messages); the rest is a
        partial message that waits for more.
        """
        n = len(buf)
        pos = run = 0
        filt = pair.filter
        registries = filt.registries
        unpack = _HEADER_UNPACK
        try:
            while n - pos >= _MIN:
                # wire.header, inlined: a call per message was a visible share of the loop
                obj, word = unpack(buf, pos)
                size = word >> 16
                if size < _MIN or size > _MAX or size & 3:
                    wire.header(buf, pos)  # raises its WireError
                if n - pos < size:
                    break
                if from_client:
                    if obj == _DISPLAY or obj in registries:
                        filt.from_client(obj, word & 0xFFFF, bytes(buf[pos : pos + size]))
                elif obj in registries and not filt.from_server(
                    obj, word & 0xFFFF, bytes(buf[pos : pos + size])
                ):
                    dst.out += buf[run:pos]
                    run = pos + size
                pos += size
        except Refusal:
            dst.out += buf[run:pos]  # what came before the bind still goes
            raise
        dst.out += buf[run:pos]
        return pos

    # --- writing ----------------------------------------------------------------

    def _flush(self, end: End) -> None:
        """Send as much of ``end.out`` (with its fds) as the socket takes now."""
        out = end.out
        while out:
            if not end.fds:
                # no fds to attach: a plain send, without slicing what fits in one
                try:
                    sent = end.sock.send(out if len(out) <= RECV_SIZE else out[:RECV_SIZE])
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    raise Dropped(f"write: {e.strerror}") from None
                del out[:sent]
                continue
            fds = end.fds[:MAX_FDS_PER_MSG]
            limit = 4 if len(end.fds) > MAX_FDS_PER_MSG else RECV_SIZE
            anc = [(_SOL_SOCKET, _SCM_RIGHTS, array.array("i", fds).tobytes())]
            try:
                sent = end.sock.sendmsg([end.out[:limit]], anc if fds else [])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                raise Dropped(f"write: {e.strerror}") from None
            _close_all(fds)  # the peer has its own copies now
            del end.fds[: len(fds)]
            del end.out[:sent]

    # --- ending -----------------------------------------------------------------

    def _refuse(self, pair: Pair, refusal: Refusal) -> None:
        self._say(pair, str(refusal))
        self._close_end(pair.upstream)
        pair.client.out += refusal.error_message()
        self._drain(pair, pair.client)

    def _hang_up(self, pair: Pair, gone: End, other: End) -> None:
        self._close_end(gone)
        self._drain(pair, other)

    def _drain(self, pair: Pair, end: End) -> None:
        """Deliver what ``end`` still has queued, read nothing more, then close the pair."""
        pair.draining = end
        pair.deadline = time.monotonic() + DRAIN_SECONDS
        self.draining.add(pair)
        try:
            self._flush(end)
        except Dropped:
            self._close_pair(pair)

    def _settle(self, pair: Pair) -> None:
        """Register each end for what it can do now; finish a drained pair."""
        if pair not in self.pairs:
            return
        if pair.draining is not None:
            end = pair.draining
            if not end.out or end.closed:
                self._close_pair(pair)
            else:
                self._want(pair, end, _OUT)
            return
        client, upstream = pair.client, pair.upstream
        # Usually nothing changes (a message in, the same message out at once):
        # compare here and skip the calls.
        mask = (_OUT if client.out else 0) | (_IN if len(upstream.out) < HIGH_WATER else 0)
        if mask != client.mask:
            self._want(pair, client, mask)
        mask = (_OUT if upstream.out else 0) | (_IN if len(client.out) < HIGH_WATER else 0)
        if mask != upstream.mask:
            self._want(pair, upstream, mask)

    def _want(self, pair: Pair, end: End, mask: int) -> None:
        if mask == end.mask or end.closed:
            return
        if end.mask == 0:
            self.ep.register(end.fd, mask)
            self.ends[end.fd] = (pair, end)
        elif mask == 0:
            self.ep.unregister(end.fd)
            del self.ends[end.fd]
        else:
            self.ep.modify(end.fd, mask)
        end.mask = mask

    def _close_end(self, end: End) -> None:
        if end.closed:
            return
        if end.mask:
            self.ep.unregister(end.fd)
            del self.ends[end.fd]
            end.mask = 0
        end.closed = True
        end.sock.close()
        _close_all(end.fds)
        end.fds.clear()
        end.out.clear()
        end.inbuf.clear()

    def _close_pair(self, pair: Pair) -> None:
        self._close_end(pair.client)
        self._close_end(pair.upstream)
        self.pairs.discard(pair)
        self.draining.discard(pair)
        if not self.accepting:
            self._resume()

    def _say(self, pair: Pair, text: str) -> None:
        if self.log:
            print(f"wlproxy: client {pair.number}: {text}", file=sys.stderr)


def _side(from_client: bool) -> str:
    return "client" if from_client else "compositor"


def _take_fds(anc: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in anc:
        if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % a.itemsize])
            fds.extend(a)
    return fds


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
