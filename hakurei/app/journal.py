"""The undo journal: what a launcher instance changed on the host, written down first.

A monitor can die at any instruction (SIGKILL, OOM, power loss), so every host
action is preceded by an undo record that is *on disk* (``fsync``) before the
action starts.  Whoever finds the instance dead later (``gc``) replays the
records in reverse order and the host is as before.  A record therefore names
something that may not exist yet: reverting "remove P" when P was never
created is success, as is killing a process that already exited.

On-disk format, version 1 (frozen: a later version adds a new number, never
changes this one).  The file ``journal`` in the instance's directory holds JSON
lines, UTF-8, each ending in ``\\n``:

* line 1, the header: ``{"journal": "hakurei-undo", "version": 1}``;
* every further line, one record: ``{"kind": K, ...}`` with the fields of K
  (see ``KINDS``).

The file is only ever appended to (``O_APPEND``, one ``write`` per record,
then ``fsync``).  A last line without its ``\\n`` is a record torn by a crash
mid-append: its action never started (the action waits for the ``fsync``), so
replay ignores it.  Any other line that does not parse is reported and skipped.

Kinds are a small registry (``KINDS``): each says which fields it takes,
checks them before anything is touched (the journal sits in a directory the
user owns, so its contents are treated as hostile input), and reverts.  A
later enablement adds its own kind with ``register``.  The built-in kinds:

* ``remove`` ``{"path": REL}``: remove a file, socket or directory tree at
  REL inside the instance's own directory.  REL is relative, has no ``..``,
  and is walked with ``O_NOFOLLOW`` from the instance directory's fd.
* ``remove_host`` ``{"path": ABS}``: the same for a path outside the
  instance directory (a socket or directory the launcher puts beside it).
  Allowed only under one of the host roots the replayer is given (the user's
  runtime dir by default), and only when the last component contains the
  instance id, so a record can never name a path that is not the instance's
  own.  Walked from ``/`` with ``O_NOFOLLOW`` at every component.
* ``kill`` ``{"pid": N, "starttime": T}``: SIGKILL a process the instance
  started, identified by pid *and* its start time (field 22 of
  ``/proc/N/stat``), so a recycled pid is never signalled; then wait for it to
  exit.  The monitor writes this record while the child is still blocked (on a
  pipe only the monitor holds open) and only then lets it run, so a crash
  before the record leaves a child that exits by itself on EOF.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import stat
from collections.abc import Callable, Iterable
from typing import Any

VERSION = 1
HEADER = {"journal": "hakurei-undo", "version": VERSION}
FILENAME = "journal"

#: How long ``kill`` waits for a killed process to exit (it cannot refuse SIGKILL;
#: this bounds only a process stuck in the kernel, e.g. on a dead NFS server).
KILL_WAIT = 5.0


class JournalError(Exception):
    """One undo step that could not be done, or a record that is refused; one line."""


class Context:
    """What a kind may touch while reverting one instance."""

    def __init__(self, instance_id: str, dir_fd: int, host_roots: Iterable[str]) -> None:
        self.instance_id = instance_id
        #: An fd of the instance's own directory (opened with O_NOFOLLOW).
        self.dir_fd = dir_fd
        self.host_roots = tuple(os.path.normpath(r) for r in host_roots)


class Kind:
    """One kind of undo record: its fields, their check, and the revert."""

    def __init__(
        self,
        name: str,
        fields: dict[str, type],
        check: Callable[[dict[str, Any], Context], None],
        revert: Callable[[dict[str, Any], Context], None],
    ) -> None:
        self.name = name
        self.fields = fields
        self.check = check
        self.revert = revert


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    """Add a record kind (an enablement's own undo); a name is registered once."""
    if kind.name in KINDS:
        raise ValueError(f"undo kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind


# --- fd-based removal ------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_at(parent_fd: int, name: str) -> None:
    """Remove ``name`` in ``parent_fd`` (a tree if a directory), never following a symlink.

    A symlink is removed as itself.  A directory is opened with O_NOFOLLOW and
    emptied through its fd, so a rename or symlink swap by someone else can at
    worst make this remove the wrong *entry inside the tree it already holds*,
    never anything outside it.  Already gone is success.
    """
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        return
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_ino != st.st_ino:
            raise JournalError(f"{name!r} changed while being removed")
        for child in os.listdir(fd):
            remove_at(fd, child)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass


def _relative(path: object) -> list[str]:
    """The components of a record's path inside the instance dir, or a refusal."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\0" in path:
        raise JournalError(f"refused: path {path!r} is not relative to the instance directory")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise JournalError(f"refused: path {path!r} leaves the instance directory")
    return parts


def _remove_under(root_fd: int, parts: list[str]) -> None:
    """Walk ``parts[:-1]`` from ``root_fd`` without following symlinks, then remove the last."""
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return  # a parent is gone: so is the entry
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise JournalError(f"refused: {part!r} on the way is not a directory") from e
                raise
            os.close(fd)
            fd = nfd
        remove_at(fd, parts[-1])
    finally:
        os.close(fd)


def _check_remove(rec: dict[str, Any], ctx: Context) -> None:
    _relative(rec["path"])


def _revert_remove(rec: dict[str, Any], ctx: Context) -> None:
    _remove_under(ctx.dir_fd, _relative(rec["path"]))


def _host_parts(rec: dict[str, Any], ctx: Context) -> list[str]:
    path = rec["path"]
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise JournalError(f"refused: host path {path!r} is not absolute")
    if os.path.normpath(path) != path or "/../" in path + "/":
        raise JournalError(f"refused: host path {path!r} is not normal")
    parent, base = os.path.split(path)
    if ctx.instance_id not in base:
        raise JournalError(f"refused: host path {path!r} does not name this instance")
    if not any(parent == r or parent.startswith(r.rstrip("/") + "/") for r in ctx.host_roots):
        raise JournalError(f"refused: host path {path!r} is outside the allowed roots")
    return [p for p in path.split("/") if p]


def _check_remove_host(rec: dict[str, Any], ctx: Context) -> None:
    _host_parts(rec, ctx)


def _revert_remove_host(rec: dict[str, Any], ctx: Context) -> None:
    parts = _host_parts(rec, ctx)
    root = os.open("/", _DIR_FLAGS)
    try:
        _remove_under(root, parts)
    finally:
        os.close(root)


def starttime(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat`` (clock ticks after boot), or None if there is no PID."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    return int(rest[19])


def _check_kill(rec: dict[str, Any], ctx: Context) -> None:
    if rec["pid"] <= 1 or rec["starttime"] < 0:
        raise JournalError(f"refused: pid {rec['pid']} / starttime {rec['starttime']}")


def _revert_kill(rec: dict[str, Any], ctx: Context) -> None:
    pid, start = rec["pid"], rec["starttime"]
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        # Checked after pidfd_open: from here the pidfd names this process even
        # if it dies and the pid is reused, so the check cannot go stale.
        if starttime(pid) != start:
            return  # exited and its pid reused: not ours
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(KILL_WAIT * 1000):
            raise JournalError(f"process {pid} did not exit after SIGKILL")
    finally:
        os.close(pidfd)


register(Kind("remove", {"path": str}, _check_remove, _revert_remove))
register(Kind("remove_host", {"path": str}, _check_remove_host, _revert_remove_host))
register(Kind("kill", {"pid": int, "starttime": int}, _check_kill, _revert_kill))


# --- writing ---------------------------------------------------------------------------


def _fsync_dir(dir_fd: int) -> None:
    os.fsync(dir_fd)


class Journal:
    """The writer a live monitor holds: ``record`` returns once the record is on disk."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def create(cls, dir_fd: int) -> Journal:
        """Create ``journal`` in the instance dir (O_EXCL, O_NOFOLLOW, 0600) with its header."""
        fd = os.open(
            FILENAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
        j = cls(fd)
        j._append(HEADER)
        _fsync_dir(dir_fd)
        return j

    def _append(self, obj: dict[str, Any]) -> None:
        line = (json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n").encode()
        n = os.write(self.fd, line)
        if n != len(line):  # a regular file short-writes only when the disk is full
            raise OSError(errno.ENOSPC, "short write to the undo journal")
        os.fsync(self.fd)

    def record(self, kind: str, **fields: Any) -> None:
        """Persist one undo record; call it *before* the host action it undoes."""
        k = KINDS.get(kind)
        if k is None:
            raise ValueError(f"unknown undo kind {kind!r}")
        if set(fields) != set(k.fields):
            raise ValueError(f"undo kind {kind!r} takes {sorted(k.fields)}, got {sorted(fields)}")
        self._append({"kind": kind, **fields})

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --- reading and replay ----------------------------------------------------------------


def read(dir_fd: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of the instance's journal, and one line per problem found reading it.

    No journal at all is no records (the monitor died before creating it).  A
    header of another version gives no records and an error: replaying records
    this code does not understand could do harm.
    """
    try:
        fd = os.open(FILENAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return [], []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return [], ["journal is not a regular file"]
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    lines = b"".join(chunks).split(b"\n")
    lines.pop()  # after the last "\n": empty, or a torn record (its action never started)
    if not lines:
        return [], []
    errors: list[str] = []
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if header != HEADER:
        return [], [f"journal header {lines[0][:80]!r} is not version {VERSION}"]
    records: list[dict[str, Any]] = []
    for n, line in enumerate(lines[1:], start=2):
        try:
            rec = json.loads(line)
        except ValueError:
            errors.append(f"journal line {n}: not JSON")
            continue
        if not isinstance(rec, dict):
            errors.append(f"journal line {n}: not an object")
            continue
        records.append(rec)
    return records, errors


def _valid(rec: dict[str, Any], ctx: Context) -> Kind:
    kind = KINDS.get(rec.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise JournalError(f"refused: unknown undo kind {str(rec.get('kind'))[:40]!r}")
    fields = {k: v for k, v in rec.items() if k != "kind"}
    if set(fields) != set(kind.fields) or not all(
        type(fields[f]) is t for f, t in kind.fields.items()
    ):
        raise JournalError(f"refused: malformed {kind.name!r} record")
    kind.check(rec, ctx)
    return kind


def replay(records: list[dict[str, Any]], ctx: Context) -> list[str]:
    """Revert every record, last first; continue past failures; return one line per failure."""
    errors: list[str] = []
    for rec in reversed(records):
        try:
            _valid(rec, ctx).revert(rec, ctx)
        except JournalError as e:
            errors.append(str(e))
        except OSError as e:
            errors.append(f"cannot revert {rec.get('kind')} {rec.get('path', rec.get('pid'))}: {e}")
    return errors
