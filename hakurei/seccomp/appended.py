"""What every filter gets after its presets or custom rules, whatever they are.

Go's presets leave holes that hakurei closes in every program it compiles,
so they live apart from the Go tables in ``presets`` (whose programs the unit
tests pin against Go's, byte for byte) and only ``disable`` drops them:

* a socket-family allowlist: any family but AF_UNSPEC, AF_UNIX, AF_INET,
  AF_INET6, AF_NETLINK, and AF_CAN, AF_BLUETOOTH when their flag allows them,
  fails with EAFNOSUPPORT (Go and flatpak have it too; the compiler adds it
  as exact rules, native ABI only);
* ``appended_rules``: io_uring refused with ENOSYS (its IORING_OP_SOCKET
  would bypass the allowlist; ``ALLOW_IO_URING`` keeps it) and
  ``quotactl_fd`` with EPERM, as ``quotactl``.  Not in Go.

None of them is counted in the rule count a container reports, as Go's
``%d filter rules loaded`` leaves out the socket rules.
"""

from __future__ import annotations

from .presets import ALLOW_BLUETOOTH, ALLOW_CAN, ALLOW_IO_URING
from .rules import ENOSYS, EPERM, EQ, GE, Rule, group

#: Families ``socket()`` may create, in numerical order, with the flag each needs.
_SOCKET_FAMILIES = (
    (0, 0),  # AF_UNSPEC
    (1, 0),  # AF_UNIX
    (2, 0),  # AF_INET
    (10, 0),  # AF_INET6
    (16, 0),  # AF_NETLINK
    (29, ALLOW_CAN),  # AF_CAN
    (31, ALLOW_BLUETOOTH),  # AF_BLUETOOTH
)


def socket_comparisons(flags: int) -> list[tuple[int, int]]:
    """``(op, family)`` pairs that make ``socket`` fail with EAFNOSUPPORT.

    Every family between two allowed ones gets an EQ rule; everything above
    the last allowed one a single GE rule (Go and flatpak do the same).
    """
    out = []
    last = -1
    for family, need in _SOCKET_FAMILIES:
        if need and flags & need != need:
            continue
        out += [(EQ, f) for f in range(last + 1, family)]
        last = family
    out.append((GE, last + 1))
    return out


# io_uring's IORING_OP_SOCKET (Linux 5.19) creates sockets without calling
# socket(), so the family allowlist above means nothing while a ring can be set
# up: AF_VSOCK (not per network namespace), AF_PACKET, AF_ALG.  Setting up the
# ring is refused with ENOSYS, what a kernel built without io_uring (or older
# than 5.1) answers: every io_uring user must handle it already and falls back
# to plain syscalls (libuv does, whatever the errno), whereas EPERM became a
# documented answer only with the io_uring_disabled sysctl (6.6) and older code
# may take it as a hard error.  enter and register need a ring fd the
# container cannot create; they are refused too, in case one is passed in.
_IO_URING = group(ENOSYS, "io_uring_setup", "io_uring_enter", "io_uring_register")
# quotactl_fd (Linux 5.14) is quotactl on a file descriptor: the same reason to
# deny it as the common group's quotactl, with the same errno.
_APPENDED = group(EPERM, "quotactl_fd")


def appended_rules(flags: int) -> list[Rule]:
    """hakurei's own rules, added to every filter after the presets or custom rules.

    Like the socket allowlist, they apply whatever the presets (custom rules
    too) and only ``disable`` drops them; they are not part of the Go presets,
    whose compiled programs the unit tests pin byte for byte, nor of the rule
    count.  A custom rule for the same syscall cannot make a hole: libseccomp
    keeps a syscall's first unconditional action and lets an unconditional
    rule override conditional ones, so the call stays refused (with the
    custom errno if the custom rule is unconditional).  ``ALLOW_IO_URING``
    drops the io_uring rules.
    """
    rules = list(_APPENDED)
    if not flags & ALLOW_IO_URING:
        rules += _IO_URING
    return rules
