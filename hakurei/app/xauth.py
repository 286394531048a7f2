"""X authorizations: the Xauthority file format and the SECURITY requests that mint cookies.

Pure encoding and decoding, no I/O of its own: ``host.py`` owns the socket and
the files, so unit tests check every byte here without an X server.

**Xauthority files** (libXau's format): a sequence of entries, each

    CARD16 family (big-endian)
    CARD16 length, address    (the hostname for FamilyLocal)
    CARD16 length, number     (the display number in ASCII decimal)
    CARD16 length, name       ("MIT-MAGIC-COOKIE-1")
    CARD16 length, data       (the cookie, 16 bytes)

libXau stops at the first entry it cannot read whole; so does ``parse``.

Which entry a client uses (``best``) follows libXau's ``XauGetBestAuthByAddr``
as libxcb calls it for a unix socket: family FamilyLocal with the address
being the client's hostname, or FamilyWild (any address); the display number
equal or empty; the first match in file order wins.  The container's hostname
differs from the host's, so the cookie the launcher writes for the app is a
**FamilyWild** entry: it matches whatever the app's hostname is.

**The SECURITY extension** (X11R6.4 "Security Extension Specification"): a
trusted client asks the server to generate an authorization
(``SecurityGenerateAuthorization``) whose clients are *untrusted*: they cannot
see or touch other clients' windows, grab the keyboard, read other clients'
properties or selections, and see only a few extensions.  The server answers
with an authorization id and the cookie; ``SecurityRevokeAuthorization`` with
that id deletes the authorization and disconnects every client using it.

X11 requests here are little-endian (the setup's byte-order byte says so).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FAMILY_INTERNET = 0
FAMILY_LOCAL = 256
FAMILY_WILD = 65535
MIT_MAGIC_COOKIE = b"MIT-MAGIC-COOKIE-1"

#: A user's Xauthority file larger than this is refused (a real one is a few hundred bytes).
MAX_FILE = 1 << 20


class XauthError(Exception):
    """An Xauthority file or an X server reply that cannot be used; one line."""


# --- Xauthority files ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One Xauthority entry (fields as libXau's ``Xauth``)."""

    family: int
    address: bytes
    number: bytes
    name: bytes
    data: bytes


def parse(data: bytes) -> list[Entry]:
    """The entries of an Xauthority file; a torn last entry is ignored, as libXau does."""
    entries: list[Entry] = []
    pos = 0
    while pos + 2 <= len(data):
        (family,) = struct.unpack_from(">H", data, pos)
        fields: list[bytes] = []
        at = pos + 2
        for _ in range(4):
            if at + 2 > len(data):
                return entries
            (n,) = struct.unpack_from(">H", data, at)
            if at + 2 + n > len(data):
                return entries
            fields.append(data[at + 2 : at + 2 + n])
            at += 2 + n
        entries.append(Entry(family, *fields))
        pos = at
    return entries


def dump(entries: list[Entry]) -> bytes:
    """The bytes of an Xauthority file holding ``entries``."""
    out = bytearray()
    for e in entries:
        out += struct.pack(">H", e.family)
        for field in (e.address, e.number, e.name, e.data):
            if len(field) > 0xFFFF:
                raise XauthError("an Xauthority field is longer than 65535 bytes")
            out += struct.pack(">H", len(field)) + field
    return bytes(out)


def best(entries: list[Entry], display: int, hostname: bytes) -> Entry | None:
    """The MIT-MAGIC-COOKIE-1 entry a local client of ``:display`` on ``hostname`` would use."""
    number = str(display).encode()
    for e in entries:
        if e.name != MIT_MAGIC_COOKIE:
            continue
        if e.family != FAMILY_WILD and not (e.family == FAMILY_LOCAL and e.address == hostname):
            continue
        if e.number and e.number != number:
            continue
        return e
    return None


def wild(display: int, data: bytes) -> Entry:
    """A FamilyWild MIT-MAGIC-COOKIE-1 entry for ``:display``: valid under any hostname."""
    return Entry(FAMILY_WILD, b"", str(display).encode(), MIT_MAGIC_COOKIE, data)


# --- the X11 wire protocol: just enough to mint and revoke an authorization -----------

QUERY_EXTENSION = 98
GET_INPUT_FOCUS = 43
SECURITY = b"SECURITY"
SECURITY_GENERATE = 1
SECURITY_REVOKE = 2
#: SecurityGenerateAuthorization value-mask bits (in the order their values follow)
TIMEOUT = 0x1
TRUST_LEVEL = 0x2
TRUSTED, UNTRUSTED = 0, 1
#: The extension's first error: SecurityBadAuthorization (an unknown authorization id)
BAD_AUTHORIZATION = 0


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def setup_request(auth_name: bytes, auth_data: bytes) -> bytes:
    """The connection setup a client sends first: little-endian, protocol 11.0, its cookie."""
    head = struct.pack("<BxHHHHxx", ord("l"), 11, 0, len(auth_name), len(auth_data))
    return head + _pad(auth_name) + _pad(auth_data)


def setup_reply_length(head: bytes) -> int:
    """How many more bytes follow the 8-byte head of the server's setup reply."""
    (words,) = struct.unpack_from("<H", head, 6)
    return 4 * int(words)


def setup_refusal(head: bytes, rest: bytes) -> str | None:
    """None if the server accepted the connection, else its reason (printable, one line)."""
    status = head[0]
    if status == 1:
        return None
    # 0 is Failed (head[1] is the reason's length); 2, Authenticate, asks for a
    # protocol we do not speak, with a padded reason
    reason = rest[: head[1]] if status == 0 else rest.rstrip(b"\0")
    text = reason.decode("ascii", "replace").strip()
    return "".join(c if c.isprintable() else "?" for c in text) or f"status {status}"


def query_extension(name: bytes) -> bytes:
    """QueryExtension: is ``name`` there, and under which major opcode."""
    return struct.pack("<BxHHxx", QUERY_EXTENSION, 2 + (len(name) + 3) // 4, len(name)) + _pad(name)


def query_extension_reply(reply: bytes) -> tuple[bool, int, int]:
    """(present, major opcode, first error) from a QueryExtension reply."""
    present, major, _first_event, first_error = struct.unpack_from("<BBBB", reply, 8)
    return bool(present), major, first_error


def generate_authorization(major: int, trust: int, timeout: int) -> bytes:
    """SecurityGenerateAuthorization for an MIT-MAGIC-COOKIE-1 the server makes up.

    The authorization data is left empty: the server generates the cookie and
    returns it (it would only mix data we sent into its own random bytes).
    ``timeout`` is how many seconds the authorization outlives its last client;
    0 means it lives until revoked or the server exits.
    """
    name = _pad(MIT_MAGIC_COOKIE)
    words = 3 + len(name) // 4 + 2
    head = struct.pack(
        "<BBHHHI", major, SECURITY_GENERATE, words, len(MIT_MAGIC_COOKIE), 0, TIMEOUT | TRUST_LEVEL
    )
    return head + name + struct.pack("<II", timeout, trust)


def generate_authorization_reply(reply: bytes) -> tuple[int, bytes]:
    """(authorization id, cookie) from a SecurityGenerateAuthorization reply."""
    auth_id, n = struct.unpack_from("<IH", reply, 8)
    data = reply[32 : 32 + n]
    if len(data) != n or not 0 < auth_id < 1 << 32:
        raise XauthError("the X server's SecurityGenerateAuthorization reply is malformed")
    return auth_id, data


def revoke_authorization(major: int, auth_id: int) -> bytes:
    """SecurityRevokeAuthorization: delete the authorization, disconnecting its clients."""
    return struct.pack("<BBHI", major, SECURITY_REVOKE, 2, auth_id)


def get_input_focus() -> bytes:
    """A request with a reply, sent after one without: its reply says the one before is done."""
    return struct.pack("<BxH", GET_INPUT_FOCUS, 1)


def packet_length(head: bytes) -> int:
    """Bytes after the first 32 of a server packet (only replies carry more)."""
    if head[0] != 1:
        return 0  # an error or an event: 32 bytes
    (words,) = struct.unpack_from("<I", head, 4)
    return 4 * int(words)


def packet_kind(packet: bytes) -> tuple[str, int, int]:
    """("reply" | "error" | "event", sequence number, error code or 0)."""
    (sequence,) = struct.unpack_from("<H", packet, 2)
    if packet[0] == 1:
        return "reply", sequence, 0
    if packet[0] == 0:
        return "error", sequence, packet[1]
    return "event", sequence, 0
