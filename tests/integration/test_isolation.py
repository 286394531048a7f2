"""Privileged mode and the landlock scopes, proven from inside."""

from __future__ import annotations

import os
import socket

from conftest import ok, py, sh

CAP_SYS_ADMIN = 1 << 21


def caps(text: str) -> dict[str, int]:
    return {
        k: int(v, 16)
        for k, v in (line.split(":\t") for line in text.splitlines() if line.startswith("Cap"))
    }


def test_privileged_keeps_only_cap_sys_admin() -> None:
    c = caps(ok(sh("cat /proc/self/status", privileged=True)))
    assert c == {
        "CapInh": CAP_SYS_ADMIN,
        "CapPrm": CAP_SYS_ADMIN,
        "CapEff": CAP_SYS_ADMIN,
        "CapBnd": CAP_SYS_ADMIN,
        "CapAmb": CAP_SYS_ADMIN,
    }


MOUNT = (
    "import ctypes, errno, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "os.mkdir('/tmp/m')\n"
    "r = libc.mount(b'none', b'/tmp/m', b'tmpfs', 0, None)\n"
    "print(r, errno.errorcode.get(ctypes.get_errno(), 0) if r else 'mounted')\n"
)


def test_privileged_program_can_mount_and_unprivileged_cannot() -> None:
    """mount(2) itself, not mount(8), which refuses a non-root user before asking the kernel."""
    assert ok(py(MOUNT, privileged=True)).strip() == "0 mounted"
    assert ok(py(MOUNT)).strip() == "-1 EPERM"


# LANDLOCK_SCOPE_SIGNAL cannot be observed from inside: the pid namespace
# already hides every outside process (pidfd_send_signal across pid
# namespaces fails with EINVAL before landlock is asked).  Its bit is set in
# the same landlock_restrict_self call as the abstract-socket scope proven
# below, and the unit tests check the bits passed to the kernel.


CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1].replace('@', '\\0'))\n"
    "    print('connected')\n"
    "except PermissionError:\n"
    "    print('EPERM')\n"
    "except ConnectionRefusedError:\n"
    "    print('refused')\n"
)


def test_landlock_scopes_host_abstract_sockets() -> None:
    name = f"@hakurei-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX)
    server.bind(name.replace("@", "\0"))
    server.listen(4)
    try:
        assert ok(py(CONNECT, name, host_net=True)).strip() == "EPERM"
        assert ok(py(CONNECT, name, host_net=True, host_abstract=True)).strip() == "connected"
        # Without host_net the container has its own abstract namespace anyway.
        assert ok(py(CONNECT, name, host_abstract=True)).strip() == "refused"
    finally:
        server.close()
