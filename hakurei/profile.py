"""Profiles: the filesystem and environment a container starts from.

A profile is a list of ops with a tail that must stay last (the default
profile's read-only remount of ``/``), plus the environment that goes with
it.  ``extend`` adds the caller's ops *before* that tail, so a user can add a
bind to the default profile (``--profile default --bind $PWD $PWD``) without
rebuilding it, and the root still ends read-only::

    p = default_profile()
    p.extend(Ops().bind(os.getcwd(), os.getcwd()))
    run_sync("python3", ["python3", "-V"], ops=p.finish(), env=p.env, dir=None)

``PROFILES`` names them for the CLI's ``--profile NAME``:

``default``
    A read-only view of the host's programs and libraries and nothing of the
    user's data: host ``/usr`` read-only; ``/bin``, ``/sbin``, ``/lib*`` as on
    the host (symlinks on merged-usr systems, read-only binds otherwise); the
    host's ``/etc`` read-only with a passwd and group placed over the host's
    that name only root, the user and nobody (see below); a fresh ``/proc``;
    a minimal ``/dev`` with an mqueue; a tmpfs ``/tmp``; a private writable
    tmpfs home (see ``account``); and the root remounted read-only last.
``none``
    No ops at all (bubblewrap's starting point): the caller's ops are the
    whole filesystem.  The environment is the same as ``default``'s.

How the default ``/etc`` is made (``Profile.finish``): a read-only recursive
bind of the host's ``/etc``, as bubblewrap users write it, with the profile's
passwd and group bound over the host's files: three mounts, ~0.3 ms in init.
A read-only bind cannot take a new entry, though, so when the caller adds an
op whose destination is under ``/etc`` (``--place /etc/foo``, a bind onto
``/etc/ssl``), or the host's passwd or group is not a regular file, the
profile builds hakurei's auto ``/etc`` instead: a tmpfs ``/etc`` of links
into a bind of the host's (``ops.AutoEtc``), writable until the final
remount, 150 links here, ~1.3 ms in init.  Either way the container sees the
host's configuration and only the profile's accounts.
"""

from __future__ import annotations

import os

from .ops import Op, Ops
from .std import MS_RDONLY

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc costs ~2.5 ms of every hakurei exec's start
    from collections.abc import Callable, Iterable, Mapping

TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Top-level directories the default profile fills from the host (or with its
#: own mounts): a home under one of them could not be a tmpfs of its own.
_TAKEN = frozenset(p.lstrip("/") for p in (*TOP_LEVEL, "/usr", "/etc", "/proc", "/dev"))


def account(uid: int | None = None) -> tuple[str, str]:
    """The container user's name and home directory: ``(name, home)``.

    Container uid 0 is ``root`` with home ``/root``.  Any other uid gets the
    caller's login name (``user`` if the caller has no passwd entry) and the
    caller's passwd home, so ``~/project`` names the same path inside and out.
    When that home cannot be a mount point of its own (``/``, Debian's
    ``/nonexistent``, not absolute or not normalised, or under a directory the
    default profile fills from the host such as ``/usr`` or ``/etc``), the
    home is ``/home/NAME``.
    """
    uid = os.getuid() if uid is None else uid
    if uid == 0:
        return "root", "/root"
    name, home = "user", ""
    try:
        import pwd

        entry = pwd.getpwuid(os.getuid())
        name, home = entry.pw_name, entry.pw_dir
    except (ImportError, KeyError):
        pass
    top = home.lstrip("/").partition("/")[0]
    usable = (
        home.startswith("/")
        and os.path.normpath(home) == home
        and home not in ("/", "/nonexistent")
        and top not in _TAKEN
        and home.isprintable()
        and ":" not in home
    )
    return name, home if usable else f"/home/{name}"


def identity_files(uid: int, gid: int) -> tuple[bytes, bytes]:
    """``/etc/passwd`` and ``/etc/group`` naming the container user (``account``), root and nobody.

    Auto ``/etc`` skips the host's two files, so whoever builds an ``/etc``
    places these: ``whoami``, ``git`` and ``pip`` look the user up there.
    """
    name, home = account(uid)
    return _passwd_group(uid, gid, name, home)


def _passwd_group(uid: int, gid: int, name: str, home: str) -> tuple[bytes, bytes]:
    """passwd and group text naming the container's ids (and nothing else of the host)."""
    passwd = "root:x:0:0:root:/root:/bin/sh\n"
    group = "root:x:0:\n"
    if uid != 0:
        passwd += f"{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh\n"
    if gid != 0:
        group += f"{name}:x:{gid}:\n"
    if uid != 65534:
        passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    if gid != 65534:
        group += "nogroup:x:65534:\n"
    return passwd.encode(), group.encode()


class Profile:
    """A profile's ops, open for the caller's additions until ``finish()``.

    ``body`` are the profile's own ops, ``tail`` the ones that must come after
    everything else (the final read-only remount of ``/``): a bind added with
    ``extend`` lands between them, where it can still create its mount point.
    ``env`` is the environment the profile expects (``HOME`` exists in it).
    """

    __slots__ = ("added", "body", "env", "etc", "name", "tail")

    def __init__(
        self,
        name: str,
        body: Iterable[Op],
        tail: Iterable[Op],
        env: dict[str, str],
        etc: tuple[int, int, list[Op]] | None = None,
    ) -> None:
        self.name = name
        self.body = list(body)
        self.tail = list(tail)
        self.added: list[Op] = []
        self.env = env
        #: ``(start, end, ops)``: ``body[start:end]`` is a read-only ``/etc`` that
        #: ``finish`` replaces with ``ops`` (an auto ``/etc``) when an added op
        #: needs to create something under ``/etc``
        self.etc = etc

    def extend(self, ops: Iterable[Op]) -> Profile:
        """Add ``ops`` after the profile's own ops and the ones added before, before the tail."""
        ops = list(ops)
        for op in ops:
            if not isinstance(op, Op):
                from .errors import OpError

                raise OpError(f"not an op: {op!r}")
        self.added.extend(ops)
        return self

    def finish(self) -> Ops:
        """A new ``Ops``: the profile's ops, the added ones, then the tail."""
        body = self.body
        if self.etc is not None and any(_under_etc(op) for op in self.added):
            start, end, auto = self.etc
            body = [*body[:start], *auto, *body[end:]]
        return Ops([*body, *self.added, *self.tail])

    def __repr__(self) -> str:
        return f"<Profile {self.name}: {len(self.body)}+{len(self.added)}+{len(self.tail)} ops>"


def default_profile(
    uid: int | None = None,
    gid: int | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    root: str = "/",
) -> Profile:
    """The default profile for a container whose ids are ``uid``/``gid``.

    Its home (``account``) is a tmpfs of mode 0700 owned by the container
    user, mounted after ``/tmp``: writable like bubblewrap users expect
    ``$HOME`` to be, and private to this container (it goes with it).
    ``root`` is where the host tree is read (tests point it elsewhere).
    """
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    name, home = account(uid)
    ops = Ops().bind("/usr", "/usr")
    for path in TOP_LEVEL:
        host = os.path.join(root, path.lstrip("/"))
        if os.path.islink(host):
            ops.link(path, os.readlink(host))
        elif os.path.isdir(host):
            ops.bind(path, path)
    passwd, group = _passwd_group(uid, gid, name, home)
    accounts = list(Ops().place("/etc/passwd", passwd).place("/etc/group", group))
    auto = [*Ops().etc("/etc", "host"), *accounts]
    start = len(ops)
    if _regular(root, "etc/passwd") and _regular(root, "etc/group"):
        ops.bind("/etc", "/etc", 0).extend(accounts)
        etc: tuple[int, int, list[Op]] | None = (start, len(ops), auto)
    else:
        ops.extend(auto)
        etc = None
    ops.proc("/proc").dev("/dev", mqueue=True).tmpfs("/tmp", 0, 0o1777).tmpfs(home, 0, 0o700)
    tail = Ops().remount("/", MS_RDONLY)
    return Profile("default", ops, tail, default_env(environ, uid), etc)


def _regular(root: str, path: str) -> bool:
    """A regular file (not a link: a place binds onto the file itself) on the host."""
    import stat

    try:
        return stat.S_ISREG(os.lstat(os.path.join(root, path)).st_mode)
    except OSError:
        return False


def _under_etc(op: Op) -> bool:
    """Whether ``op`` puts something at or under ``/etc`` in the container."""
    from .ops.base import DEST

    for name, kind in op.FIELDS:
        if kind == DEST:
            dest = getattr(op, name)
            if dest == "/etc" or dest.startswith("/etc/"):
                return True
    return False


def none_profile(
    uid: int | None = None,
    gid: int | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    root: str = "/",
) -> Profile:
    """No ops: the caller's ops are the whole filesystem (bubblewrap's way)."""
    return Profile("none", [], [], default_env(environ, uid))


#: Profiles by name (the CLI's ``--profile NAME``): each takes ``(uid, gid, *,
#: environ=None, root="/")`` and returns a fresh ``Profile``.
PROFILES: dict[str, Callable[..., Profile]] = {
    "default": default_profile,
    "none": none_profile,
}


def default_ops(uid: int | None = None, gid: int | None = None, root: str = "/") -> Ops:
    """The default profile's ops, with nothing added (``default_profile(...).finish()``)."""
    return default_profile(uid, gid, root=root).finish()


def default_env(environ: Mapping[str, str] | None = None, uid: int | None = None) -> dict[str, str]:
    """PATH, HOME, USER and LOGNAME of the container user, plus TERM and LANG when set.

    Nothing else leaks from the host.  ``HOME`` is the home the default profile
    mounts (``account(uid)``); ``USER`` and ``LOGNAME`` name that user.
    """
    environ = os.environ if environ is None else environ
    name, home = account(uid)
    env = {"PATH": DEFAULT_PATH, "HOME": home, "USER": name, "LOGNAME": name}
    for key in ("TERM", "LANG"):
        if key in environ:
            env[key] = environ[key]
    return env
