"""``hakurei exec``'s option table: command line → ops and setup, no container started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakurei.cli import exec as cli_exec
from hakurei.cli._table import UsageError
from hakurei.ops import BIND_DEVICE, BIND_OPTIONAL, BIND_WRITABLE, Ops
from hakurei.profile import identity_files
from hakurei.std import MS_RDONLY
from hakurei.wire import encode


def ops_of(*argv: str) -> Ops:
    a = cli_exec.parse_exec([*argv, "--", "/bin/true"])
    assert a is not None
    return cli_exec.build_ops(a.sequence)


def test_every_op_option_in_command_line_order(tmp_path: Path) -> None:
    placed = tmp_path / "f"
    placed.write_bytes(b"data")
    got = ops_of(
        "--bind", "/a", "/b",
        "--ro-bind", "/c", "/d",
        "--dev-bind", "/e", "/f",
        "--bind-try", "/g", "/h",
        "--ro-bind-try", "/i", "/j",
        "--tmpfs", "/k",
        "--dir", "/l",
        "--symlink", "target", "/m",
        "--proc", "/proc",
        "--remount-ro", "/n",
        "--place", "/o", str(placed),
        "--overlay", "/p", "/up", "/work", "/l1:/l2",
        "--tmp-overlay", "/q", "/l1",
        "--ro-overlay", "/r", "/l1:/l2",
        "--etc", "/etc",
        "--root", "/srv/root",
    )  # fmt: skip
    want = (
        Ops()
        .bind("/a", "/b", BIND_WRITABLE)
        .bind("/c", "/d", 0)
        .bind("/e", "/f", BIND_WRITABLE | BIND_DEVICE)
        .bind("/g", "/h", BIND_WRITABLE | BIND_OPTIONAL)
        .bind("/i", "/j", BIND_OPTIONAL)
        .tmpfs("/k", 0, 0o755)
        .mkdir("/l", 0o755)
        .link("/m", "target")
        .proc("/proc")
        .remount("/n", MS_RDONLY)
        .place("/o", b"data")
        .overlay("/p", "/up", "/work", "/l1", "/l2")
        .overlay_ephemeral("/q", "/l1")
        .overlay_readonly("/r", "/l1", "/l2")
        .etc("/etc", "host")
        .place("/etc/passwd", identity_files(os.getuid(), os.getgid())[0])
        .place("/etc/group", identity_files(os.getuid(), os.getgid())[1])
        .root("/srv/root", 0)
    )
    assert got == want


def test_etc_places_a_passwd_and_group_naming_the_containers_ids() -> None:
    a = cli_exec.parse_exec(["--etc", "/etc", "--", "/bin/true"])
    assert a is not None
    ops = cli_exec.build_ops(a.sequence, 4242, 4343)
    passwd, group = identity_files(4242, 4343)
    assert b":x:4242:4343:" in passwd and b":x:4343:" in group
    assert list(ops)[-2:] == list(Ops().place("/etc/passwd", passwd).place("/etc/group", group))


def test_the_same_options_in_another_order_give_the_ops_in_that_order() -> None:
    assert ops_of("--proc", "/proc", "--tmpfs", "/tmp") == Ops().proc("/proc").tmpfs("/tmp")
    assert ops_of("--tmpfs", "/tmp", "--proc", "/proc") == Ops().tmpfs("/tmp").proc("/proc")


def test_size_and_perms_apply_to_the_next_op_only() -> None:
    got = ops_of(
        "--size", "4096", "--perms", "1777", "--tmpfs", "/a",
        "--tmpfs", "/b",
        "--perms", "0700", "--dir", "/c",
        "--dir", "/d",
    )  # fmt: skip
    want = Ops().tmpfs("/a", 4096, 0o1777).tmpfs("/b", 0, 0o755)
    assert got == want.mkdir("/c", 0o700).mkdir("/d", 0o755)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "1", "--dir", "/d"], "--size does not apply to --dir"),
        (["--perms", "700", "--bind", "/a", "/b"], "--perms does not apply to --bind"),
        (["--tmpfs", "/t", "--size", "1"], "must come right before"),
        (["--perms", "9", "--dir", "/d"], "not an octal mode"),
        (["--perms", "17777", "--dir", "/d"], "out of range"),
        (["--size", "x", "--tmpfs", "/t"], "not a number of bytes"),
        (["--size", "-1", "--tmpfs", "/t"], "negative"),
    ],
)
def test_misplaced_or_bad_size_and_perms_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ops_of(*argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind", "/a"], "--bind needs SRC DEST"),
        (["--bind=/a", "/b", "/bin/true"], "--bind takes SRC DEST, not '='"),
        (["--share-net=1", "/bin/true"], "--share-net takes no value, not '='"),
        (["--frobnicate", "/bin/true"], 'unknown option "--frobnicate"'),
        (["--tmpfs", "/t"], "no PROGRAM given"),
        ([], "no PROGRAM given"),
    ],
)
def test_command_line_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cli_exec.exec_setup(argv)


def test_values_with_equals_and_the_last_one_wins() -> None:
    setup = cli_exec.exec_setup(["--hostname=a", "--hostname", "b", "--uid=7", "/bin/true"])
    assert setup is not None
    assert (setup.hostname, setup.uid) == ("b", 7)


def test_program_and_its_arguments_end_the_options() -> None:
    setup = cli_exec.exec_setup(["--share-net", "/bin/echo", "--bind", "-v"])
    assert setup is not None
    assert (setup.path, setup.args, setup.host_net) == (
        "/bin/echo",
        ["/bin/echo", "--bind", "-v"],
        True,
    )


def test_parse_to_setup_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEPT", "k")
    setup = cli_exec.exec_setup(
        ["--retain-session", "--privileged", "--host-abstract", "-v", "--chdir", "/tmp",
         "--setenv", "A", "1", "--keep-env", "KEPT", "--tmpfs", "/", "--", "/bin/true"]
    )  # fmt: skip
    assert setup is not None
    assert (setup.retain_session, setup.privileged, setup.host_abstract, setup.verbose) == (
        True,
        True,
        True,
        True,
    )
    assert setup.dir == "/tmp" and setup.host_net is False
    assert "A=1" in setup.env and "KEPT=k" in setup.env
    assert setup.ops == Ops().tmpfs("/", 0, 0o755)


def test_help_lists_every_option_of_the_table() -> None:
    text = cli_exec.help_text()
    for opt in cli_exec.TABLE.options:
        for name in opt.names:
            assert name in text, name
    assert cli_exec.parse_exec(["--bind", "/a", "/b", "--help"]) is None


# -- issue 11 §5 ---------------------------------------------------------------------


def test_dev_stays_writable_until_after_the_last_op() -> None:
    got = ops_of("--dev", "/dev", "--dev-bind", "/dev/dri", "/dev/dri", "--tmpfs", "/tmp")
    want = (
        Ops()
        .dev_writable("/dev", mqueue=True)
        .tmpfs("/dev/shm", 0, 0o1777)
        .bind("/dev/dri", "/dev/dri", BIND_WRITABLE | BIND_DEVICE)
        .tmpfs("/tmp", 0, 0o755)
        .remount("/dev", MS_RDONLY)
    )
    assert got == want


def test_dev_bind_try() -> None:
    got = ops_of("--dev-bind-try", "/a", "/b")
    assert got == Ops().bind("/a", "/b", BIND_WRITABLE | BIND_DEVICE | BIND_OPTIONAL)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "0", "--tmpfs", "/t"], "--size: 0 is not a positive number"),
        (["--size", "1", "--size", "1", "--tmpfs", "/t"], "--size given twice"),
        (["--perms", "1", "--perms", "1", "--dir", "/t"], "--perms given twice"),
    ],
)
def test_size_zero_and_a_second_size_or_perms_are_usage_errors(
    argv: list[str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ops_of(*argv)


def test_environment_edits_apply_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEPT", "k")
    monkeypatch.setenv("TERM", "dumb")
    setup = cli_exec.exec_setup(
        ["--setenv", "GONE", "1", "--clearenv", "--keep-env", "KEPT", "--setenv", "A", "1",
         "--setenv", "B", "2", "--unsetenv", "B", "/bin/true"]
    )  # fmt: skip
    assert setup is not None and setup.env == ["KEPT=k", "A=1"]


def test_bubblewrap_spellings_change_nothing() -> None:
    plain = cli_exec.exec_setup(["/bin/true"])
    spelled = cli_exec.exec_setup(
        ["--unshare-all", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
         "--unshare-cgroup", "--unshare-net", "--new-session", "/bin/true"]
    )  # fmt: skip
    assert plain is not None and spelled is not None
    assert encode(plain) == encode(spelled)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--unshare-net", "--share-net"], "conflicts with --share-net"),
        (["--retain-session", "--new-session"], "conflicts with --retain-session"),
        (["--cap-add", "CAP_NOPE"], "unknown capability"),
        (["--pass-fd", "1"], "--pass-fd: 1 is stdio"),
        (["--pass-fd", "x"], "not a file descriptor number"),
        (["--info-fd", "-1"], "out of range"),
    ],
)
def test_conflicts_and_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cli_exec.exec_setup([*argv, "/bin/true"])


def test_pass_fd_counts_as_extra_files() -> None:
    r, w = os.pipe()
    try:
        got = cli_exec.prepare(["--pass-fd", str(w), "--pass-fd", str(r), "/bin/true"])
        assert got is not None
        setup, a = got
        assert (setup.files, a.pass_fds) == (2, [w, r])
        with pytest.raises(UsageError, match="given twice"):
            cli_exec.exec_setup(["--pass-fd", str(w), "--pass-fd", str(w), "/bin/true"])
    finally:
        os.close(r)
        os.close(w)


def test_args_fd_is_read_in_place_and_closed() -> None:
    r, w = os.pipe()
    os.write(w, b"--hostname\0h\0/bin/echo\0x\0")
    os.close(w)
    setup = cli_exec.exec_setup(["--share-net", "--args", str(r)])
    assert setup is not None
    assert (setup.hostname, setup.args, setup.host_net) == ("h", ["/bin/echo", "x"], True)
    with pytest.raises(OSError):
        os.fstat(r)


def test_help_has_examples_exit_statuses_and_the_refused_options() -> None:
    text = cli_exec.help_text()
    assert "examples:" in text and "exit status:" in text and "--cap-add" in text


def test_the_cli_leaves_garbage_collection_on_for_an_in_process_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """exec turns the collector off while it starts; a caller that gets control back keeps it."""
    import gc

    from hakurei.cli import main

    assert main(["exec", "--help"]) == 0
    assert main(["exec", "--frobnicate"]) == 125
    assert gc.isenabled()
    capsys.readouterr()
