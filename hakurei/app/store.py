"""The launcher's state store: one directory per running instance, liveness by flock.

Where: ``$XDG_RUNTIME_DIR/hakurei/`` when ``XDG_RUNTIME_DIR`` is an absolute
path to a directory we own and can write; otherwise ``$TMPDIR/hakurei.<uid>``
(``/tmp`` when TMPDIR is unset).  The store directory must be a real directory
(not a symlink), owned by us, mode 0700; anything else is refused with one
line (``StoreError``), never repaired: someone else made it.

Trust: the store is as safe as the user's runtime dir, which a confined app
must never get writable (the launcher gives it a private ``/run/user/<uid>``
tmpfs and binds single sockets, never the host's runtime dir).  Still, ``gc``
treats every file in it as hostile: it never follows a symlink (removal is
fd-based, ``O_NOFOLLOW`` at every step) and removes outside an instance's own
directory only what a journal record kind allows (see ``journal``).

Layout (format version 1, frozen)::

    <store>/lock                 the store lock (flock), held only briefly
    <store>/<id>/                one per instance, 0700; id = 32 lowercase hex
    <store>/<id>/lock            the instance lock: its monitor holds LOCK_EX for its whole life
    <store>/<id>/entry.json      the instance entry (below)
    <store>/<id>/journal         the undo journal (``journal.py``)
    <store>/<id>/...             whatever the instance's host actions put there

Instance entry, ``entry.json``: one JSON object, written atomically (created
as ``entry.json.tmp`` with O_EXCL|O_NOFOLLOW, 0600, fsynced, renamed)::

    {"version": 1, "id": "<32 hex>", "pid": <monitor pid>,
     "created_ns": <time.time_ns()>, "info": {...}}

``info`` belongs to the launcher (its config and the like); the store only
carries it.  A reader refuses another ``version``.

Liveness is the instance lock, not a pid: the kernel drops a flock when its
last fd closes, which a SIGKILLed monitor cannot prevent, and a recycled pid
cannot fake it.  An instance whose lock can be taken is dead: ``ps`` does not
list it and ``gc`` reverts it.

Races: creating an instance (mkdir, lock file, flock) happens under the store
lock, and ``gc`` takes instance locks under the store lock too, so ``gc``
never sees a half-made instance whose lock is not yet held.  ``gc`` holds an
instance's lock while reverting and removing it and touches no locked
instance; two ``gc`` runs never revert one instance twice.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from . import journal as _journal

VERSION = 1
ENTRY = "entry.json"
LOCK = "lock"
_ID = re.compile(r"[0-9a-f]{32}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC


class StoreError(Exception):
    """The store cannot be used (one line, for the CLI to print and exit 125)."""


def _usable_runtime_dir(path: str | None) -> bool:
    if not path or not os.path.isabs(path):
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.geteuid()
        and os.access(path, os.W_OK | os.X_OK)
    )


def default_path(env: dict[str, str] | None = None) -> str:
    """Where this user's store lives (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR")
    if _usable_runtime_dir(runtime):
        assert runtime is not None
        return os.path.join(runtime, "hakurei")
    tmp = env.get("TMPDIR") or "/tmp"
    if not os.path.isabs(tmp):
        tmp = "/tmp"
    return os.path.join(tmp, f"hakurei.{os.geteuid()}")


def _open_private_dir(path: str, create: bool) -> int:
    """An fd of ``path``, a directory we own with mode 0700 (made if missing and ``create``)."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise StoreError(f"cannot create state store {path}: {e.strerror}") from e
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StoreError(f"state store {path} is not a directory (a symlink?)") from e
        raise StoreError(f"cannot open state store {path}: {e.strerror}") from e
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise StoreError(f"state store {path} belongs to uid {st.st_uid}, not to us")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.close(fd)
        raise StoreError(f"state store {path} has mode {stat.S_IMODE(st.st_mode):04o}, not 0700")
    return fd


def _flock(fd: int, op: int) -> bool:
    """flock without blocking (``op | LOCK_NB``); False if someone else holds it."""
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_new(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` in ``dir_fd`` with ``data``, fsynced, 0600: never an existing file,
    never through a symlink (the store is the user's, so its contents are not trusted)."""
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(dir_fd: int, name: str, data: bytes) -> None:
    """Replace ``name`` in ``dir_fd`` by ``data`` all at once (tmp, O_EXCL, fsync, rename)."""
    tmp = name + ".tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)  # left by a monitor that died mid-write
    except FileNotFoundError:
        pass
    write_new(dir_fd, tmp, data)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


class Instance:
    """A live instance as its monitor holds it: the lock, the directory, the journal."""

    def __init__(self, store: Store, id: str, dir_fd: int, lock_fd: int) -> None:
        self.store = store
        self.id = id
        #: The instance directory (O_NOFOLLOW fd), for host actions that create files in it.
        self.dir_fd = dir_fd
        self.lock_fd = lock_fd
        self.path = os.path.join(store.path, id)
        self.journal = _journal.Journal.create(dir_fd)

    def write_entry(self, info: dict[str, Any]) -> None:
        """Write (or rewrite) the instance entry atomically; ``info`` is the launcher's."""
        entry = {
            "version": VERSION,
            "id": self.id,
            "pid": os.getpid(),
            "created_ns": time.time_ns(),
            "info": info,
        }
        _write_atomic(self.dir_fd, ENTRY, json.dumps(entry, sort_keys=True).encode())

    def revert(self) -> list[str]:
        """The monitor's normal end: replay the journal, remove the instance, drop the lock.

        Returns one line per failed undo step (the steps after it still ran).
        """
        self.journal.close()
        try:
            return self.store._revert_and_remove(self.id, self.dir_fd)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the lock without reverting (the instance becomes dead: ``gc``'s to clean)."""
        self.journal.close()
        for fd in (self.dir_fd, self.lock_fd):
            if fd >= 0:
                os.close(fd)
        self.dir_fd = self.lock_fd = -1


class Store:
    """The store directory of this user (``default_path()`` unless given)."""

    def __init__(self, path: str | None = None, host_roots: Iterable[str] | None = None) -> None:
        self.path = path or default_path()
        self.fd = _open_private_dir(self.path, create=True)
        #: Where ``remove_host`` records may point: by default the directory the store is in.
        self.host_roots = (
            tuple(host_roots) if host_roots is not None else (os.path.dirname(self.path),)
        )

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(LOCK, _LOCK_FLAGS | os.O_CREAT, 0o600, dir_fd=self.fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{self.path}/lock is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create(self) -> Instance:
        """A new instance, locked by this process until ``revert`` or ``close`` (or death)."""
        with self._locked():
            for _ in range(8):
                id = secrets.token_hex(16)
                try:
                    os.mkdir(id, 0o700, dir_fd=self.fd)
                    break
                except FileExistsError:
                    continue
            else:
                raise StoreError("cannot find a free instance id")
            dir_fd = os.open(id, _DIR_FLAGS, dir_fd=self.fd)
            lock_fd = os.open(LOCK, _LOCK_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # new: nobody else can hold it
            os.fsync(dir_fd)
            os.fsync(self.fd)
        return Instance(self, id, dir_fd, lock_fd)

    def _ids(self) -> list[str]:
        return sorted(n for n in os.listdir(self.fd) if _ID.fullmatch(n))

    def _try_lock(self, id: str, op: int) -> tuple[int, int] | None:
        """(dir fd, lock fd) of a dead instance with its lock taken (``op``), or None if live.

        A directory without a lock file is a creation that died before it: it is
        dead, and its lock file is made here so the lock can be held.  Must be
        called under the store lock.
        """
        try:
            dir_fd = os.open(id, _DIR_FLAGS, dir_fd=self.fd)
        except OSError:
            return None  # gone, or not a directory (never ours to touch)
        try:
            lock_fd = os.open(LOCK, _LOCK_FLAGS | os.O_CREAT, 0o600, dir_fd=dir_fd)
        except OSError:
            os.close(dir_fd)
            return None
        if not stat.S_ISREG(os.fstat(lock_fd).st_mode) or not _flock(lock_fd, op):
            os.close(lock_fd)
            os.close(dir_fd)
            return None
        return dir_fd, lock_fd

    def _entry(self, dir_fd: int, id: str) -> dict[str, Any] | None:
        try:
            fd = os.open(ENTRY, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                entry = json.loads(f.read(1 << 20))
        except ValueError:
            return None
        finally:
            os.close(fd)
        if not isinstance(entry, dict) or entry.get("version") != VERSION:
            return None
        if entry.get("id") != id:
            return None
        return entry

    def live(self) -> list[dict[str, Any]]:
        """The entries of live instances only (what ``ps`` shows), sorted by id.

        An instance whose monitor is alive but has not written its entry yet is
        not listed.
        """
        live = []
        with self._locked():
            for id in self._ids():
                try:
                    dir_fd = os.open(id, _DIR_FLAGS, dir_fd=self.fd)
                except OSError:
                    continue
                try:
                    try:
                        lock_fd = os.open(LOCK, _LOCK_FLAGS, dir_fd=dir_fd)
                    except OSError:
                        continue
                    try:
                        if _flock(lock_fd, fcntl.LOCK_SH):
                            continue  # we could lock it: its monitor is dead
                    finally:
                        os.close(lock_fd)
                    entry = self._entry(dir_fd, id)
                    if entry is not None:
                        live.append(entry)
                finally:
                    os.close(dir_fd)
        return live

    def gc(self) -> list[str]:
        """Revert and remove every dead instance; return one line per failed undo step.

        Locks are taken under the store lock (so no instance is half made), then
        each dead instance is reverted holding its own lock.
        """
        dead: list[tuple[str, int, int]] = []
        with self._locked():
            for id in self._ids():
                got = self._try_lock(id, fcntl.LOCK_EX)
                if got is not None:
                    dead.append((id, *got))
        errors: list[str] = []
        for id, dir_fd, lock_fd in dead:
            try:
                errors += [f"{id}: {e}" for e in self._revert_and_remove(id, dir_fd)]
            finally:
                os.close(dir_fd)
                os.close(lock_fd)
        return errors

    def _revert_and_remove(self, id: str, dir_fd: int) -> list[str]:
        """Replay the instance's journal, then remove its directory (fd-based), lock held."""
        records, errors = _journal.read(dir_fd)
        ctx = _journal.Context(id, dir_fd, self.host_roots)
        errors += _journal.replay(records, ctx)
        # The entry goes first: a crash from here on leaves an instance that ps
        # does not list and the next gc finishes removing.
        try:
            os.unlink(ENTRY, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        for name in os.listdir(dir_fd):
            if name != LOCK:
                try:
                    _journal.remove_at(dir_fd, name)
                except (OSError, _journal.JournalError) as e:
                    errors.append(f"cannot remove {name!r}: {e}")
        # The lock file last, then the directory, under the store lock: another
        # gc takes instance locks only under it, so it never makes a fresh lock
        # file in a directory being removed.
        with self._locked():
            try:
                os.unlink(LOCK, dir_fd=dir_fd)
                os.rmdir(id, dir_fd=self.fd)
            except OSError as e:
                errors.append(f"cannot remove instance directory: {e.strerror}")
        return errors
