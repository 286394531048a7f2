"""Capability names ↔ numbers, as ``linux/capability.h`` numbers them (no libcap).

For ``Params(caps=...)`` (a bit mask, ``1 << number``) and bwrap's
``--cap-add``/``--cap-drop``: a name is matched without regard to case, with
or without its ``CAP_`` prefix; a decimal number is taken as is; ``ALL`` is
every bit (init keeps only those up to the kernel's ``cap_last_cap``).
"""

from __future__ import annotations

from .errors import ParamsError, q

#: The capabilities in number order (index = number), names without ``CAP_``.
NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
#: ``CAP_SYS_ADMIN`` → 21, and so on.
NUMBERS = {f"CAP_{name}": i for i, name in enumerate(NAMES)}
#: Every capability bit (the kernel's sets are 64 bits wide).
ALL = (1 << 64) - 1


def number(name: str) -> int:
    """The number of a capability name (``cap_kill``, ``KILL``) or of a decimal 0-63."""
    if name.isascii() and name.isdecimal() and len(name) <= 2 and int(name) < 64:
        return int(name)
    key = name.upper()
    found = NUMBERS.get(key if key.startswith("CAP_") else f"CAP_{key}")
    if found is None:
        raise ParamsError(f"unknown capability {q(name)}")
    return found


def mask(name: str) -> int:
    """The bits ``name`` stands for: ``ALL`` (any case) or one capability's."""
    if name.upper() == "ALL":
        return ALL
    return 1 << number(name)


def name(cap: int) -> str:
    """``CAP_SYS_ADMIN`` for 21; a number the table does not know as itself."""
    return f"CAP_{NAMES[cap]}" if 0 <= cap < len(NAMES) else str(cap)


__all__ = ["ALL", "NAMES", "NUMBERS", "mask", "name", "number"]
