"""The presets: their bits and names, the rules each adds, and Go's implicit changes.

This is Go's ``presets.go`` (after flatpak commit 4c3bf179), kept in Go's
order on purpose: the unit tests compile these tables and compare the
programs with Go's byte for byte, so a reordering here is a visible change.
``resolve`` is the one place that decides which rules a container gets from
its settings; ``filter_for`` and ``hakurei seccomp`` both start there.

One preset is hakurei's own, ``EVERYDAY`` (``everyday``, the CLI's default):
``STRICT`` without Go's ns-ext group, the set*id/setgroups/chown calls.
Inside a container only one uid and one gid are mapped and setgroups is
denied in the user namespace, so these calls can only set the ids to what
they already are; denying them breaks glibc's ``posix_spawn`` with
POSIX_SPAWN_RESETIDS (``make``), ``xterm`` and ``chown`` to one's own ids,
and protects nothing.  ``ALLOW_ID_CALLS`` is the bit that leaves the group
out; the Go presets and their programs are unchanged.

The export flags live here too: ``ALLOW_MULTIARCH`` changes what the presets
add, and the others choose what ``appended`` adds to every filter.
"""

from __future__ import annotations

from ..errors import q

# Presets (Go bits.FilterPreset) and export flags (Go seccomp.ExportFlag): one
# definition, in the leaf module users import them from; re-exported here (__all__).
from ..std import (
    ALLOW_BLUETOOTH,
    ALLOW_CAN,
    ALLOW_ID_CALLS,
    ALLOW_IO_URING,
    ALLOW_MULTIARCH,
    DENY_DEVEL,
    DENY_NS,
    DENY_TTY,
    EVERYDAY,
    EXT,
    LINUX32,
    STRICT,
)
from .rules import ENOSYS, EPERM, MASKED_EQ, NE, ArgCmp, Rule, group

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

CLONE_NEWUSER = 0x10000000
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
PER_LINUX = 0x0
PER_LINUX32 = 0x8

_PRESET_NAMES = (
    ("ext", EXT),
    ("deny-ns", DENY_NS),
    ("deny-tty", DENY_TTY),
    ("deny-devel", DENY_DEVEL),
    ("linux32", LINUX32),
    ("allow-id-calls", ALLOW_ID_CALLS),
    ("strict", STRICT),
    ("everyday", EVERYDAY),
)
#: Names of several bits, widest first: ``format_presets`` uses the first that fits.
_COMPOSITE_NAMES = (("everyday", EVERYDAY), ("strict", STRICT))


# -- the rule groups (Go presets.go, after flatpak commit 4c3bf179) ----------------------------

_COMMON = group(
    EPERM,
    "syslog",  # dmesg
    "uselib",  # useless old syscall
    "acct",  # disabling accounting
    "quotactl",  # reading quota use
    "add_key",  # the kernel keyring
    "keyctl",
    "request_key",
    "move_pages",  # scary VM/NUMA operations
    "mbind",
    "get_mempolicy",
    "set_mempolicy",
    "migrate_pages",
)

_COMMON_EXT = group(
    EPERM,
    "adjtimex",  # changing the system clock
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    "delete_module",  # kernel modules
    "finit_module",
    "init_module",
    "kexec_file_load",  # rebooting
    "kexec_load",
    "reboot",
    "swapoff",  # swap devices
    "swapon",
)

_NAMESPACE = (
    *group(EPERM, "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot"),
    # Only new user namespaces: fork and threads use clone too.  The flags are
    # argument 0 on every arch hakurei runs on (only s390 swaps them).
    Rule("clone", EPERM, ArgCmp(0, MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)),
    # seccomp cannot read clone3's struct clone_args, so clone3 goes entirely;
    # ENOSYS makes glibc fall back to clone (CVE-2021-41133).  The new mount
    # API can rebuild the VFS as well: block all of it, the same way.
    *group(
        ENOSYS,
        "clone3",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
    ),
)

# Go's ns-ext group: every call that changes a file's owner or the process's
# ids.  ALLOW_ID_CALLS (EVERYDAY) leaves it out; see the module docstring.
_NAMESPACE_EXT = group(
    EPERM,
    "chown",  # file ownership
    "chown32",
    "fchown",
    "fchown32",
    "fchownat",
    "lchown",
    "lchown32",
    "setgid",  # credentials
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
)

# The ioctl request is an int in the kernel but a long in the syscall ABI:
# compare only its low 32 bits, or junk in the high half slips past
# (CVE-2019-10063).  TIOCSTI fakes tty input (CVE-2017-5226); TIOCLINUX
# copy/paste on a virtual console does the same (CVE-2023-28100).
_TTY = (
    Rule("ioctl", EPERM, ArgCmp(1, MASKED_EQ, 0xFFFFFFFF, TIOCSTI)),
    Rule("ioctl", EPERM, ArgCmp(1, MASKED_EQ, 0xFFFFFFFF, TIOCLINUX)),
)

# modify_ldt leaks information but old 16-bit programs and Wine need it.
_EMU = group(EPERM, "modify_ldt")
_EMU_EXT = group(ENOSYS, "subpage_prot", "switch_endian", "vm86", "vm86old")


def _devel(allowed_personality: int) -> tuple[Rule, ...]:
    return (
        # perf has been the source of many CVEs; profile from outside.
        Rule("perf_event_open", EPERM),
        # No switching to BSD emulation and such; also refuses the 0xffffffff query.
        Rule("personality", EPERM, ArgCmp(0, NE, allowed_personality)),
        Rule("ptrace", EPERM),
    )


def preset(presets: int, flags: int) -> list[Rule]:
    """The rules of ``presets`` under export ``flags``, in Go's order."""
    rules = list(_COMMON)
    if presets & DENY_NS:
        rules += _NAMESPACE
    if presets & DENY_TTY:
        rules += _TTY
    if presets & DENY_DEVEL:
        rules += _devel(PER_LINUX32 if presets & LINUX32 else PER_LINUX)
    if not flags & ALLOW_MULTIARCH:
        rules += _EMU
    if presets & EXT:
        rules += _COMMON_EXT
        if presets & DENY_NS and not presets & ALLOW_ID_CALLS:
            rules += _NAMESPACE_EXT
        if not flags & ALLOW_MULTIARCH:
            rules += _EMU_EXT
    return rules


# -- names -------------------------------------------------------------------------------------


def parse_presets(text: str) -> int:
    """``"ext,deny-ns"`` → ``EXT | DENY_NS``; empty items are ignored."""
    names = dict(_PRESET_NAMES)
    bits = 0
    for item in text.split(","):
        name = item.strip()
        if not name:
            continue
        if name not in names:
            known = ", ".join(n for n, _ in _PRESET_NAMES)
            raise ValueError(f"unknown seccomp preset {q(name)} (known: {known})")
        bits |= names[name]
    return bits


def format_presets(presets: int) -> str:
    """The inverse of ``parse_presets`` (``everyday`` or ``strict`` where it applies)."""
    out = []
    for name, bits in _COMPOSITE_NAMES:
        if presets & bits == bits:
            out.append(name)
            presets &= ~bits
            break
    composite = {b for _, b in _COMPOSITE_NAMES}
    out += [n for n, b in _PRESET_NAMES if b not in composite and presets & b]
    return ",".join(out)


# -- what a container gets ---------------------------------------------------------------------


def resolve(
    *, presets: int, flags: int, rules: Sequence[Rule] | None, retain_session: bool
) -> tuple[int, list[Rule]]:
    """Go's implicit changes: (effective presets, the rule list init will load).

    Without ``retain_session`` the container may share the caller's terminal
    but not its session, so faking input must be impossible: DENY_TTY is
    added.  Custom rules replace the presets entirely.
    """
    if not retain_session:
        presets |= DENY_TTY
    if rules:
        return presets, list(rules)
    return presets, preset(presets, flags)


#: The bits re-exported from ``hakurei.std`` (what this module defines is public anyway).
__all__ = [
    "ALLOW_BLUETOOTH",
    "ALLOW_CAN",
    "ALLOW_ID_CALLS",
    "ALLOW_IO_URING",
    "ALLOW_MULTIARCH",
    "DENY_DEVEL",
    "DENY_NS",
    "DENY_TTY",
    "EVERYDAY",
    "EXT",
    "LINUX32",
    "STRICT",
]
