"""The ops behind ``hakurei bwrap``'s filesystem options, through the library (issue 12).

Each container is started with ``run_sync`` and looked at from inside; the
CLI spellings are in test_cli_bwrap_ops.py.
"""

from __future__ import annotations

from pathlib import Path

from conftest import base_ops, ok, py, sh


def test_chmod_file_and_place_modes_as_the_program_sees_them() -> None:
    ops = (
        base_ops()
        .tmpfs("/t")
        .mkdir("/t/d", 0o755)
        .chmod("/t/d", 0o1750)
        .file("/t/f", b"file bytes", 0o640)
        .place("/t/rw", b"rw bytes", 0o604, writable=True)
        .place("/t/ro", b"ro bytes")
    )
    out = ok(
        sh(
            "stat -c %a /t/d /t/f /t/rw /t/ro; cat /t/f /t/rw /t/ro; echo;"
            "echo new > /t/rw && cat /t/rw; echo new 2>/dev/null > /t/ro || echo refused",
            ops,
        )
    )
    assert out == "1750\n640\n604\n600\nfile bytesrw bytesro bytes\nnew\nrefused\n"


def test_file_op_writes_through_a_writable_bind_to_the_host(tmp_path: Path) -> None:
    ok(sh("true", base_ops().bind(str(tmp_path), "/w", 2).file("/w/f", b"hello", 0o600)))
    assert (tmp_path / "f").read_bytes() == b"hello"
    assert (tmp_path / "f").stat().st_mode & 0o7777 == 0o600


def test_lock_op_is_held_by_init_so_the_program_cannot_write_lock(tmp_path: Path) -> None:
    """POSIX locks belong to a process: the program, another process, is refused."""
    lock = tmp_path / "lock"
    lock.touch()
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "    print('granted')\n"
        "except OSError as e:\n"
        "    print('refused')\n"
        "print(len([f for f in os.listdir('/proc/self/fd')\n"
        "           if os.path.realpath(f'/proc/self/fd/{f}') == sys.argv[1]]))\n"
    )
    ops = base_ops().proc("/proc").bind(str(tmp_path), str(tmp_path), 2)
    assert ok(py(code, str(lock), ops=ops)) == "granted\n1\n"
    ops = base_ops().proc("/proc").bind(str(tmp_path), str(tmp_path), 2).lock(str(lock))
    # refused, and the only fd of the lock file the program has is its own
    assert ok(py(code, str(lock), ops=ops)) == "refused\n1\n"


def test_mqueue_op_and_dev_mqueue_are_the_same_filesystem() -> None:
    ops = base_ops().proc("/proc").dev("/dev", mqueue=True).mqueue("/mq")
    out = ok(sh("grep -e ' /mq ' -e ' /dev/mqueue ' /proc/self/mountinfo | cut -d' ' -f6,9", ops))
    assert out.splitlines() == ["rw,nosuid,nodev,noexec,relatime mqueue"] * 2
