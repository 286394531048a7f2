"""``hakurei bwrap``'s command line as read so far, and bubblewrap's syntax for its values.

:class:`Spec` collects what the options say (ops in order, settings, the
pending ``--perms``/``--size``); the readers here turn one value into what
bubblewrap's parser would (``strtoul(…, 8)`` modes, ``strtoull(…, 0)`` sizes,
fds) or fail in bubblewrap's words.  hakurei/cli/bwrap_options.py has the
options; hakurei/cli/bwrap.py builds the container.
"""

from __future__ import annotations

import os

from ..errors import safe_line
from ..ops import Ops
from ._table import UsageError, read_fd

#: What ``--version`` prints: the bubblewrap release whose command line this is.
BWRAP_VERSION = "0.11.1"
#: Largest ``--size``: bubblewrap's MAX_TMPFS_BYTES (SIZE_MAX / 2).
MAX_TMPFS_BYTES = (1 << 63) - 1
#: Largest input read from a ``--file``/``--bind-data``/``--seccomp`` fd.
DATA_MAX = 16 << 20


class BwrapError(UsageError):
    """A bad command line or a failed setup, said as bubblewrap says it: ``bwrap: ...``, exit 1."""


class Spec:
    """The command line as read so far: ops in order, settings, and what the next op takes."""

    def __init__(self, argv0: str) -> None:
        self.argv0 = argv0
        self.ops = Ops()
        self.perms: int | None = None
        self.size: int | None = None
        self.overlay_src: list[str] = []
        #: environment edits in order: ("clear",), ("set", VAR, VALUE), ("unset", VAR)
        self.env: list[tuple[str, ...]] = []
        self.flags: set[str] = set()
        self.values: dict[str, str] = {}
        self.unshare_net = False
        self.unshare_uts = False
        self.unshare_pid = False
        self.unshare_user = False
        self.level_prefix = False
        self.hakurei_status = False
        self.program = ""
        self.args: list[str] = []
        #: ``--lock-file`` paths: locked by init after every other op
        self.locks: list[str] = []
        #: our close-on-exec copies of ``--bind-fd`` fds, kept for init (``shim.become(hold=)``)
        self.hold: list[int] = []
        #: capabilities the program keeps (None until a --cap-add/--cap-drop: the default)
        self.caps: int | None = None
        #: raw seccomp programs from --add-seccomp-fd, in order (--seccomp's is read at the end)
        self.seccomp_programs: list[bytes] = []
        #: the caller's fds the sandbox uses: --sync-fd, --block-fd, --userns..., by Params name
        self.fds: dict[str, int] = {}


# -- messages --------------------------------------------------------------------------


def message_line(spec: Spec | None, level: int, msg: str) -> bytes:
    prefix = f"<{level}>" if spec is not None and spec.level_prefix else ""
    return f"{prefix}bwrap: {safe_line(msg)}\n".encode(errors="replace")


def warn(spec: Spec, msg: str) -> None:
    """A warning (``<4>`` with ``--level-prefix``), as bubblewrap's ``warn``."""
    try:
        os.write(2, message_line(spec, 4, msg))
    except OSError:
        pass


# -- values ----------------------------------------------------------------------------


def octal(text: str, what: str) -> int:
    """An octal mode as strtoul(…, 8) reads it, at most 07777."""
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not text or text.strip() != text or text[0] in "+-" or not 0 <= value <= 0o7777:
        raise BwrapError(f"{what} takes an octal argument <= 07777")
    return value


def size_value(text: str) -> int:
    """A ``--size`` as strtoull(…, 0) reads it: decimal, 0x hex or 0 octal; > 0; not too big."""
    bad = BwrapError("--size takes a non-zero number of bytes")
    if not text or not text[0].isdigit():
        raise bad
    try:
        if text[:2] in ("0x", "0X"):
            value = int(text[2:], 16)
        elif text.startswith("0") and len(text) > 1:
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        raise bad from None
    if value == 0 or value >= 1 << 64:  # ERANGE above ULLONG_MAX
        raise bad
    if value > MAX_TMPFS_BYTES:
        raise BwrapError(f"--size (for tmpfs) is limited to {MAX_TMPFS_BYTES}")
    return value


def fd_number(text: str, name: str) -> int:
    """An fd argument as bubblewrap's strtol reads it: an int, not negative."""
    try:
        fd = int(text, 10)
    except ValueError:
        raise BwrapError(f"Invalid fd: {text}") from None
    if fd < 0 or fd >= 1 << 20:
        raise BwrapError(f"Invalid fd: {text}")
    return fd


def read_caller_fd(text: str, name: str, limit: int = DATA_MAX) -> bytes:
    """Everything on an fd the caller gave (``--file``, ``--args``), then the fd closed."""
    fd_number(text, name)  # bubblewrap's "Invalid fd" first
    return read_fd(name, text, limit)


def host_path(path: str) -> str:
    """A source path on the host, made absolute against our working directory as bwrap's is."""
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)


def dest_path(path: str) -> str:
    """A destination inside the new root: bubblewrap reads a relative one from the root."""
    return path if path.startswith("/") else "/" + path
