"""The setup record and its wire codec (msgpack, framed, versioned).

The parent resolves everything it can (seccomp presets → BPF, uid < 1 →
overflow id, adopt-wait default) and sends the shim one ``Setup`` record over
the inherited setup pipe.  The shim decodes and validates **all** of it
before it touches the system: a wrong magic, version, length, field type, op
tag or relative path is one ``SetupError`` and exit 125, with nothing
unshared or mounted.  See docs/protocol.md for the byte layout.

Imported by init for every container: only ``os`` and ``msgpack`` at runtime.
"""

from __future__ import annotations

import os

from .errors import HakureiError, SetupError
from .ops import REGISTRY
from .ops.base import ABS, BOOL, INT, STR, Op, check_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAGIC = b"HKRI"
VERSION = 1
HEADER_LEN = 10  # magic, u16 version, u32 body length (big endian)
#: Largest body accepted; bounds what a Place op can carry and what garbage can allocate.
MAX_BODY = 64 << 20

STR_LIST = "str[]"
INT_LIST = "int[]"
FLOAT = "float"
BYTES_OPT = "bytes?"

#: Every field of the record, in wire order, with its kind.
FIELDS: tuple[tuple[str, str], ...] = (
    ("path", ABS),
    ("args", STR_LIST),
    ("env", STR_LIST),
    ("dir", ABS),
    ("uid", INT),
    ("gid", INT),
    ("host_uid", INT),
    ("host_gid", INT),
    ("hostname", STR),
    ("parent_perm", INT),
    ("retain_session", BOOL),
    ("host_net", BOOL),
    ("privileged", BOOL),
    ("forward_cancel", BOOL),
    ("host_abstract", BOOL),
    ("adopt_wait_delay", FLOAT),
    ("bpf", BYTES_OPT),
    ("nrules", INT),
    ("files", INT),
    ("parent_pid", INT),
    ("verbose", BOOL),
    ("fetch", INT_LIST),
)


class Setup:
    """Everything init needs, already resolved by the parent."""

    __slots__ = (*(n for n, _ in FIELDS), "ops")

    path: str
    args: list[str]
    env: list[str]
    dir: str
    uid: int
    gid: int
    host_uid: int
    host_gid: int
    hostname: str
    parent_perm: int
    retain_session: bool
    host_net: bool
    privileged: bool
    forward_cancel: bool
    host_abstract: bool
    adopt_wait_delay: float
    bpf: bytes | None
    nrules: int
    files: int
    parent_pid: int
    verbose: bool
    fetch: list[int]
    ops: list[Op]

    def __init__(self, ops: list[Op], **fields: Any) -> None:
        fields.setdefault("fetch", [])  # only a warm start fills it in
        self.ops = list(ops)
        for name, _ in FIELDS:
            setattr(self, name, fields[name])
        unknown = set(fields) - {n for n, _ in FIELDS}
        if unknown:
            raise TypeError(f"unknown setup field {sorted(unknown)[0]}")
        self.validate()

    def validate(self) -> None:
        for name, kind in FIELDS:
            _check(name, kind, getattr(self, name))
        if not self.args:
            raise SetupError("args must name at least argv[0]")
        if self.files < 0 or self.files > 1024:
            raise SetupError(f"bad extra file count {self.files}")
        if not 0 <= self.parent_perm <= 0o7777:
            raise SetupError(f"bad parent_perm {self.parent_perm:#o}")
        if self.adopt_wait_delay < 0:
            raise SetupError("adopt_wait_delay must not be negative")
        if self.bpf is not None and (not self.bpf or len(self.bpf) % 8):
            raise SetupError("seccomp program length is not a multiple of 8")
        if self.fetch:
            if len(self.fetch) != 3 + self.files or not self.parent_pid:
                raise SetupError("fetch must list stdio and every extra file of a watched parent")
            if min(self.fetch[:3]) < -1 or min(self.fetch[3:], default=0) < 0:
                raise SetupError("fetch lists a negative fd")
        for e in self.env:
            if "=" not in e:
                raise SetupError(f"environment entry {e!r} has no '='")
        for i, op in enumerate(self.ops):
            if not isinstance(op, Op):
                raise SetupError(f"invalid op at index {i}")


def _check(name: str, kind: str, value: object) -> None:
    if kind == STR_LIST:
        if not isinstance(value, list) or not all(
            isinstance(v, str) and "\0" not in v for v in value
        ):
            raise SetupError(f"{name} must be a list of strings")
    elif kind == INT_LIST:
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SetupError(f"{name} must be a list of integers")
    elif kind == FLOAT:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SetupError(f"{name} must be a number")
    elif kind == BYTES_OPT:
        if value is not None and not isinstance(value, bytes):
            raise SetupError(f"{name} must be bytes or nil")
    else:
        try:
            check_field("setup", name, kind, value)
        except HakureiError as e:
            raise SetupError(str(e).removeprefix("setup: ")) from None


def encode(setup: Setup) -> bytes:
    """The framed bytes the parent writes to the setup pipe."""
    body: dict[str, Any] = {name: getattr(setup, name) for name, _ in FIELDS}
    body["version"] = VERSION
    body["ops"] = [[op.TAG, op.to_wire()] for op in setup.ops]
    import msgpack  # here, not at the top: the CLI is its own shim and never encodes

    raw: bytes = msgpack.packb(body, use_bin_type=True)
    if len(raw) > MAX_BODY:
        raise SetupError(f"setup record of {len(raw)} bytes exceeds {MAX_BODY}")
    return MAGIC + VERSION.to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw


def decode(frame: bytes) -> Setup:
    """Parse and validate one framed record; any defect is a SetupError."""
    if len(frame) < HEADER_LEN:
        raise SetupError(f"truncated header ({len(frame)} of {HEADER_LEN} bytes)")
    _check_header(frame[:HEADER_LEN])
    length = int.from_bytes(frame[6:10], "big")
    body = frame[HEADER_LEN:]
    if len(body) != length:
        raise SetupError(f"body is {len(body)} bytes, header says {length}")
    return _decode_body(body)


def _check_header(header: bytes) -> int:
    if header[:4] != MAGIC:
        raise SetupError("bad magic: not a hakurei setup stream")
    version = int.from_bytes(header[4:6], "big")
    if version != VERSION:
        raise SetupError(f"unsupported protocol version {version} (want {VERSION})")
    length = int.from_bytes(header[6:10], "big")
    if length > MAX_BODY:
        raise SetupError(f"body of {length} bytes exceeds the {MAX_BODY}-byte limit")
    return length


def _decode_body(body: bytes) -> Setup:
    import msgpack

    try:
        rec = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as e:  # msgpack raises several unrelated types for bad input
        raise SetupError(f"malformed msgpack body: {type(e).__name__}") from None
    if not isinstance(rec, dict):
        raise SetupError("record is not a map")
    if rec.get("version") != VERSION:
        raise SetupError(f"record version {rec.get('version')!r} is not {VERSION}")
    names = {n for n, _ in FIELDS} | {"version", "ops"}
    for key in rec:
        if key not in names:
            raise SetupError(f"unknown field {key!r}")
    for name in names:
        if name not in rec:
            raise SetupError(f"missing field {name!r}")
    raw_ops = rec["ops"]
    if not isinstance(raw_ops, list):
        raise SetupError("ops must be a list")
    ops: list[Op] = []
    for i, item in enumerate(raw_ops):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise SetupError(f"op at index {i} is not a [tag, fields] pair")
        cls = REGISTRY.get(item[0])
        if cls is None:
            raise SetupError(f"unknown op type {item[0]!r} at index {i}")
        try:
            ops.append(cls.from_wire(item[1]))
        except HakureiError as e:
            raise SetupError(f"invalid op at index {i}: {e}") from None
    fields = {n: rec[n] for n, _ in FIELDS}
    return Setup(ops, **fields)


def read_setup(fd: int) -> Setup:
    """Read exactly one framed record from ``fd``, then require end of stream."""
    header = _read_exact(fd, HEADER_LEN, "header")
    length = _check_header(header)
    body = _read_exact(fd, length, "body")
    if _read(fd, 1):
        raise SetupError("trailing data after the setup record")
    return _decode_body(body)


def _read(fd: int, n: int) -> bytes:
    try:
        return os.read(fd, n)
    except OSError as e:
        if e.errno == 9:  # EBADF
            raise SetupError("invalid setup descriptor") from None
        raise SetupError(f"cannot read setup pipe: {e.strerror}") from None


def _read_exact(fd: int, n: int, what: str) -> bytes:
    chunks = []
    got = 0
    while got < n:
        chunk = _read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise SetupError(f"truncated setup stream: {what} has {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
