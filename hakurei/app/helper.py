"""What the launcher's helper programs (the D-Bus and Wayland proxies) run in: a container of ours.

A proxy parses what the app sends it, so it is the first thing a hostile app
attacks; each runs confined in a small container of its own: the host's
``/usr`` and merged-usr links read-only (its program and libraries), the few
sockets and directories its job needs, no ``/proc``, ``/dev`` or network,
the everyday seccomp filter, the caller's uid, and a process group of its
own so a terminal's Ctrl-C reaches the launcher alone (which passes it on to
the app: the app may still use its proxies while it quits).
"""

from __future__ import annotations

import os

from ..ops import Ops


def base_ops(programs: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> Ops:
    """``/usr`` and the merged-usr links read-only, and what ``/usr`` does not hold of the rest.

    ``programs``: executables; the directory of one installed outside ``/usr``
    (``/opt``, a Nix profile) is bound too.  ``dirs``: directories it needs
    (a Python's stdlib, a package dir), bound where they are unless under ``/usr``.
    """
    ops = Ops().bind("/usr", "/usr")
    for top in ("/bin", "/lib", "/lib64"):
        if os.path.islink(top):
            ops.link(top, os.readlink(top))
        elif os.path.isdir(top):
            ops.bind(top, top)
    needed = [os.path.dirname(p) for p in programs] + list(dirs)
    for d in dict.fromkeys(needed):
        if d != "/usr" and not d.startswith("/usr/"):
            ops.bind(d, d)
    return ops


__all__ = ["base_ops"]
