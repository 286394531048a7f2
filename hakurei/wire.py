"""The setup record and its wire codec (msgpack, framed, versioned).

The parent resolves everything it can (seccomp presets → BPF, uid < 1 →
overflow id, adopt-wait default) and sends the shim one ``Setup`` record over
the inherited setup pipe.  The shim decodes and validates **all** of it
before it touches the system: a wrong magic, version, length, field type, op
tag or relative path is one ``SetupError`` and exit 125, with nothing
unshared or mounted.  See docs/protocol.md for the byte layout.

Imported by init for every container: only ``os`` and ``hakurei.msgcodec`` (a
stdlib msgpack decoder) at runtime; the parent encodes with the msgpack library.
"""

from __future__ import annotations

import os

from .errors import HakureiError, ParamsError, SetupError, q
from .ops import REGISTRY
from .ops.base import ABS, ABS_LIST, BOOL, INT, STR, Op, check_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


MAGIC = b"HKRI"
#: 2: ``hostname`` travels as bytes (bin), as the kernel takes it.
#: 3: ``path`` may be a name (looked up in the program's PATH) or relative;
#: ``dir_fallback`` lists working directories to try when ``dir`` fails.
#: 4: ``fetch`` (warm starts' fds taken with pidfd_getfd) is gone with
#: ``hakurei.standby()``; a record carrying it is refused as an unknown field.
#: 5: for ``hakurei bwrap``: ``message_prefix`` (what init's and the shim's error
#: lines start with), ``set_pwd`` (init sets ``PWD`` to the directory it entered), the
#: ``place`` op's ``perm`` and ``writable`` (``--bind-data``), and the process
#: mechanisms: ``caps`` kept, ``as_pid_1``, ``seccomp_programs`` stacked after ours,
#: ``disable_userns`` and ``assert_userns_disabled``, and the caller's ``sync_fd``,
#: ``block_fd``, ``userns_block_fd``, ``userns_fd``, ``userns2_fd`` and ``pidns_fd``
#: (the CLI path only, where the caller is the shim), and ``visible_init``.
VERSION = 5
HEADER_LEN = 10  # magic, u16 version, u32 body length (big endian)
#: Largest body accepted; bounds what a Place op can carry and what garbage can allocate.
MAX_BODY = 64 << 20

STR_LIST = "str[]"
FLOAT = "float"
BYTES_OPT = "bytes?"
BYTES_LIST = "bytes[]"
HOSTNAME = "hostname"  # str in memory (os.fsdecode'd), bin on the wire

#: uid_t and gid_t are 32 bits, and (uid_t)-1 means "no id" to the kernel:
#: a container id is 0 <= id < ID_LIMIT.  A larger int would wrap (2**32 is
#: 0, root inside), so it is an error, never truncated.
ID_LIMIT = (1 << 32) - 1
#: The longest adopt-wait and wait-delay, in seconds (one day).  Anything
#: longer is a typo or an overflow (``inf``, ``1e300``) waiting to happen in
#: init's deadline arithmetic; a caller who needs longer cancels explicitly.
MAX_WAIT = 86400
#: The kernel's HOST_NAME_MAX (``__NEW_UTS_LEN``): sethostname takes 1-64 bytes.
HOSTNAME_MAX = 64
#: Largest pid the kernel can hand out (PID_MAX_LIMIT on 64-bit).
PID_LIMIT = 1 << 22
#: One more than the largest C int: bounds fd numbers and counts that the kernel takes as ints.
FD_LIMIT = 1 << 31
#: The kernel's PATH_MAX, NUL included: longer program or working-directory
#: paths fail only inside the container (ENAMETOOLONG), so they are refused here.
PATH_MAX = 4096
#: The kernel's MAX_ARG_STRLEN (32 pages), NUL included: a longer argument or
#: environment entry makes execve fail with E2BIG.
MAX_ARG_STRLEN = 32 * 4096

#: The kernel's BPF_MAXINSNS: the most instructions one seccomp program may have.
BPF_MAXINSNS = 4096
#: How many raw seccomp programs one container may stack (each is a kernel filter).
MAX_SECCOMP_PROGRAMS = 64
#: Capability bits are 0..63 (the kernel's sets are 64 bits wide).
CAPS_LIMIT = 1 << 64
#: The fields that name fds of the calling process: -1 is none.
CALLER_FDS = ("sync_fd", "block_fd", "userns_block_fd", "userns_fd", "userns2_fd", "pidns_fd")

#: Every field of the record, in wire order, with its kind.
FIELDS: tuple[tuple[str, str], ...] = (
    ("path", STR),
    ("args", STR_LIST),
    ("env", STR_LIST),
    ("dir", ABS),
    ("dir_fallback", ABS_LIST),
    ("uid", INT),
    ("gid", INT),
    ("host_uid", INT),
    ("host_gid", INT),
    ("hostname", HOSTNAME),
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
    ("message_prefix", STR),
    ("set_pwd", BOOL),
    ("caps", INT),
    ("as_pid_1", BOOL),
    ("seccomp_programs", BYTES_LIST),
    ("disable_userns", BOOL),
    ("assert_userns_disabled", BOOL),
    ("sync_fd", INT),
    ("block_fd", INT),
    ("userns_block_fd", INT),
    ("userns_fd", INT),
    ("userns2_fd", INT),
    ("pidns_fd", INT),
    ("visible_init", BOOL),
)

#: Fields a record built in this process may leave out (a decoded one may not).
OPTIONAL: dict[str, object] = {
    "message_prefix": "hakurei: ",
    "set_pwd": False,
    "caps": 0,
    "as_pid_1": False,
    "disable_userns": False,
    "assert_userns_disabled": False,
    "sync_fd": -1,
    "block_fd": -1,
    "userns_block_fd": -1,
    "userns_fd": -1,
    "userns2_fd": -1,
    "pidns_fd": -1,
    "visible_init": False,
}


class Setup:
    """Everything init needs, already resolved by the parent."""

    __slots__ = (*(n for n, _ in FIELDS), "ops")

    path: str
    args: list[str]
    env: list[str]
    dir: str
    dir_fallback: list[str]
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
    message_prefix: str
    set_pwd: bool
    caps: int
    as_pid_1: bool
    seccomp_programs: list[bytes]
    disable_userns: bool
    assert_userns_disabled: bool
    sync_fd: int
    block_fd: int
    userns_block_fd: int
    userns_fd: int
    userns2_fd: int
    pidns_fd: int
    visible_init: bool
    ops: list[Op]

    def __init__(self, ops: list[Op], **fields: Any) -> None:
        fields.setdefault("dir_fallback", [])  # only dir=None or a list of dirs fills it in
        fields.setdefault("seccomp_programs", [])
        for name, default in OPTIONAL.items():
            fields.setdefault(name, default)
        if isinstance(fields.get("hostname"), bytes):
            fields["hostname"] = os.fsdecode(fields["hostname"])
        self.ops = list(ops)
        for name, _ in FIELDS:
            setattr(self, name, fields[name])
        unknown = set(fields) - {n for n, _ in FIELDS}
        if unknown:
            raise TypeError(f"unknown setup field {sorted(unknown)[0]}")
        self.validate()

    def validate(self) -> None:
        """Every check ``Params`` makes, again: a record from elsewhere gets the same answer."""
        for name, kind in FIELDS:
            _check(name, kind, getattr(self, name))
        if not self.args:
            raise SetupError("args must name at least argv[0]")
        try:
            for name in ("uid", "gid", "host_uid", "host_gid"):
                check_id(name, getattr(self, name))
            check_wait("adopt_wait_delay", self.adopt_wait_delay)
            check_command(self.path, self.dir, self.args, self.env, self.dir_fallback)
        except ParamsError as e:
            raise SetupError(str(e)) from None
        if not 0 <= self.parent_pid < PID_LIMIT:
            raise SetupError(f"bad parent pid {_num(self.parent_pid)}")
        if not 0 <= self.nrules < FD_LIMIT:
            raise SetupError(f"bad seccomp rule count {_num(self.nrules)}")
        if self.files < 0 or self.files > 1024:
            raise SetupError(f"bad extra file count {self.files}")
        if len(self.message_prefix) > 64 or not self.message_prefix.isprintable():
            raise SetupError("message_prefix must be at most 64 printable characters")
        if not 0 <= self.parent_perm <= 0o7777:
            raise SetupError(f"bad parent_perm {self.parent_perm:#o}")
        if self.bpf is not None and (not self.bpf or len(self.bpf) % 8):
            raise SetupError("seccomp program length is not a multiple of 8")
        self.validate_process()
        for i, op in enumerate(self.ops):
            if not isinstance(op, Op):
                raise SetupError(f"invalid op at index {i}")

    def validate_process(self) -> None:
        """The bwrap process fields: capability bits, seccomp programs, the caller's fds."""
        if not 0 <= self.caps < CAPS_LIMIT:
            raise SetupError(f"bad capability mask {_num(self.caps)}")
        if len(self.seccomp_programs) > MAX_SECCOMP_PROGRAMS:
            raise SetupError(f"more than {MAX_SECCOMP_PROGRAMS} seccomp programs")
        for program in self.seccomp_programs:
            check_seccomp_program(program, SetupError)
        held: set[int] = set()
        for name in CALLER_FDS:
            fd = getattr(self, name)
            if fd == -1:
                continue
            if not 0 <= fd < FD_LIMIT:
                raise SetupError(f"bad {name} {_num(fd)}")
            if self.parent_pid:
                # Only a caller that is the shim itself has these fds to hand on.
                raise SetupError(f"{name} needs the calling process to be the shim (the CLI)")
            if fd in held:
                raise SetupError(f"{name} {fd} is given for another use as well")
            held.add(fd)
        if self.userns_block_fd != -1 and self.disable_userns:
            raise SetupError("userns_block_fd and disable_userns cannot be combined")
        if self.userns_fd != -1 and (self.userns_block_fd != -1 or self.disable_userns):
            raise SetupError(
                "userns_fd (an existing user namespace) cannot be combined with"
                " userns_block_fd or disable_userns"
            )


def check_seccomp_program(program: object, error: type[HakureiError] = ParamsError) -> None:
    """A raw seccomp program: bytes, 1 to ``BPF_MAXINSNS`` ``struct sock_filter`` of 8 bytes."""
    if not isinstance(program, bytes):
        raise error(f"a seccomp program must be bytes, not {type(program).__name__}")
    if not program or len(program) % 8:
        raise error(f"seccomp program of {len(program)} bytes is not a non-zero multiple of 8")
    if len(program) // 8 > BPF_MAXINSNS:
        raise error(f"seccomp program of {len(program) // 8} instructions exceeds {BPF_MAXINSNS}")


def _check(name: str, kind: str, value: object) -> None:
    if kind == STR_LIST:
        if not isinstance(value, list) or not all(
            isinstance(v, str) and "\0" not in v for v in value
        ):
            raise SetupError(f"{name} must be a list of strings")
    elif kind == FLOAT:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SetupError(f"{name} must be a number")
    elif kind == HOSTNAME:
        if not isinstance(value, str):
            raise SetupError(f"{name} must be a string")
        if value:
            try:
                hostname_bytes(value)
            except ParamsError as e:
                raise SetupError(str(e)) from None
    elif kind == BYTES_LIST:
        if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
            raise SetupError(f"{name} must be a list of bytes")
    elif kind == BYTES_OPT:
        if value is not None and not isinstance(value, bytes):
            raise SetupError(f"{name} must be bytes or nil")
    else:
        try:
            check_field("setup", name, kind, value)
        except HakureiError as e:
            raise SetupError(str(e).removeprefix("setup: ")) from None


def _num(value: int | float) -> str:
    """A number for a message; a 5000-digit int is neither readable nor printable."""
    if isinstance(value, int) and not -(10**30) < value < 10**30:
        return "(a huge number)"
    return repr(value)


def _size(text: str) -> int:
    """Bytes ``text`` takes as a C string (an upper bound for surrogate escapes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def check_id(name: str, value: object) -> None:
    """A uid or gid: an int in ``0 <= id < 2**32 - 1`` (``ParamsError`` otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParamsError(f"{name} must be an integer, not {type(value).__name__}")
    if not 0 <= value < ID_LIMIT:
        raise ParamsError(f"{name} {_num(value)} is out of range (0 to {ID_LIMIT - 1})")


def check_wait(name: str, value: object, *, negative_ok: bool = False) -> None:
    """A delay in seconds: a finite number, at most ``MAX_WAIT``, not negative unless allowed.

    The comparisons also reject NaN (every comparison with it is false) and
    never convert a huge int to float (which would raise OverflowError).
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ParamsError(f"{name} must be a number of seconds, not {type(value).__name__}")
    low = -MAX_WAIT if negative_ok else 0
    if not low <= value <= MAX_WAIT:
        raise ParamsError(f"{name} {_num(value)} is out of range (0 to {MAX_WAIT} seconds, finite)")


def hostname_bytes(value: str | bytes) -> bytes:
    """The bytes sethostname gets: 1-64, no NUL; any other byte is the kernel's business.

    A str is encoded as the OS would (``os.fsencode``): a non-UTF-8 name from
    the command line arrives as surrogate escapes and leaves as its bytes.
    """
    if isinstance(value, str):
        try:
            raw = os.fsencode(value)
        except UnicodeEncodeError:
            raise ParamsError(f"hostname {q(value)} cannot be encoded") from None
    elif isinstance(value, bytes):
        raw = value
    else:
        raise ParamsError(f"hostname must be a string, not {type(value).__name__}")
    if not 1 <= len(raw) <= HOSTNAME_MAX:
        raise ParamsError(f"hostname {q(raw)} is {len(raw)} bytes (want 1 to {HOSTNAME_MAX})")
    if b"\0" in raw:
        raise ParamsError(f"hostname {q(raw)} contains NUL")
    return raw


def check_env_name(name: object) -> None:
    """An environment variable's name: non-empty, no ``=``, no NUL."""
    if not isinstance(name, str):
        raise ParamsError(f"environment variable name must be a string, not {type(name).__name__}")
    if not name or "=" in name or "\0" in name:
        raise ParamsError(f"environment variable name {q(name)} is empty or has '=' or NUL")


def check_env_entry(entry: object) -> None:
    """A ``NAME=VALUE`` entry: a valid name, then a value without NUL."""
    if not isinstance(entry, str):
        raise ParamsError(f"environment entry must be a string, not {type(entry).__name__}")
    name, eq, value = entry.partition("=")
    if not eq:
        raise ParamsError(f"environment entry {q(entry)} has no '='")
    check_env_name(name)
    if "\0" in value:
        raise ParamsError(f"environment variable {q(name)}: value contains NUL")


def check_command(
    path: str, dir: str, args: list[str], env: list[str], dir_fallback: Sequence[str] = ()
) -> None:
    """What execve and chdir would refuse inside the container, refused here instead:
    an empty program path, NUL, a path over PATH_MAX, an argument or environment
    entry over MAX_ARG_STRLEN, a malformed environment entry."""
    if not path:
        raise ParamsError('program path "" is empty (give a path or a name)')
    dirs = [("working directory", d) for d in (dir, *dir_fallback)]
    for what, text in (("program path", path), *dirs):
        if "\0" in text:
            raise ParamsError(f"{what} {q(text)} contains NUL")
        if _size(text) >= PATH_MAX:
            raise ParamsError(f"{what} is {_size(text)} bytes (PATH_MAX is {PATH_MAX})")
    for i, arg in enumerate(args):
        if not isinstance(arg, str) or "\0" in arg:
            what = q(arg) if isinstance(arg, str) else type(arg).__name__
            raise ParamsError(f"argument {i} ({what}) must be a string without NUL")
        if _size(arg) >= MAX_ARG_STRLEN:
            raise ParamsError(f"argument {i} is {_size(arg)} bytes (at most {MAX_ARG_STRLEN - 1})")
    for entry in env:
        check_env_entry(entry)
        if _size(entry) >= MAX_ARG_STRLEN:
            name = q(entry.partition("=")[0])
            limit = MAX_ARG_STRLEN - 1
            raise ParamsError(
                f"environment variable {name} is {_size(entry)} bytes (at most {limit})"
            )


def encode(setup: Setup) -> bytes:
    """The framed bytes the parent writes to the setup pipe."""
    body: dict[str, Any] = {name: getattr(setup, name) for name, _ in FIELDS}
    body["hostname"] = os.fsencode(setup.hostname)
    body["version"] = VERSION
    body["ops"] = [[op.TAG, op.to_wire()] for op in setup.ops]
    import msgpack  # here, not at the top: the CLI is its own shim and never encodes

    try:
        raw: bytes = msgpack.packb(body, use_bin_type=True)
    except UnicodeEncodeError as e:
        # Text travels as UTF-8; the CLI (its own shim) passes any bytes, the
        # library only text.  Name the value rather than show a traceback.
        raise SetupError(f"{q(e.object[e.start : e.end])} in a setup value is not UTF-8") from None
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
    # Not the msgpack library: its import is ~8 ms of every cold start (msgcodec.py).
    from .msgcodec import UnpackError, unpackb

    try:
        rec = unpackb(body)
    except UnpackError as e:
        raise SetupError(f"malformed msgpack body: {e}") from None
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
    if not isinstance(fields["hostname"], bytes):
        raise SetupError("hostname must be bytes")
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
