"""The app's container, decided from its config alone: what the monitor starts before any grant.

``plan(config, host_env, uid, gid)`` is pure: it reads the host (environment,
whether a path exists, which device nodes there are) and changes nothing,
so a refused or crashed launch has nothing of it to undo.  Its result is the
keyword arguments of ``hakurei.Container`` (:meth:`Plan.container_kwargs`)
and, kept apart, the ``tail`` ops: the read-only remounts that must come
after everything else.  The monitor starts the container with the base ops,
lets the enablements do their host work while init waits, then amends the
grants' ops *followed by the tail* (a grant's bind must still be able to
create its mount point, which a read-only ``/`` would refuse).

The always-on parts (reference launcher.md §2.1, issue 7 "Always"), in order:

1. a ``bind`` entry with ``special`` and ``dst`` ``/`` first in
   ``container.filesystem`` becomes the root (autoroot) before anything else,
   as in hakurei, so the launcher's own mounts land on top of it;
2. ``/proc``; ``/dev`` minimal (read-only at the end) or, with ``device``, the
   host's whole ``/dev``; a private ``/dev/shm``; with a display enabled,
   ``/dev/dri`` and the ``/sys`` subtrees Mesa reads to find the GPU
   (bubblejail's list: ``/sys/dev/char`` and each DRI node's PCI device);
3. ``/run/user/<uid>``: the app's own writable 0700 tmpfs (a host runtime
   directory is never shown; ``share_runtime`` binds a per-app host dir
   instead); ``/tmp``: a tmpfs, or the per-app shared dir with
   ``share_tmpdir``;
4. the remaining ``container.filesystem`` entries, in order (bind, autoetc,
   ephemeral, link, overlay);
5. a private writable home when no entry provides ``container.home``: the
   host dir ``$XDG_DATA_HOME/hakurei/<key>`` (made 0700 by init's ``ensure``);
6. ``/etc/passwd`` and ``/etc/group`` naming the app's user (auto ``/etc``
   skips the host's two files), unless an entry put its own there;
7. ``/var/cache/fontconfig`` read-only when the host has it (GTK clients
   without it print 23 fontconfig errors and start 8x slower);
8. every host path in ``hide`` (the state store: instance dirs hold cookies)
   that a bind would show, covered by an empty read-only tmpfs.

The environment is cleared, then ``TERM`` and ``LANG`` from the host, then
``container.env``, then what the launcher always sets (reference §2.8):
``HOME``, ``USER``, ``SHELL``, ``XDG_RUNTIME_DIR``, ``XDG_SESSION_CLASS`` and
``XDG_SESSION_TYPE`` (``wayland``, ``x11`` or ``tty``, as pam_systemd would).

The app runs as the caller's own uid and gid (D-Bus clients refuse any
other), in ``home``, with the everyday seccomp default of ``hakurei exec``
loosened by the config's flags.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ops import Ops
from ..std import BIND_DEVICE, BIND_ENSURE, BIND_OPTIONAL, BIND_WRITABLE, MS_RDONLY
from .records import BindFS, Config, EphemeralFS, LinkFS, OverlayFS

#: Where Mesa looks for the GPU behind a DRI node (bubblejail's ``direct_rendering``).
SYS_DEV_CHAR = "/sys/dev/char"
FONTCONFIG_CACHE = "/var/cache/fontconfig"


@dataclass
class Plan:
    """The app's container before any grant, and the tail that ends every plan."""

    path: str
    args: list[str]
    ops: Ops
    #: appended last, after the grants' ops: read-only /dev (unless ``device``) and /
    tail: Ops
    env: dict[str, str]
    uid: int
    gid: int
    hostname: str
    home: str
    #: the app's runtime directory inside: /run/user/<uid>
    runtime: str
    host_net: bool
    host_abstract: bool
    retain_session: bool
    seccomp_presets: int
    seccomp_flags: int
    #: seconds from the cancel (SIGINT to the app) to SIGKILL; 0: no forwarding, kill at once
    wait_delay: float
    #: host directories init creates with ``ensure`` (for ``-v`` and tests)
    ensured: list[str] = field(default_factory=list)

    def container_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``hakurei.Container`` (without the tail; see the module)."""
        return {
            "path": self.path,
            "args": list(self.args),
            "ops": list(self.ops),
            "env": dict(self.env),
            "dir": self.home,
            "uid": self.uid,
            "gid": self.gid,
            "hostname": self.hostname,
            "host_net": self.host_net,
            "host_abstract": self.host_abstract,
            "retain_session": self.retain_session,
            "seccomp_presets": self.seccomp_presets,
            "seccomp_flags": self.seccomp_flags,
            "forward_cancel": self.wait_delay > 0,
            "wait_delay": self.wait_delay,
        }


def app_key(config: Config) -> str:
    """The name of an app's shared host dirs: its ``id``, else ``identity-N``, else ``default``."""
    if config.id:
        return config.id
    if config.identity is not None:
        return f"identity-{config.identity}"
    return "default"


def data_home(host_env: Mapping[str, str]) -> str:
    """``$XDG_DATA_HOME`` when absolute, else ``$HOME/.local/share`` (the XDG rule)."""
    data = host_env.get("XDG_DATA_HOME", "")
    if data.startswith("/"):
        return posixpath.normpath(data)
    home = host_env.get("HOME", "")
    if not home.startswith("/"):
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
    return posixpath.join(posixpath.normpath(home), ".local", "share")


def share_root(host_env: Mapping[str, str], uid: int) -> str:
    """Where per-app shared dirs live: ``$XDG_RUNTIME_DIR/hakurei-share`` or ``$TMPDIR``'s."""
    runtime = host_env.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/") and os.path.isdir(runtime):
        return posixpath.join(posixpath.normpath(runtime), "hakurei-share")
    tmp = host_env.get("TMPDIR", "")
    tmp = posixpath.normpath(tmp) if tmp.startswith("/") else "/tmp"
    return posixpath.join(tmp, f"hakurei-share.{uid}")


def seccomp_for(config: Config) -> tuple[int, int]:
    """(presets, flags): ``hakurei exec``'s everyday default, loosened by the config's flags."""
    from .. import seccomp as sc

    presets = sc.EVERYDAY
    c = config.container
    if c.devel:
        presets &= ~sc.DENY_DEVEL
    if c.userns:
        presets &= ~sc.DENY_NS
    if c.tty:
        presets &= ~sc.DENY_TTY
    flags = sc.ALLOW_MULTIARCH if c.multiarch else 0
    return presets, flags


def session_type(config: Config) -> str:
    """``XDG_SESSION_TYPE`` as pam_systemd would set it: wayland, then x11, else tty."""
    if config.enablements.wayland:
        return "wayland"
    if config.enablements.x11:
        return "x11"
    return "tty"


def passwd_group(uid: int, gid: int, name: str, home: str, shell: str) -> tuple[bytes, bytes]:
    """The placed ``/etc/passwd`` and ``/etc/group``: the app's user, root and nobody."""
    passwd = "root:x:0:0:root:/root:/bin/sh\n"
    passwd += f"{name}:x:{uid}:{gid}:Hakurei:{home}:{shell}\n"
    passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    group = f"root:x:0:\n{name}:x:{gid}:\nnogroup:x:65534:\n"
    return passwd.encode(), group.encode()


def gpu_sys_paths(dri: str = "/dev/dri", sys_char: str = SYS_DEV_CHAR) -> list[str]:
    """The ``/sys`` subtrees Mesa reads to find the GPU behind each DRI node.

    ``/sys/dev/char`` (its ``MAJ:MIN`` links name each node's device) and, for
    every node in ``dri``, the PCI device directory its link resolves to
    (the parent of its ``drm`` directory).  Nothing when there is no GPU.
    """
    try:
        names = sorted(os.listdir(dri))
    except OSError:
        return []
    devices: list[str] = []
    for name in names:
        try:
            st = os.stat(posixpath.join(dri, name))
        except OSError:
            continue
        if not stat.S_ISCHR(st.st_mode):
            continue
        link = posixpath.join(sys_char, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
        real = os.path.realpath(link)
        parts = real.split("/")
        if "drm" in parts:
            device = "/".join(parts[: parts.index("drm")])
            if device.startswith("/sys/devices/") and device not in devices:
                devices.append(device)
    return [sys_char, *devices] if devices else []


def _covers(entry: BindFS, home: str) -> bool:
    """Whether a bind provides ``home``: it targets home or a directory above it."""
    target = posixpath.normpath(entry.target)
    return home == target or home.startswith(target.rstrip("/") + "/")


def _is_special(entry: object, dst: str) -> bool:
    return (
        isinstance(entry, BindFS)
        and entry.special
        and posixpath.normpath(entry.target).rstrip("/") == dst.rstrip("/")
    )


def _entry_ops(ops: Ops, entry: object) -> None:
    """One ``container.filesystem`` entry as ops."""
    if isinstance(entry, BindFS):
        if _is_special(entry, "/etc"):
            ops.etc(entry.src, "host")
            return
        flags = 0
        if entry.write or entry.dev:
            flags |= BIND_WRITABLE
        if entry.dev:
            flags |= BIND_DEVICE
        if entry.optional:
            flags |= BIND_OPTIONAL
        if entry.ensure:
            flags |= BIND_ENSURE
        ops.bind(entry.src, entry.target, flags)
    elif isinstance(entry, EphemeralFS):
        perm = entry.perm or 0o755
        if entry.write:
            ops.tmpfs(entry.dst, entry.size, perm)
        else:
            ops.readonly(entry.dst, perm)
    elif isinstance(entry, LinkFS):
        ops.link(entry.dst, entry.linkname, entry.dereference)
    elif isinstance(entry, OverlayFS):
        if entry.upper is not None and entry.work is not None:
            ops.overlay(entry.dst, entry.upper, entry.work, *entry.lower)
        else:
            ops.overlay_readonly(entry.dst, *entry.lower)
    else:  # pragma: no cover - check.py makes only these four
        raise TypeError(f"unknown filesystem entry {entry!r}")


def _hidden(config: Config, hide: Sequence[str]) -> list[str]:
    """Container paths at which a bind would show one of the ``hide`` host paths."""
    out: list[str] = []
    for path in hide:
        path = posixpath.normpath(path)
        for entry in config.container.filesystem:
            if not isinstance(entry, BindFS) or _is_special(entry, "/etc"):
                continue
            src = posixpath.normpath(entry.src)
            if path != src and not path.startswith(src.rstrip("/") + "/"):
                continue
            rest = path[len(src) :].lstrip("/")
            if _is_special(entry, "/"):
                if not rest or rest.split("/")[0] in ("proc", "dev", "tmp", "mnt", "etc"):
                    continue
                inside = "/" + rest
            else:
                inside = posixpath.join(posixpath.normpath(entry.target), rest)
            if inside != "/" and inside not in out:
                out.append(inside)
    return out


def plan(
    config: Config,
    host_env: Mapping[str, str],
    uid: int,
    gid: int,
    *,
    extra_args: Sequence[str] = (),
    hide: Sequence[str] = (),
) -> Plan:
    """The app's container before any grant (see the module docstring for what and why).

    ``extra_args`` are appended to ``container.argv`` (hakurei's ``app CONFIG
    ARGS``); ``hide`` are host paths the app must not see through a bind.
    """
    c = config.container
    home = posixpath.normpath(c.home)
    runtime = f"/run/user/{uid}"
    key = app_key(config)
    display = config.enablements.x11 or config.enablements.wayland
    entries = list(c.filesystem)
    ops = Ops()
    ensured: list[str] = []

    # 1. the root filesystem first, so everything below lands on top of it
    if entries and _is_special(entries[0], "/"):
        root = entries.pop(0)
        assert isinstance(root, BindFS)
        ops.root(root.src, BIND_WRITABLE if root.write else 0)
        run_user_exists = os.path.isdir(posixpath.join(root.src, "run", "user"))
    else:
        run_user_exists = True  # an empty root: every mount point can be made

    # 2. /proc, /dev, GPU
    ops.proc("/proc")
    tail = Ops()
    if c.device:
        ops.bind("/dev", "/dev", BIND_WRITABLE | BIND_DEVICE)
    else:
        ops.dev_writable("/dev", mqueue=True)
        ops.tmpfs("/dev/shm", 0, 0o1777)
        tail.remount("/dev", MS_RDONLY)
        if display:
            ops.bind("/dev/dri", "/dev/dri", BIND_WRITABLE | BIND_DEVICE | BIND_OPTIONAL)
    if display:
        for path in gpu_sys_paths():
            ops.bind(path, path, BIND_OPTIONAL)

    # 3. the runtime dir and /tmp.  A root bound from a host without /run/user
    # cannot take a mount point there (it is read-only): /run itself is then
    # the launcher's tmpfs.
    ops.tmpfs("/run/user" if run_user_exists else "/run", 4096, 0o755)
    if c.share_runtime:
        shared = posixpath.join(share_root(host_env, uid), key, "runtime")
        ensured.append(shared)
        ops.bind(shared, runtime, BIND_WRITABLE | BIND_ENSURE)
    else:
        ops.tmpfs(runtime, 0, 0o700)
    if c.share_tmpdir:
        shared = posixpath.join(share_root(host_env, uid), key, "tmpdir")
        ensured.append(shared)
        ops.bind(shared, "/tmp", BIND_WRITABLE | BIND_ENSURE)
    else:
        ops.tmpfs("/tmp", 0, 0o1777)

    # 4. the config's entries, in order
    own_etc = False
    for entry in entries:
        _entry_ops(ops, entry)
        if isinstance(entry, BindFS) and not entry.special:
            target = posixpath.normpath(entry.target)
            own_etc |= target in ("/etc", "/etc/passwd", "/etc/group")

    # 5. a private home unless an entry provides it
    if not any(isinstance(e, BindFS) and not e.special and _covers(e, home) for e in entries):
        source = posixpath.join(data_home(host_env), "hakurei", key)
        ensured.append(source)
        ops.bind(source, home, BIND_WRITABLE | BIND_ENSURE)

    # 6. the account
    if not own_etc:
        passwd, group = passwd_group(uid, gid, c.username, home, c.shell)
        ops.place("/etc/passwd", passwd).place("/etc/group", group)

    # 7. fontconfig's cache
    if os.path.isdir(FONTCONFIG_CACHE):
        ops.bind(FONTCONFIG_CACHE, FONTCONFIG_CACHE, BIND_OPTIONAL)

    # 8. hide the state store where a bind shows it
    for path in _hidden(config, hide):
        ops.readonly(path, 0o755)

    tail.remount("/", MS_RDONLY)

    env: dict[str, str] = {}
    for name in ("TERM", "LANG"):
        if name in host_env:
            env[name] = host_env[name]
    env.update(c.env)
    env.update(
        {
            "HOME": home,
            "USER": c.username,
            "SHELL": c.shell,
            "XDG_RUNTIME_DIR": runtime,
            "XDG_SESSION_CLASS": "user",
            "XDG_SESSION_TYPE": session_type(config),
        }
    )
    presets, flags = seccomp_for(config)
    argv = [*c.argv, *extra_args]
    return Plan(
        path=c.path,
        args=argv,
        ops=ops,
        tail=tail,
        env=env,
        uid=uid,
        gid=gid,
        hostname=c.hostname,
        home=home,
        runtime=runtime,
        host_net=c.host_net,
        host_abstract=c.host_abstract,
        retain_session=c.tty,
        seccomp_presets=presets,
        seccomp_flags=flags,
        wait_delay=c.grace_ns / 1e9,
        ensured=ensured,
    )


__all__ = ["Plan", "app_key", "data_home", "gpu_sys_paths", "plan", "seccomp_for"]
